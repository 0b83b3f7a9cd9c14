"""How a room is read: a strategy turns a stream token into the next `Chunk(events, end)`.

`/events` long-polling, `/messages` polling where a server lacks /events peeking, `auto` (the
first, falling back to the second before it ever worked), and the first position of a fresh
start (initialSync, or `/messages?dir=b` where that is refused). Strategies never save anything:
the follower (peekcli/follow/follower.py) owns "write, flush, save".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from peekcli.errors import (
    ForbiddenError,
    InvalidTokenError,
    MatrixError,
    NetworkError,
    NotSupported,
    PeekError,
    RateLimited,
    TokenRejected,
    UnrecognizedError,
)
from peekcli.matrix.client import JSON, LONG_POLL_MARGIN, MatrixClient
from peekcli.matrix.events import room_events

#: Ask for this many events per request: Synapse honours up to 1000, so a backlog drains fast.
BATCH_LIMIT = 1000
#: The longest we let a long-poll's read timeout stretch past the asked timeout, in seconds.
MAX_READ_MARGIN = 240.0


#: The long-poll most clients ask for (Element's /sync): what proxies in front of homeservers
#: are set up to let through (nginx cuts at 60 s by default, Cloudflare at 100 s).
USUAL_TIMEOUT_MS = 30_000


class LongPoll:
    """The timeout the long-polls of one homeserver ask for, shared by a run's rooms there.

    Following many rooms, peek asks for longer polls than usual (fewer idle replies). Something
    between peek and the server may cut such a poll short (a proxy's read timeout, answered
    with a 502/504/524 or a closed connection): the first poll cut after at least the usual
    30 s, but well before its own timeout, brings every room of the server back to 30 s, and
    `on_cut` says so once.
    """

    def __init__(self, ms: int, on_cut: Callable[[float], None] | None = None) -> None:
        self.ms = ms
        self.on_cut = on_cut
        self._lock = threading.Lock()

    def cut(self, asked_ms: int, after: float) -> None:
        """A poll that asked for `asked_ms` failed `after` seconds."""
        if asked_ms <= USUAL_TIMEOUT_MS or not USUAL_TIMEOUT_MS <= after * 1000 < 0.9 * asked_ms:
            return
        with self._lock:
            if self.ms <= USUAL_TIMEOUT_MS:
                return
            self.ms = USUAL_TIMEOUT_MS
        if self.on_cut is not None:
            self.on_cut(after)


@dataclass
class Chunk:
    """One batch of events; `start` is the token it was asked from (None for initialSync)."""

    events: list[JSON]
    start: str | None
    end: str


class Strategy(Protocol):
    """Fetches the chunk after `token`; `kind` names the endpoint its tokens belong to."""

    @property
    def kind(self) -> str: ...

    def fetch(self, token: str, *, drain: bool) -> Chunk: ...


class EventsStrategy:
    """`GET /events?room_id=…&from=…`: long-polls until events arrive or time runs out."""

    kind = "events"

    def __init__(
        self,
        client: MatrixClient,
        room_id: str,
        timeout_ms: int,
        clock: Callable[[], float] = time.monotonic,
        poll: LongPoll | None = None,
    ) -> None:
        self.client = client
        self.room_id = room_id
        self.timeout_ms = timeout_ms
        self.clock = clock
        #: Shared with the run's other rooms on this server: its timeout replaces `timeout_ms`.
        self.poll = poll
        #: Seconds we wait beyond the asked timeout; grows when a server holds polls longer.
        self.read_margin = LONG_POLL_MARGIN

    def fetch(self, token: str, *, drain: bool) -> Chunk:
        if not token:
            # tuwunel takes a missing or empty `from` as 0 and replays the room from its start.
            raise InvalidTokenError("the stream position is empty", status=400)
        timeout_ms = 0 if drain else self.poll.ms if self.poll is not None else self.timeout_ms
        read_timeout = timeout_ms / 1000 + self.read_margin
        started = self.clock()
        try:
            reply = self.client.events(
                self.room_id, token, timeout_ms, BATCH_LIMIT, read_timeout=read_timeout
            )
        except NetworkError as exc:
            if self.poll is not None and not isinstance(exc, RateLimited):
                self.poll.cut(timeout_ms, self.clock() - started)
            if not isinstance(exc, RateLimited) and self.clock() - started >= read_timeout - 1:
                # Servers clamp long-polls (tuwunel up to 90 s, Construct 5-15 s): one that held
                # the request past our read timeout gets more time on the next try.
                self.read_margin = min(self.read_margin * 2, MAX_READ_MARGIN)
            raise
        end = reply.get("end")
        if not isinstance(end, str) or not end:
            # Dendrite's stub answers 200 with empty tokens: polling it again would loop on nothing.
            raise NotSupported(
                f"{self.client.base_url} does not implement room peeking through /events "
                "(it answered with no stream token)"
            )
        return Chunk(_events_of(reply.get("chunk"), self.room_id), token, end)


def _events_of(chunk: Any, room_id: str) -> list[JSON]:
    events = room_events(chunk, room_id)
    if events is None:
        raise NetworkError("the server sent a reply without a usable event list")
    return events


#: While a room is quiet the poll interval grows by this factor after every empty poll.
POLL_BACKOFF = 1.5
#: ...up to this many seconds (or the asked interval, if that is longer).
POLL_MAX_INTERVAL = 30.0


class MessagesStrategy:
    """`GET /rooms/{id}/messages?dir=f&from=…`, polled: the fallback where /events is missing.

    An empty poll sleeps before handing back, so the loop never spins: the interval starts at
    `interval`, grows while the room is quiet and snaps back as soon as events arrive. A drain
    (snapshot) never sleeps. A reply without `end` means "nothing after this yet": the same
    `from` is asked again, and events already handed out for it are dropped, so a server that
    omits `end` after a non-empty chunk does not repeat them.
    """

    kind = "messages"

    def __init__(
        self,
        client: MatrixClient,
        room_id: str,
        interval: float = 2.0,
        max_interval: float = POLL_MAX_INTERVAL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.room_id = room_id
        self.interval = interval
        self.max_interval = max(max_interval, interval)
        self.delay = interval
        self.sleep = sleep
        #: (token, id of the last event returned for it) when the reply carried no `end`.
        self._stuck: tuple[str, str] | None = None

    def fetch(self, token: str, *, drain: bool) -> Chunk:
        if not token:
            raise InvalidTokenError("the stream position is empty", status=400)
        reply = self.client.messages(self.room_id, token, "f", BATCH_LIMIT)
        events = _events_of(reply.get("chunk"), self.room_id)
        end = reply.get("end")
        if not isinstance(end, str) or not end:
            end = token
            if self._stuck is not None and self._stuck[0] == token:
                ids = [ev.get("event_id") for ev in events]
                if self._stuck[1] in ids:
                    events = events[ids.index(self._stuck[1]) + 1 :]
            last = next(
                (ev["event_id"] for ev in reversed(events) if isinstance(ev.get("event_id"), str)),
                None,
            )
            if last is not None:
                self._stuck = (token, last)
        else:
            self._stuck = None
        if events:
            self.delay = self.interval
        elif not drain:
            self.sleep(self.delay)
            self.delay = min(self.delay * POLL_BACKOFF, self.max_interval)
        return Chunk(events, token, end)


def _ignore_error(_: PeekError) -> None:
    return None


class AutoStrategy:
    """/events while the server serves it; /messages polling once it shows it does not.

    "Does not" means 404/405 `M_UNRECOGNIZED` or Dendrite's stub (200 with an empty `end`), and
    only before /events has ever answered properly: a working stream that fails later is an
    error, not a reason to switch endpoints under a token. The token carries over: it came from
    initialSync or `--from`, not from an /events reply, since this server has none.
    """

    def __init__(
        self,
        events: EventsStrategy,
        messages: MessagesStrategy,
        on_fallback: Callable[[PeekError], None] = _ignore_error,
    ) -> None:
        self.events = events
        self.messages = messages
        self.on_fallback = on_fallback
        self.current: EventsStrategy | MessagesStrategy = events
        self.confirmed = False
        #: Why /events was given up (None while it is in use).
        self.reason: PeekError | None = None

    @property
    def kind(self) -> str:
        return self.current.kind

    def fetch(self, token: str, *, drain: bool) -> Chunk:
        if self.current is self.events:
            try:
                chunk = self.events.fetch(token, drain=drain)
            except (NotSupported, UnrecognizedError) as exc:
                if self.confirmed:
                    raise
                self.reason = exc
                self.current = self.messages
                self.on_fallback(exc)
                return self._first_messages(token, drain=drain)
            self.confirmed = True
            return chunk
        return self.messages.fetch(token, drain=drain)

    def _first_messages(self, token: str, *, drain: bool) -> Chunk:
        """The fallback's first poll: if /messages fails too, say so instead of retrying."""
        try:
            return self.messages.fetch(token, drain=drain)
        except (RateLimited, ForbiddenError, TokenRejected, InvalidTokenError):
            raise
        except (NetworkError, MatrixError) as exc:
            raise NoFallback(self.reason, exc) from None


class NoFallback(NotSupported):
    """Neither /events nor the /messages fallback works on this server."""

    def __init__(self, events_error: PeekError | None, messages_error: PeekError) -> None:
        super().__init__(
            f"no /events peeking ({events_error.message if events_error else 'unknown'}) "
            f"and /messages failed too ({messages_error.message})"
        )
        self.events_error = events_error
        self.messages_error = messages_error


def messages_start(client: MatrixClient, room_id: str, history: int) -> Chunk:
    """Where initialSync is refused: the last `history` events and a /messages token for now.

    `GET /messages?dir=b` without `from` starts at the live end; its `start` is that position.
    """
    reply = client.messages(room_id, None, "b", max(history, 1))
    start = reply.get("start")
    if not isinstance(start, str) or not start:
        raise NetworkError(f"{client.base_url} sent a /messages reply without a start token")
    events = list(reversed(_events_of(reply.get("chunk"), room_id)))
    return Chunk(events[-history:] if history > 0 else [], None, start)


def initial_sync(client: MatrixClient, room_id: str, history: int) -> tuple[Chunk, JSON]:
    """The first position (`messages.end`) and the last `history` events before it."""
    reply = client.initial_sync(room_id, max(history, 1))
    messages = reply.get("messages")
    end = messages.get("end") if isinstance(messages, dict) else None
    if not isinstance(end, str) or not end:
        raise NetworkError(f"{client.base_url} sent an initialSync reply without messages.end")
    events = _events_of(messages.get("chunk", []) if isinstance(messages, dict) else [], room_id)
    events = events[-history:] if history > 0 else []
    return Chunk(events, None, end), reply


# -- the catch-up walk of a replacement room (peekcli/follow/upgrades.py) ------------------------

#: Kind of the position that walks a replacement room from its start.
CATCHUP = "catchup"
#: Empty pages with a new `end` in a row (events hidden from us) before a walk counts as done.
MAX_EMPTY_PAGES = 100


@dataclass
class Cursor:
    """Where a catch-up walk stands: next `/messages` token (None: the start), its bound, and
    which kind of live position the bound is."""

    to: str
    live: str = "events"
    after: str | None = None
    done: bool = False

    def encode(self) -> str:
        doc: dict[str, Any] = {"to": self.to, "live": self.live}
        if self.after is not None:
            doc["from"] = self.after
        if self.done:
            doc["done"] = True
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            doc = json.loads(token)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("to"), str):
            raise InvalidTokenError("the saved catch-up position is unreadable", status=400)
        after = doc.get("from")
        live = doc.get("live")
        return cls(
            to=doc["to"],
            live=live if live in ("events", "messages") else "events",
            after=after if isinstance(after, str) else None,
            done=doc.get("done") is True,
        )


class CatchUpStrategy:
    """Pages `/messages?dir=f` from the room's start up to the live position (`to=`).

    Pages whose events are all hidden from us come back empty but with a new `end`; they are
    skipped here (up to `MAX_EMPTY_PAGES` in a row), since an empty chunk ends a drain.
    """

    kind = CATCHUP

    def __init__(self, client: Any, room_id: str) -> None:
        self.client = client
        self.room_id = room_id

    def fetch(self, token: str, *, drain: bool) -> Chunk:
        cursor = Cursor.decode(token)
        if cursor.done:
            return Chunk([], token, token)
        after = cursor.after
        for _ in range(MAX_EMPTY_PAGES):
            reply = self.client.messages(self.room_id, after, "f", BATCH_LIMIT, to=cursor.to)
            events = _events_of(reply.get("chunk"), self.room_id)
            end = reply.get("end")
            if not isinstance(end, str) or not end or end == after:
                return Chunk(events, token, replace(cursor, after=after, done=True).encode())
            if events:
                return Chunk(events, token, replace(cursor, after=end).encode())
            after = end
        return Chunk([], token, replace(cursor, after=after, done=True).encode())
