"""The walk: a room's history, newest first, from `GET /messages?dir=b` pages, into the spill.

Paging backwards is the one way through a room's past. Each page (up to 1000 events; the server
may send fewer, and only a reply without `end`, with an empty chunk or with an `end` equal to its
`from` says the start is reached) is filtered by `--since`/`--until`/`--limit` and appended to
the spill, and the walk's state is committed (the sidecar) before the next request. With
`--until` the walk starts at that time (`timestamp_to_event`) instead of the room's end. With
`--follow-predecessors`, once a room's start is reached its `m.room.create` names the room it
replaced, which is walked next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from peekcli import signals
from peekcli.errors import ForbiddenError, NetworkError, NotFoundError, PeekError
from peekcli.export.files import Spill
from peekcli.export.plan import ExportState, Progress, RoomWalk, event_ts, ignore
from peekcli.matrix.client import API, JSON, MatrixClient, q
from peekcli.matrix.events import RecentIds, predecessor_of, room_events
from peekcli.retry import MAX_QUICK_WAIT, RetryPolicy, retrying

#: Events asked for per page: the most Synapse serves in one reply.
PAGE_LIMIT = 1000


@dataclass
class Walk:
    """Walks the rooms backwards page by page into the spill, committing after every page."""

    client: MatrixClient
    state: ExportState
    spill: Spill
    commit: Callable[[ExportState], None] = ignore
    progress: Callable[[Progress], None] = ignore
    #: Each page's kept events once they are in the spill (newest first): `--media` starts
    #: their downloads while the walk goes on.
    on_page: Callable[[list[JSON]], None] = ignore
    warn: Callable[[str], None] = ignore
    renew_token: Callable[[], bool] = lambda: False
    max_retries: int = 5
    #: None: the retry module's own pause (which tests replace).
    sleep: Callable[[float], None] | None = None
    requests: int = 0
    #: Events of the last pages: a page of nothing but these ends the room's walk.
    recent: RecentIds = field(default_factory=RecentIds)

    def run(self) -> None:
        state = self.state
        if not state.rooms:
            state.rooms.append(RoomWalk(state.room_id))
        while not state.finished:
            walk = next((w for w in state.rooms if not w.done), None)
            if walk is None:
                self._next_room()
                continue
            self._page(walk)

    def _page(self, walk: RoomWalk) -> None:
        state, rng = self.state, self.state.range
        first_room = walk is self.state.rooms[0]
        if walk.token is None and rng.until_ms is not None and not walk.jumped:
            self._jump(walk, rng.until_ms)
            if walk.done:
                self._commit()
                return
        try:
            reply = self._call(
                lambda: self.client.messages(walk.room_id, walk.token, "b", PAGE_LIMIT)
            )
        except (ForbiddenError, NotFoundError) as exc:
            if first_room:
                raise
            self.warn(
                f"cannot read {walk.room_id}, the room {state.rooms[0].room_id} came from "
                f"({exc.message}); the export starts where that room starts"
            )
            state.finished = True
            self._commit()
            return
        events = room_events(reply.get("chunk"), walk.room_id)
        if events is None:
            raise NetworkError(f"{self.client.base_url} sent a /messages reply without a chunk")
        fresh = [ev for ev in events if not self.recent.seen(ev)]
        if events and not fresh:
            # Only events already walked (a server repeating a page under a new `end`): going
            # on would never end, and would write them twice.
            self.warn(
                f"{self.client.base_url} sent a page it had sent already; {walk.room_id} ends here"
            )
        repeated = bool(events) and not fresh
        events = fresh
        kept: list[JSON] = []
        stop = False
        for event in events:  # newest first
            ts = event_ts(event)
            if rng.since_ms is not None and ts is not None and ts < rng.since_ms:
                # Older than --since: this page is the last one. Its other events are still
                # judged by their own time, since clocks (and federated servers) disagree a bit.
                stop = True
                continue
            if rng.until_ms is not None and ts is not None and ts > rng.until_ms:
                continue
            kept.append(event)
            if rng.limit is not None and state.count + len(kept) >= rng.limit:
                stop = True
                break
        end = reply.get("end")
        with signals.deferred():
            if kept:
                self.spill.append(kept)
                state.count += len(kept)
                for ts in map(event_ts, kept):
                    if ts is not None and (state.oldest_ts is None or ts < state.oldest_ts):
                        state.oldest_ts = ts
            if stop:
                walk.done = True
                state.finished = True
            elif repeated or not events or not isinstance(end, str) or not end or end == walk.token:
                walk.done = True
            else:
                walk.token = end
            self._commit()
        if kept:
            self.on_page(kept)
        self.progress(Progress(state.count, state.oldest_ts, walk.room_id, "fetching"))

    def _jump(self, walk: RoomWalk, until_ms: int) -> None:
        """Start the walk at `--until` instead of the room's end: the last event at or before
        it (`GET /v1/rooms/{id}/timestamp_to_event`, spec v1.6), and a token just after it from
        `/context`. Two requests instead of every page since `--until`; where the server has no
        such endpoint (or says anything odd) the walk starts at the end, as before."""
        walk.jumped = True
        room = q(walk.room_id)
        path = f"/_matrix/client/v1/rooms/{room}/timestamp_to_event"
        # One try each, no retries: on any trouble the walk from the end still gets every event.
        try:
            self.requests += 1
            found = self.client.request("GET", path, params={"ts": until_ms, "dir": "b"})
        except NotFoundError as exc:
            if exc.errcode == "M_NOT_FOUND":
                walk.done = True  # nothing at or before --until in this room
            return
        except PeekError:
            return
        event_id = found.get("event_id")
        if not isinstance(event_id, str) or not event_id.startswith("$") or len(event_id) > 255:
            return
        context_path = f"{API}/rooms/{room}/context/{q(event_id)}"
        try:
            self.requests += 1
            context = self.client.request("GET", context_path, params={"limit": 0})
        except PeekError:
            return
        end = context.get("end")
        if isinstance(end, str) and end:
            walk.token = end

    def _next_room(self) -> None:
        """Every room walked to its start: go on into the predecessor, or finish."""
        state = self.state
        newest_first = state.rooms[-1].room_id
        predecessor = self._predecessor(newest_first) if state.range.follow_predecessors else None
        if predecessor is None or predecessor in {w.room_id for w in state.rooms}:
            state.finished = True
        else:
            state.rooms.append(RoomWalk(predecessor))
        self._commit()

    def _predecessor(self, room_id: str) -> str | None:
        path = f"{API}/rooms/{q(room_id)}/state/m.room.create/"
        try:
            content = self._call(lambda: self.client.request("GET", path))
        except (ForbiddenError, NotFoundError) as exc:
            self.warn(f"cannot read the creation of {room_id} ({exc.message}); no older room")
            return None
        return predecessor_of(content)

    def _commit(self) -> None:
        self.commit(self.state)

    def _call(self, request: Callable[[], JSON]) -> JSON:
        """One request, with the one retry policy (`retry.retrying`: backoff with jitter,
        Retry-After on 429, a rejected guest renewed once); it never moves the walk."""

        def counted() -> JSON:
            self.requests += 1
            return request()

        def status(message: str | None) -> None:
            if message is not None:
                self.warn(message)

        policy = RetryPolicy(max_retries=self.max_retries, cap=30.0)
        return retrying(
            counted,
            policy,
            status=status,
            renew=self.renew_token,
            sleep=self.sleep,
            max_wait=MAX_QUICK_WAIT,  # one-shot: an hour's Retry-After gives up, saying so
        )
