"""The stream loop: a strategy yields chunks; one place owns "write, flush, then save position".

Nothing else advances a position. A chunk's events are written to the sink, the sink is flushed,
and only then is the chunk's `end` saved. When a run stops inside a chunk (`--max-events`, a
signal, a closed pipe) the saved position is the chunk's start plus the id of the last event that
was written, and the next run skips through that event: nothing is lost and nothing repeats.
"""

from __future__ import annotations

import contextlib
import errno
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from peekcli import signals
from peekcli.client import JSON, LONG_POLL_MARGIN, MatrixClient
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
from peekcli.state import Position, StateStore

#: Ask for this many events per request: Synapse honours up to 1000, so a backlog drains fast.
BATCH_LIMIT = 1000
#: The longest we let a long-poll's read timeout stretch past the asked timeout, in seconds.
MAX_READ_MARGIN = 240.0


T = TypeVar("T")
_NO_DEFER = contextlib.nullcontext()


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
    ) -> None:
        self.client = client
        self.room_id = room_id
        self.timeout_ms = timeout_ms
        self.clock = clock
        #: Seconds we wait beyond the asked timeout; grows when a server holds polls longer.
        self.read_margin = LONG_POLL_MARGIN

    def fetch(self, token: str, *, drain: bool) -> Chunk:
        if not token:
            # tuwunel takes a missing or empty `from` as 0 and replays the room from its start.
            raise InvalidTokenError("the stream position is empty", status=400)
        timeout_ms = 0 if drain else self.timeout_ms
        read_timeout = timeout_ms / 1000 + self.read_margin
        started = self.clock()
        try:
            reply = self.client.events(
                self.room_id, token, timeout_ms, BATCH_LIMIT, read_timeout=read_timeout
            )
        except MatrixError as exc:
            if exc.status == 400:  # the spec's only 400 here: a bad `from`
                raise InvalidTokenError(exc.message, status=400, errcode=exc.errcode) from None
            raise
        except NetworkError as exc:
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
    if not isinstance(chunk, list):
        raise NetworkError("the server sent a reply without a usable event list")
    return [ev for ev in chunk if isinstance(ev, dict) and ev.get("room_id") in (None, room_id)]


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
        try:
            reply = self.client.messages(self.room_id, token, "f", BATCH_LIMIT)
        except MatrixError as exc:
            if exc.status == 400:
                raise InvalidTokenError(exc.message, status=400, errcode=exc.errcode) from None
            raise
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


def is_ephemeral(event: JSON) -> bool:
    """Presence, typing and receipts: no `event_id`, not part of the timeline."""
    return not isinstance(event.get("event_id"), str)


#: How the loop waits and draws its jitter. Module attributes looked up when a `Follower` or
#: `RetryPolicy` is made (not defaults bound at import), so a test can swap them for a whole CLI
#: run and watch the backoff without waiting for it.
pause: Callable[[float], None] = time.sleep
jitter: Callable[[float, float], float] = random.uniform


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter; `max_retries=None` retries for ever.

    A drain (snapshot, usually from cron) retries quickly: its delays stop growing at
    `quick_cap`, so a dead server ends the run in seconds and the next run tries again.
    """

    max_retries: int | None = None
    base: float = 1.0
    cap: float = 60.0
    quick_cap: float = 4.0
    rand: Callable[[float, float], float] = field(default_factory=lambda: jitter)

    def delay(self, attempt: int, *, quick: bool = False) -> float:
        cap = min(self.cap, self.quick_cap) if quick else self.cap
        return self.rand(0.0, min(cap, self.base * 2 ** min(attempt, 32)))


class Sink(Protocol):
    """Where delivered events go; `flush` makes everything written so far durable for the reader."""

    def write(self, event: JSON) -> None: ...

    def flush(self) -> None: ...

    def reader_gone(self) -> bool:
        """Asked after a batch is flushed *and saved*: is the reader still there?"""
        ...


def _ignore(*_: Any) -> None:
    return None


def _seconds(delay: float) -> str:
    """A wait for the status line: "8 s", "2.5 s", "45 s"."""
    return f"{round(delay)} s" if delay >= 10 else f"{round(delay, 1):g} s"


@dataclass
class Hooks:
    """How the loop talks to the outside (status line, warnings, token renewal)."""

    status: Callable[[str | None], None] = _ignore
    warn: Callable[[str], None] = _ignore
    renew_token: Callable[[], bool] = lambda: False


def retrying(
    call: Callable[[], T],
    retry: RetryPolicy,
    hooks: Hooks,
    *,
    quick: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """`call()`, retrying what is worth retrying, with a status line while it fails.

    Network failures, 5xx and unreadable replies back off (quickly when `quick`, as in a
    drain), a rate limit waits as long as the server asks, and a rejected guest token is
    replaced once through `hooks.renew_token`.
    """
    wait = sleep if sleep is not None else pause
    attempt = 0
    renewed = False
    while True:
        try:
            try:
                result = call()
            except TokenRejected:
                # A fresh guest refused at once would make this loop for ever: give up then.
                if renewed or not hooks.renew_token():
                    raise
                renewed = True
                continue
        except NetworkError as exc:  # also a renewal that failed on the network
            limit = retry.max_retries
            if limit is not None and attempt >= limit:
                if attempt == 0:
                    raise
                tries = "1 retry" if attempt == 1 else f"{attempt} retries"
                raise NetworkError(f"{exc.message} (gave up after {tries})") from None
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                delay = exc.retry_after
            else:
                delay = retry.delay(attempt, quick=quick)
            if isinstance(exc, RateLimited):
                what = "rate limited"
            elif attempt == 0:
                what = "connection lost"
            else:
                what = f"still failing ({attempt + 1} attempts)"
            attempt += 1
            hooks.status(f"{what}: {exc.message}; retrying in {_seconds(delay)}…")
            wait(delay)
            continue
        if attempt:
            hooks.status(None)
        return result


@dataclass
class Follower:
    """Follows one room from a position, delivering to a sink and saving after every chunk."""

    store: StateStore
    homeserver: str
    room_id: str
    strategy: Strategy
    sink: Sink
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    hooks: Hooks = field(default_factory=Hooks)
    include_ephemeral: bool = False
    accept: Callable[[JSON], bool] | None = None
    max_events: int | None = None
    alias: str | None = None
    #: Held around each chunk's "write, flush, save" when several rooms share one output.
    lock: AbstractContextManager[Any] | None = None
    sleep: Callable[[float], None] = field(default_factory=lambda: pause)
    clock: Callable[[], float] = time.monotonic
    delivered: int = 0
    saved: Position | None = None
    #: The replacement room, once a delivered chunk held a tombstone naming one: `run` stops
    #: after that chunk and every later save records it (see peekcli/upgrades.py).
    tombstone: str | None = None

    @property
    def done(self) -> bool:
        return self.max_events is not None and self.delivered >= self.max_events

    def deliver_history(self, chunk: Chunk) -> None:
        """Print initialSync's last events and save its `end` as the first position."""
        self._deliver(chunk, skip_through=None)

    def run(self, position: Position, *, drain: bool) -> None:
        """Follow from `position` until drained (`drain`), `max_events`, or for ever."""
        self.saved = position
        token, skip = position.token, position.last_event_id
        while not self.done and self.tombstone is None:
            started = self.clock()
            chunk = self._fetch(token, drain=drain)
            self._deliver(chunk, skip_through=skip, partial_resume=position.partial)
            skip = None
            if drain and (not chunk.events or chunk.end == token):
                return
            if not chunk.events and not drain and self.clock() - started < 0.5:
                # A server that answers an idle long-poll at once would make this a busy loop.
                self.sleep(1.0)
            token = chunk.end

    # -- internals -------------------------------------------------------------------------------

    def _fetch(self, token: str, *, drain: bool) -> Chunk:
        """The chunk after `token`, retried as `retrying` says; never moves the position.

        Every retry asks for the same `token`, so no failure can skip an event.
        """
        return retrying(
            lambda: self.strategy.fetch(token, drain=drain),
            self.retry,
            self.hooks,
            quick=drain,
            sleep=self.sleep,
        )

    def _wanted(self, event: JSON) -> bool:
        if not self.include_ephemeral and is_ephemeral(event):
            return False
        return self.accept is None or self.accept(event)

    def _deliver(
        self, chunk: Chunk, *, skip_through: str | None, partial_resume: bool = False
    ) -> None:
        if self.lock is None:
            self._deliver_chunk(chunk, skip_through=skip_through, partial_resume=partial_resume)
            return
        with self.lock:
            self._deliver_chunk(chunk, skip_through=skip_through, partial_resume=partial_resume)

    def _deliver_chunk(
        self, chunk: Chunk, *, skip_through: str | None, partial_resume: bool = False
    ) -> None:
        events = chunk.events
        last_id = self.saved.last_event_id if self.saved else None
        if skip_through is not None:
            ids = [ev.get("event_id") for ev in events]
            if skip_through in ids:
                cut = ids.index(skip_through) + 1
                if not partial_resume:
                    self.hooks.warn(
                        f"the server sent {cut} already delivered event(s) again; skipped them"
                    )
                for event in events[:cut]:
                    self._see_tombstone(event)
                events = events[cut:]
        written = complete = False
        # A sink that acts on each event (--exec) has the position pass each event at once.
        each = getattr(self.sink, "save_each_event", False) is True
        try:
            for i, event in enumerate(events):
                wanted = self._wanted(event)
                # A stop signal landing between "written" and "counted" would print an event
                # whose position is never saved: the pair is one step (an --exec sink, whose
                # command may run long, stays interruptible and simply does not count it).
                with signals.deferred() if wanted and not each else _NO_DEFER:
                    if wanted:
                        self.sink.write(event)
                        written = True
                        self.delivered += 1
                    event_id = event.get("event_id")
                    if isinstance(event_id, str):
                        last_id = event_id
                self._see_tombstone(event)
                if self.done and i < len(events) - 1:
                    self.sink.flush()
                    self._save_partial(chunk, last_id)
                    return
                if each and wanted and chunk.start is not None and i < len(events) - 1:
                    self.sink.flush()
                    self._save_partial(chunk, last_id)
            complete = True
            self.sink.flush()
        except BaseException:
            # Stopped mid-chunk or mid-flush (signal, closed pipe, failing sink): save what the
            # reader got. A flush that fails again (closed pipe) saves nothing: never too far.
            # A per-event sink stopped inside initialSync's history saves nothing either: the
            # next run starts afresh and hands the history over again (at least once).
            if (written or complete) and not (each and chunk.start is None):
                self.sink.flush()
                if complete:
                    self._save(Position(chunk.end, self.strategy.kind, last_id, self.alias))
                else:
                    self._save_partial(chunk, last_id)
            raise
        self._save(Position(chunk.end, self.strategy.kind, last_id, self.alias))
        # Only now: a reader that left after the flush may have read the batch (head -n 3), so
        # its position is saved first; raising before the save would hand it over again.
        if self.sink.reader_gone():
            raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")

    def _save_partial(self, chunk: Chunk, last_id: str | None) -> None:
        if chunk.start is None:
            # History from initialSync is context, not news: go on from its end next time.
            self._save(Position(chunk.end, self.strategy.kind, last_id, self.alias))
        elif last_id is not None:
            self._save(Position(chunk.start, self.strategy.kind, last_id, self.alias, partial=True))

    def _see_tombstone(self, event: JSON) -> None:
        if event.get("type") == "m.room.tombstone":
            from peekcli.upgrades import replacement_of

            self.tombstone = replacement_of(event, self.room_id) or self.tombstone

    def _save(self, position: Position) -> None:
        if self.tombstone is not None:
            position.extra["replaced_by"] = self.tombstone
        with signals.deferred():
            self.store.save(self.homeserver, self.room_id, position)
            self.saved = position
