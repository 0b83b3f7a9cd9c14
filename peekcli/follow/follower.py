"""The stream loop: a strategy yields chunks; one place owns "write, flush, then save position".

Nothing else advances a position. A chunk's events are written to the sink, the sink is flushed,
and only then is the chunk's `end` saved. When a run stops inside a chunk (`--max-events`, a
signal, a closed pipe) the saved position is the chunk's start plus the id of the last event that
was written, and the next run skips through that event: nothing is lost and nothing repeats.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from peekcli import retry as backoff
from peekcli import signals
from peekcli.follow.plan import Hooks
from peekcli.follow.strategies import Chunk, Strategy
from peekcli.matrix.client import JSON
from peekcli.matrix.events import RecentIds, is_ephemeral, replacement_of
from peekcli.retry import RetryPolicy, retrying
from peekcli.sinks import Sink
from peekcli.state import Position, StateStore

_NO_DEFER = contextlib.nullcontext()
#: The longest wait between requests while a server answers with nothing but repeats.
MAX_STALL = 30.0


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
    #: Save the position after every event the sink took, not only after every chunk (--exec).
    save_each_event: bool = False
    sleep: Callable[[float], None] = field(default_factory=lambda: backoff.pause)
    clock: Callable[[], float] = time.monotonic
    delivered: int = 0
    saved: Position | None = None
    #: The position this run last wrote to the store (`saved`, unless it came from elsewhere).
    written: Position | None = None
    #: The replacement room, once a delivered chunk held a tombstone naming one: `run` stops
    #: after that chunk and every later save records it (see peekcli/follow/upgrades.py).
    tombstone: str | None = None
    #: Events delivered lately: one a server sends again is dropped, not printed twice.
    recent: RecentIds = field(default_factory=RecentIds)
    #: The current wait after chunks that brought nothing new (0: the last one did).
    stalled: float = 0.0

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
            fresh = self._deliver(chunk, skip_through=skip, partial_resume=position.partial)
            skip = None
            # Events, every one delivered before: the server repeats itself (with the same `end`
            # or a new one). A drain has all there is; a follow backs off instead of flooding.
            repeated = bool(chunk.events) and not fresh
            if drain and (not chunk.events or chunk.end == token or repeated):
                return
            if repeated:
                self.stalled = min(max(self.stalled * 2, 1.0), MAX_STALL)
                self.sleep(self.stalled)
            elif fresh:
                self.stalled = 0.0
            elif not drain and self.clock() - started < 0.5:
                # A server that answers an idle long-poll at once would make this a busy loop.
                self.sleep(1.0)
            token = chunk.end

    # -- internals -------------------------------------------------------------------------------

    def _fetch(self, token: str, *, drain: bool) -> Chunk:
        """The chunk after `token`, retried as `retrying` says; never moves the position.

        Every retry asks for the same `token`, so no failure can skip an event. A retry asks
        without waiting (as a drain does): after an outage, with many rooms on the server, the
        room that probes it tells the others at once that it is back, rather than at the end of
        a long-poll while they all wait (peekcli/retry.py `Gate`).
        """
        tries = 0

        def fetch() -> Chunk:
            nonlocal tries
            tries += 1
            return self.strategy.fetch(token, drain=drain or tries > 1)

        return retrying(
            fetch,
            self.retry,
            status=self.hooks.status,
            renew=self.hooks.renew_token,
            quick=drain,
            sleep=self.sleep,
        )

    def _wanted(self, event: JSON) -> bool:
        if not self.include_ephemeral and is_ephemeral(event):
            return False
        return self.accept is None or self.accept(event)

    def _deliver(
        self, chunk: Chunk, *, skip_through: str | None, partial_resume: bool = False
    ) -> int:
        """Deliver `chunk`; the number of its events not delivered before."""
        if self.lock is None:
            return self._deliver_chunk(
                chunk, skip_through=skip_through, partial_resume=partial_resume
            )
        with self.lock:
            return self._deliver_chunk(
                chunk, skip_through=skip_through, partial_resume=partial_resume
            )

    def _deliver_chunk(
        self, chunk: Chunk, *, skip_through: str | None, partial_resume: bool = False
    ) -> int:
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
                    self.recent.seen(event)
                events = events[cut:]
        events = [event for event in events if not self.recent.seen(event)]
        written = complete = False
        # A sink that acts on each event (--exec) has the position pass each event at once.
        each = self.save_each_event
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
                    return i + 1
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
        if chunk.events or not self._unmoved(chunk):
            self._save(Position(chunk.end, self.strategy.kind, last_id, self.alias))
        # Only now: a reader that left after the flush may have read the batch (head -n 3), so
        # its position is saved first; raising before the save would hand it over again.
        if self.sink.reader_gone():
            raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")
        return len(events)

    def _unmoved(self, chunk: Chunk) -> bool:
        """An empty long-poll reply leaves the saved position as good as its new `end`.

        Nothing of this room lies between the two tokens, so resuming from either delivers the
        same events. Not saving it spares a write (and an fsync) per idle reply: with a
        thousand rooms, that was most of what an idle run cost. A position not in the store
        yet (`--from`), a partial one, or one of another endpoint is saved.
        """
        saved = self.saved
        return (
            chunk.start is not None
            and saved is not None
            and saved is self.written
            and not saved.partial
            and saved.kind == self.strategy.kind
            and self.tombstone is None
        )

    def _save_partial(self, chunk: Chunk, last_id: str | None) -> None:
        if chunk.start is None:
            # History from initialSync is context, not news: go on from its end next time.
            self._save(Position(chunk.end, self.strategy.kind, last_id, self.alias))
        elif last_id is not None:
            self._save(Position(chunk.start, self.strategy.kind, last_id, self.alias, partial=True))

    def _see_tombstone(self, event: JSON) -> None:
        self.tombstone = replacement_of(event, self.room_id) or self.tombstone

    def _save(self, position: Position) -> None:
        if self.tombstone is not None:
            position.extra["replaced_by"] = self.tombstone
        with signals.deferred():
            self.store.save(self.homeserver, self.room_id, position)
            self.saved = self.written = position
