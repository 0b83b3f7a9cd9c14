"""A scripted fake homeserver for `responses`: tests say what each endpoint answers, in order."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

HS = "https://hs.test"
ROOM = "!room:hs.test"


def message(n: int, body: str | None = None, room: str = ROOM) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": room,
        "sender": "@alice:hs.test",
        "event_id": f"$ev{n}",
        "origin_server_ts": 1_700_000_000_000 + n * 1000,
        "content": {"msgtype": "m.text", "body": body if body is not None else f"message {n}"},
    }


@dataclass
class FakeHomeserver:
    """Registers guest/initialSync/events handlers; `events` replies are popped from a queue."""

    rsps: responses.RequestsMock
    base: str = HS
    room: str = ROOM
    history: list[dict[str, Any]] = field(default_factory=list)
    initial_end: str = "t0"
    #: room state events initialSync answers with
    state: list[dict[str, Any]] = field(default_factory=list)
    #: token → reply (dict) or a callable(params) → (status, body)
    events_by_token: dict[str, Any] = field(default_factory=dict)
    guests: int = 0
    #: access tokens the server has forgotten: any request bearing one gets 401 M_UNKNOWN_TOKEN
    rejected_tokens: set[str] = field(default_factory=set)
    #: replaces the initialSync handler (gets the request, returns status, headers, body)
    initial_sync_handler: Any = None
    #: (status, body) to answer initialSync with instead of the history
    initial_error: tuple[int, dict[str, Any]] | None = None

    def install(self) -> FakeHomeserver:
        self.rsps.add_callback(
            responses.POST, f"{self.base}/_matrix/client/v3/register", callback=self._register
        )
        self.rsps.add_callback(
            responses.GET,
            re.compile(re.escape(self.base) + r"/_matrix/client/v3/rooms/[^/]+/initialSync.*"),
            callback=self._initial_sync_entry,
        )
        self.rsps.add_callback(
            responses.GET,
            re.compile(re.escape(self.base) + r"/_matrix/client/v3/events.*"),
            callback=self._events,
        )
        return self

    def _register(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.guests += 1
        body = {
            "user_id": f"@guest{self.guests}:hs.test",
            "access_token": f"guest-token-{self.guests}",
            "device_id": "DEV",
        }
        return 200, {}, json.dumps(body)

    def _refused(self, request: Any) -> tuple[int, dict[str, str], str] | None:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") in self.rejected_tokens:
            body = {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown access token"}
            return 401, {}, json.dumps(body)
        return None

    def _initial_sync_entry(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.initial_sync_handler is not None:
            return self.initial_sync_handler(request)  # type: ignore[no-any-return]
        return self._initial_sync(request)

    def _initial_sync(self, request: Any) -> tuple[int, dict[str, str], str]:
        if refused := self._refused(request):
            return refused
        if self.initial_error is not None:
            return self.initial_error[0], {}, json.dumps(self.initial_error[1])
        limit = int(parse_qs(urlsplit(request.url).query)["limit"][0])
        chunk = self.history[-limit:]
        body = {
            "room_id": self.room,
            "messages": {"chunk": chunk, "start": "t-start", "end": self.initial_end},
            "state": self.state,
        }
        return 200, {}, json.dumps(body)

    def _events(self, request: Any) -> tuple[int, dict[str, str], str]:
        if refused := self._refused(request):
            return refused
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        reply = self.events_by_token.get(params.get("from", ""))
        if callable(reply):
            reply = reply(params)
        if reply is None:  # nothing new: the long-poll times out
            empty = {"chunk": [], "start": params["from"], "end": params["from"]}
            return 200, {}, json.dumps(empty)
        if isinstance(reply, tuple):
            status, body = reply
            return status, {}, body if isinstance(body, str) else json.dumps(body)
        return 200, {}, json.dumps(reply)

    def chain(self, *chunks: list[dict[str, Any]], start: str = "t0") -> None:
        """Serve `chunks` one after another from `start` (t0 → t1 → t2 …)."""
        token = start
        for i, events in enumerate(chunks, 1):
            nxt = f"t{i}" if start == "t0" else f"{start}.{i}"
            self.events_by_token[token] = {"chunk": events, "start": token, "end": nxt}
            token = nxt

    def calls(self, path_part: str) -> list[Any]:
        return [c for c in self.rsps.calls if path_part in c.request.url]
