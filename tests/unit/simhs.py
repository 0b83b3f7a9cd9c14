"""Simulated homeservers for `responses`: one room timeline, served the way each server does it.

The quirks come from the servers' source (2025–2026), as listed in issue 10:

| server      | /events                                      | initialSync (guest)       |
|-------------|----------------------------------------------|---------------------------|
| synapse     | limit honoured, tokens `s<n>`                | yes                       |
| tuwunel     | limit ignored (50 per batch); no `from` → 0  | yes                       |
| construct   | tokens are event ids, ≤ 32 per batch         | yes                       |
| dendrite    | stub: 200 `{"chunk": [], "end": ""}`         | 403 M_GUEST_ACCESS_FORBIDDEN |
| conduwuit   | 404 M_UNRECOGNIZED                           | yes                       |
| conduit     | 404 M_UNRECOGNIZED                           | 403 stub                  |

Every server serves `/messages` (tokens `m<n>`, and accepts the others' tokens too, as Synapse
does), `/register?kind=guest`, the room summary and `/_matrix/federation/v1/version`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import responses

from tests.unit.mockhs import HS, ROOM, message

Reply = tuple[int, dict[str, str], str]

SOFTWARE = {
    "synapse": ("Synapse", "1.163.2"),
    "tuwunel": ("tuwunel", "1.4.0"),
    "construct": ("Construct", "0.9.1"),
    "dendrite": ("Dendrite", "0.13.8"),
    "conduwuit": ("conduwuit", "0.4.6"),
    "continuwuity": ("continuwuity", "0.5.0"),
    "conduit": ("Conduit", "0.10.0"),
}
UNRECOGNIZED = {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}


def _json(status: int, body: Any) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


@dataclass
class SimServer:
    rsps: responses.RequestsMock
    software: str = "synapse"
    base: str = HS
    room: str = ROOM
    timeline: list[dict[str, Any]] = field(default_factory=list)
    #: Events that happen right after initialSync (or /messages?dir=b) answered.
    after_start: list[dict[str, Any]] = field(default_factory=list)
    #: Called before every /events or /messages?dir=f reply: a hook to add events mid-test.
    on_poll: Callable[[SimServer], None] | None = None
    federation: bool = True
    messages_error: tuple[int, Any] | None = None
    initial_sync_error: tuple[int, Any] | None = None
    #: Dendrite and Conduit refuse initialSync to guests; False serves it (a logged-in user).
    initial_sync_refused: bool | None = None
    guests_allowed: bool = True
    #: Room summary reply (None: 404 M_UNRECOGNIZED on both forms).
    summary: dict[str, Any] | None = None
    summary_needs_token: bool = False
    #: Which summary paths exist: the stable v1 one, MSC3266's unstable one, or both.
    summary_forms: tuple[str, ...] = ("v1", "unstable")
    #: The public room directory's entries.
    public: list[dict[str, Any]] = field(default_factory=list)
    state: list[dict[str, Any]] = field(default_factory=list)
    state_error: tuple[int, Any] | None = None
    guests: int = 0

    def install(self) -> SimServer:
        base = re.escape(self.base)
        add = self.rsps.add_callback
        add(responses.POST, f"{self.base}/_matrix/client/v3/register", callback=self._register)
        add(
            responses.GET,
            re.compile(base + r"/_matrix/client/v3/rooms/[^/]+/initialSync.*"),
            callback=self._initial_sync,
        )
        add(
            responses.GET,
            re.compile(base + r"/_matrix/client/v3/events.*"),
            callback=self._events,
        )
        add(
            responses.GET,
            re.compile(base + r"/_matrix/client/v3/rooms/[^/]+/messages.*"),
            callback=self._messages,
        )
        add(
            responses.GET,
            re.compile(base + r"/_matrix/client/v3/rooms/[^/]+/state$"),
            callback=self._state,
        )
        add(
            responses.GET,
            re.compile(base + r"/_matrix/client/(v1/room_summary/|unstable/im\.nheko\.summary/).*"),
            callback=self._summary,
        )
        add(
            responses.GET,
            f"{self.base}/_matrix/federation/v1/version",
            callback=self._federation,
        )
        add(
            responses.GET,
            f"{self.base}/_matrix/client/versions",
            callback=lambda r: _json(200, {"versions": ["r0.6.1", "v1.1", "v1.11"]}),
        )
        add(
            responses.GET,
            f"{self.base}/_matrix/client/v3/account/whoami",
            callback=self._whoami,
        )
        add(
            responses.GET,
            f"{self.base}/_matrix/client/v3/publicRooms",
            callback=lambda r: _json(200, {"chunk": self.public, "total_room_count_estimate": 1}),
        )
        return self

    # -- tokens ---------------------------------------------------------------------------------

    def events_token(self, n: int) -> str:
        if self.software == "construct":
            return self.timeline[n - 1]["event_id"] if n else "$start:construct.test"
        return f"s{n}"

    def position_of(self, token: str | None) -> int | None:
        """How many timeline events lie before `token`; None when it is not one of ours."""
        if token is None:
            return None
        if token.startswith("$"):
            if token == "$start:construct.test":
                return 0
            ids = [ev["event_id"] for ev in self.timeline]
            return ids.index(token) + 1 if token in ids else None
        if token[:1] in ("s", "m") and token[1:].isdigit():
            return int(token[1:])
        return None

    # -- handlers -------------------------------------------------------------------------------

    @staticmethod
    def params(request: Any) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}

    def _register(self, request: Any) -> Reply:
        if not self.guests_allowed:
            return _json(
                403, {"errcode": "M_GUEST_ACCESS_FORBIDDEN", "error": "Guest access is disabled"}
            )
        self.guests += 1
        return _json(
            200,
            {
                "user_id": f"@guest{self.guests}:hs.test",
                "access_token": f"guest-token-{self.guests}",
                "device_id": "DEV",
            },
        )

    def _whoami(self, request: Any) -> Reply:
        auth = request.headers.get("Authorization", "")
        if not auth:
            return _json(401, {"errcode": "M_MISSING_TOKEN", "error": "Missing token"})
        return _json(200, {"user_id": "@someone:hs.test"})

    def _start(self) -> None:
        self.timeline.extend(self.after_start)
        self.after_start = []

    def _initial_sync(self, request: Any) -> Reply:
        if self.initial_sync_error is not None:
            return _json(*self.initial_sync_error)
        refused = self.initial_sync_refused
        if refused is None:
            refused = self.software in ("dendrite", "conduit")
        if refused and self.software == "dendrite":
            return _json(403, {"errcode": "M_GUEST_ACCESS_FORBIDDEN", "error": "Guest access"})
        if refused:
            return _json(403, {"errcode": "M_FORBIDDEN", "error": "Not implemented for guests"})
        limit = int(self.params(request)["limit"])
        cap = {"tuwunel": 50, "conduwuit": 100, "continuwuity": 100}.get(self.software, limit)
        n = len(self.timeline)
        no_events = ("dendrite", "conduwuit", "continuwuity", "conduit")
        end = f"m{n}" if self.software in no_events else self.events_token(n)
        body = {
            "room_id": self.room,
            "messages": {"chunk": self.timeline[-min(limit, cap) :], "start": "x", "end": end},
            "state": self.state,
        }
        self._start()
        return _json(200, body)

    def _events(self, request: Any) -> Reply:
        if self.software in ("conduwuit", "continuwuity", "conduit"):
            return _json(404, UNRECOGNIZED)
        if self.software == "dendrite":
            return _json(200, {"chunk": [], "start": "", "end": ""})
        if self.on_poll is not None:
            self.on_poll(self)
        params = self.params(request)
        n = self.position_of(params.get("from"))
        if n is None:
            if self.software != "tuwunel":
                return _json(400, {"errcode": "M_INVALID_PARAM", "error": "Invalid from token"})
            n = 0  # tuwunel: a missing or unparsable `from` replays the room from the start
        batch = {"tuwunel": 50, "construct": 32}.get(self.software)
        limit = int(params.get("limit", "10"))
        size = batch if batch is not None else min(limit, 1000)
        chunk = self.timeline[n : n + size]
        token = params.get("from", "")
        end = self.events_token(n + len(chunk)) if chunk else token
        return _json(200, {"chunk": chunk, "start": token, "end": end})

    def _messages(self, request: Any) -> Reply:
        if self.messages_error is not None:
            return _json(*self.messages_error)
        params = self.params(request)
        limit = int(params.get("limit", "10"))
        if params.get("dir") == "b":
            n = self.position_of(params.get("from"))
            n = len(self.timeline) if n is None else n
            chunk = list(reversed(self.timeline[max(0, n - limit) : n]))
            body = {"chunk": chunk, "start": f"m{n}", "end": f"m{max(0, n - limit)}"}
            self._start()
            return _json(200, body)
        if self.on_poll is not None:
            self.on_poll(self)
        n = self.position_of(params.get("from"))
        if n is None:
            return _json(400, {"errcode": "M_INVALID_PARAM", "error": "Invalid from token"})
        chunk = self.timeline[n : n + limit]
        body: dict[str, Any] = {"chunk": chunk, "start": params["from"]}
        if chunk:  # an empty page has no `end`: nothing further yet
            body["end"] = f"m{n + len(chunk)}"
        return _json(200, body)

    def _state(self, request: Any) -> Reply:
        if self.state_error is not None:
            return _json(*self.state_error)
        return _json(200, self.state)

    def _summary(self, request: Any) -> Reply:
        form = "unstable" if "im.nheko.summary" in request.url else "v1"
        if self.summary is None or form not in self.summary_forms:
            return _json(404, UNRECOGNIZED)
        if self.summary_needs_token and not request.headers.get("Authorization"):
            return _json(401, {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
        return _json(200, self.summary)

    def _federation(self, request: Any) -> Reply:
        if not self.federation:
            return 404, {"Content-Type": "text/html"}, "<html>404 Not Found</html>"
        name, version = SOFTWARE[self.software]
        return _json(200, {"server": {"name": name, "version": version}})

    # -- what the server saw --------------------------------------------------------------------

    def calls(self, part: str) -> list[Any]:
        return [c for c in self.rsps.calls if part in unquote(c.request.url)]

    def add(self, *events: dict[str, Any]) -> None:
        self.timeline.extend(events)


def messages(first: int, last: int) -> list[dict[str, Any]]:
    return [message(i) for i in range(first, last + 1)]
