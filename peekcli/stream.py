"""The stream loop: a strategy yields chunks; one place owns "write, flush, then save position".

Nothing else advances a position. A chunk's events are written to the sink, the sink is flushed,
and only then is the chunk's `end` saved. When a run stops inside a chunk (`--max-events`, a
signal, a closed pipe) the saved position is the chunk's start plus the id of the last event that
was written, and the next run skips through that event: nothing is lost and nothing repeats.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from peekcli import signals
from peekcli.client import JSON, MatrixClient
from peekcli.errors import (
    InvalidTokenError,
    MatrixError,
    NetworkError,
    NotSupported,
    RateLimited,
    TokenRejected,
)
from peekcli.state import Position, StateStore

#: Ask for this many events per request: Synapse honours up to 1000, so a backlog drains fast.
BATCH_LIMIT = 1000


@dataclass
class Chunk:
    """One batch of events; `start` is the token it was asked from (None for initialSync)."""

    events: list[JSON]
    start: str | None
    end: str


class Strategy(Protocol):
    kind: str

    def fetch(self, token: str, *, drain: bool) -> Chunk: ...


class EventsStrategy:
    """`GET /events?room_id=…&from=…`: long-polls until events arrive or time runs out."""

    kind = "events"

    def __init__(self, client: MatrixClient, room_id: str, timeout_ms: int) -> None:
        self.client = client
        self.room_id = room_id
        self.timeout_ms = timeout_ms

    def fetch(self, token: str, *, drain: bool) -> Chunk:
        try:
            reply = self.client.events(
                self.room_id, token, 0 if drain else self.timeout_ms, BATCH_LIMIT
            )
        except MatrixError as exc:
            if exc.status == 400:  # the spec's only 400 here: a bad `from`
                raise InvalidTokenError(exc.message, status=400, errcode=exc.errcode) from None
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


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter; `max_retries=None` retries for ever."""

    max_retries: int | None = None
    base: float = 1.0
    cap: float = 60.0
    rand: Callable[[float, float], float] = random.uniform

    def delay(self, attempt: int) -> float:
        return self.rand(0.0, min(self.cap, self.base * 2**attempt))


class Sink(Protocol):
    """Where delivered events go; `flush` makes everything written so far durable for the reader."""

    def write(self, event: JSON) -> None: ...

    def flush(self) -> None: ...


def _ignore(*_: Any) -> None:
    return None


@dataclass
class Hooks:
    """How the loop talks to the outside (status line, warnings, token renewal)."""

    status: Callable[[str | None], None] = _ignore
    warn: Callable[[str], None] = _ignore
    renew_token: Callable[[], bool] = lambda: False


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
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    delivered: int = 0
    saved: Position | None = None

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
        while not self.done:
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
        attempt = 0
        failing = False
        while True:
            try:
                chunk = self.strategy.fetch(token, drain=drain)
            except TokenRejected:
                if not self.hooks.renew_token():
                    raise
                continue
            except NetworkError as exc:
                if self.retry.max_retries is not None and attempt >= self.retry.max_retries:
                    raise
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    delay = exc.retry_after
                    what = "rate limited"
                else:
                    delay = self.retry.delay(attempt)
                    what = "connection lost" if not failing else "still failing"
                failing = True
                attempt += 1
                self.hooks.status(f"{what}: {exc.message}; retrying in {delay:.0f} s…")
                self.sleep(delay)
                continue
            if failing:
                self.hooks.status(None)
            return chunk

    def _wanted(self, event: JSON) -> bool:
        if not self.include_ephemeral and is_ephemeral(event):
            return False
        return self.accept is None or self.accept(event)

    def _deliver(
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
                events = events[cut:]
        written = False
        try:
            for i, event in enumerate(events):
                if self._wanted(event):
                    self.sink.write(event)
                    written = True
                    self.delivered += 1
                event_id = event.get("event_id")
                if isinstance(event_id, str):
                    last_id = event_id
                if self.done and i < len(events) - 1:
                    self.sink.flush()
                    self._save_partial(chunk, last_id)
                    return
        except BaseException:
            # Stopped mid-chunk (signal, closed pipe, failing sink): save what the reader got.
            if written:
                try:
                    self.sink.flush()
                except BaseException:
                    raise
                self._save_partial(chunk, last_id)
            raise
        self.sink.flush()
        self._save(Position(chunk.end, self.strategy.kind, last_id, self.alias))

    def _save_partial(self, chunk: Chunk, last_id: str | None) -> None:
        if chunk.start is None:
            # History from initialSync is context, not news: go on from its end next time.
            self._save(Position(chunk.end, self.strategy.kind, last_id, self.alias))
        elif last_id is not None:
            self._save(Position(chunk.start, self.strategy.kind, last_id, self.alias, partial=True))

    def _save(self, position: Position) -> None:
        with signals.deferred():
            self.store.save(self.homeserver, self.room_id, position)
            self.saved = position
