"""A scriptable hostile homeserver: a real HTTP/1.1 server on 127.0.0.1, in a thread.

`responses` hands peek a finished body, so it cannot show what a server does *while* it
answers: an endless chunked body, a gzip bomb, one byte a second. This one writes to the socket.
Tests script each endpoint with a `Route` (method, path regex, behaviour); unscripted Matrix
endpoints get a plain world-readable room (guest registration, initialSync, quiet `/events`).

Bounded so a suite run against a peek without the limits still ends: every reply stops after
`MAX_BYTES` written or `MAX_SECONDS`, and `close()` stops the server and its handler threads.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOM = "!hostile:127.0.0.1"
#: Hard caps on one reply, so a test against an unbounded client cannot run away.
MAX_BYTES = 256 * 1024 * 1024
MAX_SECONDS = 20.0

Behaviour = Callable[["Handler", dict[str, str]], None]


def message(n: int, body: str | None = None, room: str = ROOM) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": room,
        "sender": "@mallory:127.0.0.1",
        "event_id": f"$ev{n}",
        "origin_server_ts": 1_700_000_000_000 + n * 1000,
        "content": {"msgtype": "m.text", "body": body if body is not None else f"message {n}"},
    }


@dataclass
class Route:
    method: str
    path: str  # a regex, matched against the path alone (no query)
    behaviour: Behaviour


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _dispatch(self) -> None:
        hs = self.server.hostile
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        hs.seen.append(
            Seen(self.command, parts.path, params, dict(self.headers.items()), time.monotonic())
        )
        for route in [*hs.routes, *hs.defaults()]:
            if route.method == self.command and re.fullmatch(route.path, parts.path):
                try:
                    route.behaviour(self, params)
                except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True
                return
        reply_json(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})(
            self, params
        )

    do_GET = do_POST = do_PUT = _dispatch

    # -- writing helpers -------------------------------------------------------------------------

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def budget(self) -> Iterator[None]:
        """Yields while the reply may go on: under MAX_BYTES/MAX_SECONDS and not closed."""
        deadline = time.monotonic() + MAX_SECONDS
        while time.monotonic() < deadline and not self.server.hostile.closed.is_set():
            yield


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: HostileServer


@dataclass
class HostileServer:
    routes: list[Route] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    room: str = ROOM
    history: list[dict[str, Any]] = field(default_factory=lambda: [message(1)])
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> HostileServer:
        server = _Server(("127.0.0.1", 0), Handler)
        server.hostile = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.closed.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def on(self, method: str, path: str, behaviour: Behaviour) -> None:
        """Script an endpoint; the first matching route answers (before the defaults)."""
        self.routes.insert(0, Route(method, path, behaviour))

    def calls(self, path_part: str) -> list[Seen]:
        return [s for s in self.seen if path_part in s.path]

    def defaults(self) -> list[Route]:
        whoami = {"user_id": "@me:127.0.0.1", "device_id": "D"}
        guest = {"user_id": "@guest:127.0.0.1", "access_token": "guest-token", "device_id": "D"}
        initial = {
            "room_id": self.room,
            "messages": {"chunk": self.history, "start": "s0", "end": "s1"},
            "state": [],
        }
        return [
            Route("GET", "/_matrix/client/versions", reply_json(200, {"versions": ["v1.11"]})),
            Route("POST", "/_matrix/client/v3/register", reply_json(200, guest)),
            Route("GET", r"/_matrix/client/v3/rooms/[^/]+/initialSync", reply_json(200, initial)),
            Route("GET", "/_matrix/client/v3/events", quiet_events),
            Route("GET", r"/_matrix/client/v3/rooms/[^/]+/messages", self.messages),
            Route("GET", "/_matrix/client/v3/account/whoami", reply_json(200, whoami)),
        ]

    def messages(self, h: Handler, params: dict[str, str]) -> None:
        """Backwards from the live end: the history; forwards: nothing new (no `end`)."""
        if params.get("dir") == "b":
            page = {"chunk": self.history[::-1], "start": params.get("from", "s1"), "end": "s0"}
            if params.get("from") == "s0":
                page = {"chunk": [], "start": "s0"}
        else:
            page = {"chunk": [], "start": params.get("from", "s1")}
        reply_json(200, page)(h, params)


# -- behaviours ---------------------------------------------------------------------------------


def reply_raw(status: int, body: bytes, headers: dict[str, str] | None = None) -> Behaviour:
    def run(h: Handler, params: dict[str, str]) -> None:
        h.head(
            status,
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                **(headers or {}),
            },
        )
        h.wfile.write(body)

    return run


def reply_json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Behaviour:
    return reply_raw(status, json.dumps(doc).encode(), headers)


def quiet_events(h: Handler, params: dict[str, str]) -> None:
    token = params.get("from", "s1")
    reply_json(200, {"chunk": [], "start": token, "end": token})(h, params)


def endless_chunked(h: Handler, params: dict[str, str]) -> None:
    """`{"chunk": [` and then filler for ever (until the budget or the client hangs up)."""
    h.head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    piece = b'{"chunk": [' + b'"' + b"A" * (1 << 20)
    sent = 0
    for _ in h.budget():
        h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        sent += len(piece)
        piece = b"A" * (1 << 20)
        if sent > MAX_BYTES:
            break
    h.close_connection = True


def gzip_bomb(decoded_size: int) -> Behaviour:
    """A small gzip body that inflates to `decoded_size` bytes of JSON string."""
    raw = b'{"chunk": [], "end": "' + b"A" * decoded_size + b'"}'
    body = gzip.compress(raw, compresslevel=9)

    def run(h: Handler, params: dict[str, str]) -> None:
        reply_raw(200, body, {"Content-Encoding": "gzip"})(h, params)

    return run


def trickle(body: bytes, per_second: float = 4.0) -> Behaviour:
    """Send `body` a byte at a time, `per_second` bytes a second (a read timeout never fires)."""

    def run(h: Handler, params: dict[str, str]) -> None:
        h.head(200, {"Content-Type": "application/json", "Content-Length": str(len(body) * 1000)})
        for i, _ in enumerate(h.budget()):
            h.wfile.write(body[i % len(body) : i % len(body) + 1])
            h.wfile.flush()
            if h.server.hostile.closed.wait(1 / per_second):
                break
        h.close_connection = True

    return run


def nested(depth: int) -> bytes:
    return b'{"chunk": ' + b"[" * depth + b"]" * depth + b', "end": "x"}'
