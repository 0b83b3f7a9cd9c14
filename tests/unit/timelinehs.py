"""A scripted homeserver with several rooms on one event stream, for `responses`.

Enough of the client API for room upgrades and exports: guest registration, initialSync,
`/events` (stream tokens `s<n>`: after the n-th event of the whole server), `/messages` in both
directions (tokens `t<i>`: before the i-th event of one room; `to=s<n>` bounds a walk), and
`GET /rooms/{id}/state/{type}/{key}` and `/state`. Tests script rooms with `send`; every request
the server got is in `rsps.calls` for tests that check what was asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import responses

HS = "https://hs.test"
OLD = "!old:hs.test"
NEW = "!new:hs.test"
NEWER = "!newer:hs.test"

Reply = tuple[int, dict[str, str], str]


def _json(status: int, body: Any) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


@dataclass
class TimelineHS:
    rsps: responses.RequestsMock
    base: str = HS
    #: Every event of every room, in the order the server took them.
    stream: list[dict[str, Any]] = field(default_factory=list)
    #: room → (status, body) to answer everything about that room with.
    refuse: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    #: /messages?dir=b ignores `limit` and answers at most this many (None: honours it).
    page_cap: int | None = None
    #: Replies (status, body) that /messages gives first, one per request, before the real ones.
    scripted: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: After this many /messages requests, every further one fails with 502 (None: never).
    fail_messages_after: int | None = None
    messages_served: int = 0
    #: Called with the room after each initialSync reply is made (events sent "just after").
    on_initial_sync: Callable[[str], None] | None = None
    #: Called with the count of /messages requests (this one included) before it is answered.
    on_messages: Callable[[int], None] | None = None
    guests: int = 0

    def install(self) -> TimelineHS:
        api = re.escape(self.base) + r"/_matrix/client/v3"
        self.rsps.add_callback(
            responses.POST, f"{self.base}/_matrix/client/v3/register", callback=self._register
        )
        for pattern, handler in (
            (r"/rooms/([^/]+)/initialSync", self._initial_sync),
            (r"/rooms/([^/]+)/messages", self._messages),
            (r"/rooms/([^/]+)/state/([^/]+)/([^/?]*)", self._state_event),
            (r"/rooms/([^/]+)/state", self._state),
            (r"/events", self._events),
        ):
            self.rsps.add_callback(
                responses.GET, re.compile(api + pattern + r"(\?.*)?$"), callback=handler
            )
        return self

    # -- scripting ---------------------------------------------------------------------------

    def send(
        self,
        room: str,
        etype: str = "m.room.message",
        *,
        body: str | None = None,
        content: dict[str, Any] | None = None,
        state_key: str | None = None,
        ts: int | None = None,
    ) -> dict[str, Any]:
        n = len(self.stream)
        event: dict[str, Any] = {
            "type": etype,
            "room_id": room,
            "sender": "@alice:hs.test",
            "event_id": f"$e{n}",
            "origin_server_ts": ts if ts is not None else 1_700_000_000_000 + n * 1000,
            "content": content if content is not None else {"msgtype": "m.text", "body": body},
        }
        if state_key is not None:
            event["state_key"] = state_key
        self.stream.append(event)
        return event

    def create(self, room: str, predecessor: str | None = None) -> None:
        content: dict[str, Any] = {"room_version": "12"}
        if predecessor:
            content["predecessor"] = {"room_id": predecessor}
        self.send(room, "m.room.create", content=content, state_key="")

    def tombstone(self, room: str, new: str) -> dict[str, Any]:
        content = {"body": "This room has been replaced", "replacement_room": new}
        return self.send(room, "m.room.tombstone", content=content, state_key="")

    def room(self, room: str) -> list[dict[str, Any]]:
        return [e for e in self.stream if e["room_id"] == room]

    def calls(self, part: str) -> list[str]:
        urls = [unquote(c.request.url) for c in self.rsps.calls]
        return [url for url in urls if part in url]

    # -- handlers ----------------------------------------------------------------------------

    @staticmethod
    def _params(request: Any) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}

    def _room_of(self, request: Any) -> str:
        match = re.search(r"/rooms/([^/?]+)", request.url)
        assert match is not None
        return unquote(match.group(1))

    def _register(self, request: Any) -> Reply:
        self.guests += 1
        return _json(
            200,
            {
                "user_id": f"@guest{self.guests}:hs.test",
                "access_token": f"guest-{self.guests}",
                "device_id": "D",
            },
        )

    def _current_state(self, room: str) -> list[dict[str, Any]]:
        state: dict[tuple[str, str], dict[str, Any]] = {}
        for event in self.room(room):
            if "state_key" in event:
                state[(event["type"], event["state_key"])] = event
        return list(state.values())

    def _initial_sync(self, request: Any) -> Reply:
        room = self._room_of(request)
        if room in self.refuse:
            return _json(*self.refuse[room])
        limit = int(self._params(request).get("limit", "10"))
        events = self.room(room)
        reply = _json(
            200,
            {
                "room_id": room,
                "messages": {
                    "chunk": events[-limit:],
                    "start": "t0",
                    "end": f"s{len(self.stream)}",
                },
                "state": self._current_state(room),
            },
        )
        if self.on_initial_sync is not None:
            self.on_initial_sync(room)
        return reply

    def _events(self, request: Any) -> Reply:
        params = self._params(request)
        room = params["room_id"]
        start = int(params["from"][1:])
        limit = int(params.get("limit", "1000"))
        chunk = [e for e in self.stream[start:] if e["room_id"] == room][:limit]
        end = self.stream.index(chunk[-1]) + 1 if chunk else len(self.stream)
        return _json(200, {"chunk": chunk, "start": params["from"], "end": f"s{end}"})

    def _messages(self, request: Any) -> Reply:
        room = self._room_of(request)
        if room in self.refuse:
            return _json(*self.refuse[room])
        self.messages_served += 1
        if self.on_messages is not None:
            self.on_messages(self.messages_served)
        if self.scripted:
            return _json(*self.scripted.pop(0))
        if self.fail_messages_after is not None and self.messages_served > self.fail_messages_after:
            return _json(502, {"error": "bad gateway"})
        params = self._params(request)
        events = self.room(room)
        if "to" in params:  # a stream token: the room's events the server had by then
            bound = int(params["to"][1:])
            events = [e for e in events if self.stream.index(e) < bound]
        limit = int(params.get("limit", "10"))
        if self.page_cap is not None:
            limit = min(limit, self.page_cap)
        if params["dir"] == "f":
            at = int(params["from"][1:]) if "from" in params else 0
            chunk = events[at : at + limit]
            body: dict[str, Any] = {"chunk": chunk, "start": f"t{at}"}
            if at + len(chunk) < len(events):
                body["end"] = f"t{at + len(chunk)}"
            return _json(200, body)
        at = int(params["from"][1:]) if "from" in params else len(events)
        low = max(0, at - limit)
        chunk = list(reversed(events[low:at]))
        body = {"chunk": chunk, "start": f"t{at}"}
        if low > 0:
            body["end"] = f"t{low}"
        return _json(200, body)

    def _state_event(self, request: Any) -> Reply:
        room = self._room_of(request)
        if room in self.refuse:
            return _json(*self.refuse[room])
        match = re.search(r"/state/([^/]+)/([^/?]*)", request.url)
        assert match is not None
        etype, key = unquote(match.group(1)), unquote(match.group(2))
        for event in reversed(self.room(room)):
            if event["type"] == etype and event.get("state_key") == key:
                return _json(200, event["content"])
        return _json(404, {"errcode": "M_NOT_FOUND", "error": "no such state"})

    def _state(self, request: Any) -> Reply:
        room = self._room_of(request)
        if room in self.refuse:
            return _json(*self.refuse[room])
        return _json(200, self._current_state(room))
