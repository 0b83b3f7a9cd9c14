"""Follow a room through its upgrades: a tombstone hands the watch over to the replacement room.

When the stream delivers `m.room.tombstone` (state key "") naming a `replacement_room`, the loop
stops after that chunk and the position it saves carries `replaced_by` (in the same atomic write
that moves past the tombstone, so no crash can lose the hand-over). Then, by default:

1. a live position for the new room is taken (initialSync, or the `/messages` fallback) and
   saved as a *catch-up* position (kind `catchup`) that also remembers where the walk stands;
2. old → new goes into the state file's redirect map, so `peek watch OLD` later goes straight on
   in the new room;
3. the new room's events are delivered from its very start with `GET /messages?dir=f` (no `from`:
   the room's first event), bounded by `to=` that live position, so nothing sent between the
   upgrade and the switch is lost and nothing is delivered twice; the catch-up position moves
   with every page, so a kill in the middle resumes the walk where it stopped;
4. the live stream goes on from that position with the usual strategy.

A fresh start (no saved position) on a room that was replaced before the history shown jumps to
the replacement as a fresh start there. `--no-follow` stops at the tombstone (exit 0) and names
the new room. A replacement that cannot be read fails with the usual error and exit code; the
old room's position (with its `replaced_by`) stays, so the next run tries again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from peekcli.client import API, JSON, q
from peekcli.errors import ForbiddenError, InvalidTokenError, MatrixError, NetworkError
from peekcli.rooms import is_room_id
from peekcli.runner import RoomSession, RunOptions, Start, forbidden
from peekcli.state import Position, StateStore
from peekcli.stream import BATCH_LIMIT, Chunk, Follower, Hooks, RetryPolicy, Sink
from peekcli.suggest import peek_command

#: Kind of the position that walks a replacement room from its start.
CATCHUP = "catchup"
#: Key in a saved position: the room that replaced this one (set when the tombstone was passed).
MARKER = "replaced_by"
#: Enough for any real chain of upgrades; stops a server that points rooms at each other.
MAX_HOPS = 50
#: Empty pages with a new `end` in a row (events hidden from us) before a walk counts as done.
MAX_EMPTY_PAGES = 100


def replacement_of(event: JSON, room_id: str) -> str | None:
    """The room an `m.room.tombstone` state event hands over to (None for any other event)."""
    if event.get("type") != "m.room.tombstone" or event.get("state_key") != "":
        return None
    content = event.get("content")
    new = content.get("replacement_room") if isinstance(content, dict) else None
    return new if is_room_id(new) and new != room_id else None


# -- the catch-up walk --------------------------------------------------------------------------


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
            params: dict[str, Any] = {"dir": "f", "limit": BATCH_LIMIT, "to": cursor.to}
            if after is not None:
                params["from"] = after
            try:
                reply = self.client.request(
                    "GET", f"{API}/rooms/{q(self.room_id)}/messages", params=params
                )
            except MatrixError as exc:
                if exc.status == 400:
                    raise InvalidTokenError(exc.message, status=400, errcode=exc.errcode) from None
                raise
            chunk = reply.get("chunk")
            if not isinstance(chunk, list):
                raise NetworkError("the server sent a reply without a usable event list")
            events = [
                ev
                for ev in chunk
                if isinstance(ev, dict) and ev.get("room_id") in (None, self.room_id)
            ]
            end = reply.get("end")
            if not isinstance(end, str) or not end or end == after:
                return Chunk(events, token, replace(cursor, after=after, done=True).encode())
            if events:
                return Chunk(events, token, replace(cursor, after=end).encode())
            after = end
        return Chunk([], token, replace(cursor, after=after, done=True).encode())


# -- state: redirects and markers ----------------------------------------------------------------


def known_replacement(store: StateStore, homeserver: str, room_id: str) -> tuple[str | None, bool]:
    """(new room, whether the switch was already made) for a room peek saw replaced."""
    redirect = store.redirect_of(homeserver, room_id)
    if redirect is not None:
        return redirect, True
    saved = store.get(homeserver, room_id)
    marker = saved.extra.get(MARKER) if saved is not None else None
    if is_room_id(marker) and marker != room_id:
        return str(marker), False
    return None, False


# -- the loop over rooms -------------------------------------------------------------------------


class FollowRoom(Protocol):
    def __call__(
        self,
        session: RoomSession,
        opts: RunOptions,
        sink: Sink,
        hooks: Hooks,
        on_start: Callable[[Start], None] | None = None,
        accept: Callable[[JSON], bool] | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> Follower: ...


class _ReplacedBeforeStart(Exception):
    """A fresh start found the room already replaced, before the history it would show."""

    def __init__(self, new_room: str) -> None:
        super().__init__(new_room)
        self.new_room = new_room


def _tombstone_in(initial: JSON | None, room_id: str, history: int) -> str | None:
    """The replacement named by initialSync's state when the tombstone is not in the history."""
    if not isinstance(initial, dict) or not isinstance(initial.get("state"), list):
        return None
    for event in initial["state"]:
        if not isinstance(event, dict):
            continue
        new = replacement_of(event, room_id)
        if new is None:
            continue
        messages = initial.get("messages")
        chunk = messages.get("chunk") if isinstance(messages, dict) else None
        shown = chunk[-history:] if isinstance(chunk, list) and history > 0 else []
        ids = {ev.get("event_id") for ev in shown if isinstance(ev, dict)}
        return None if event.get("event_id") in ids else new
    return None


def follow_upgrades(
    session: RoomSession,
    opts: RunOptions,
    sink: Sink,
    hooks: Hooks,
    on_start: Callable[[Start], None] | None,
    accept: Callable[[JSON], bool] | None,
    lock: AbstractContextManager[Any] | None,
    *,
    follow_room: FollowRoom,
) -> Follower | None:
    """Follow `session`'s room, and on through every replacement room (see the module doc).

    Returns the last room's loop (None when it stopped before following anything).
    """
    store, homeserver = session.store, session.homeserver
    room, current = session.room_id, session
    follow = opts.follow_upgrades
    seen = {room}
    announce = on_start
    delivered = 0
    last: Follower | None = None
    first = True
    if opts.reset:
        store.forget(homeserver, room)
        store.forget_redirect(homeserver, room)

    def name(room_id: str) -> str:
        return session.ref.value if room_id == session.room_id else room_id

    with contextlib.ExitStack() as locks:

        def enter(new_room: str, how: str) -> bool:
            """Move on to `new_room`; False when that must not happen (--no-follow, a loop)."""
            nonlocal room, current, first
            if not follow:
                hooks.warn(
                    f"{name(room)} was replaced by {new_room} (room upgrade); not following it "
                    f"(--no-follow): {peek_command('watch', new_room)}"
                )
                return False
            if new_room in seen or len(seen) > MAX_HOPS:
                hooks.warn(
                    f"{name(room)} was replaced by {new_room}, which was already followed: "
                    "stopping here"
                )
                return False
            seen.add(new_room)
            hooks.warn(f"{name(room)} was replaced by {new_room} (room upgrade); {how}")
            locks.enter_context(
                store.room_lock(
                    homeserver,
                    new_room,
                    wait=opts.wait,
                    on_wait=lambda: hooks.warn(f"waiting for another peek following {new_room}…"),
                )
            )
            room, current, first = new_room, _session_for(session, new_room), False
            return True

        while True:
            given_from = first and opts.from_token is not None
            sub = replace(
                opts,
                max_events=_left(opts, delivered),
                from_token=opts.from_token if given_from else None,
                reset=False,
            )
            if not given_from:
                new, switched = known_replacement(store, homeserver, room)
                if new is not None:
                    old = room
                    how = "continuing there" if switched else "following it from its start"
                    if not enter(new, how):
                        return last
                    if not switched:
                        if store.get(homeserver, room) is None:
                            _begin_at_start(current, sub, hooks)
                        store.redirect(homeserver, old, room)
                    continue
                saved = store.get(homeserver, room)
                if saved is not None and saved.kind == CATCHUP:
                    if announce is not None:
                        announce(Start(room, current.ref, current.identity, resuming=True))
                        announce = None
                    follower = _catch_up(current, sub, sink, hooks, accept, lock, saved)
                    delivered += follower.delivered
                    last = follower
                    if follower.done:
                        return follower
                    if follower.tombstone is not None:
                        first = False
                        continue
                    sub = replace(sub, max_events=_left(opts, delivered))
            checked = _checked_start(room, sub.history, announce)
            try:
                follower = follow_room(current, sub, sink, hooks, checked, accept, lock)
            except _ReplacedBeforeStart as gone:
                old = room
                if not enter(gone.new_room, "following it"):
                    return last
                store.redirect(homeserver, old, room)
                continue
            announce = None
            first = False
            last = follower
            delivered += follower.delivered
            if follower.done or follower.tombstone is None:
                return follower


def _left(opts: RunOptions, delivered: int) -> int | None:
    return None if opts.max_events is None else opts.max_events - delivered


def _checked_start(
    room: str, history: int, announce: Callable[[Start], None] | None
) -> Callable[[Start], None]:
    """`on_start` that first looks for a tombstone in a fresh start's state (no extra request)."""

    def on_start(start: Start) -> None:
        new = _tombstone_in(start.initial, room, history)
        if new is not None:
            raise _ReplacedBeforeStart(new)
        if announce is not None:
            announce(start)

    return on_start


def _session_for(session: RoomSession, room_id: str) -> RoomSession:
    """The same identity and client, on the replacement room (named by its id in messages)."""
    from peekcli.rooms import RoomRef

    return replace(session, room_id=room_id, ref=RoomRef(room_id))


def _begin_at_start(session: RoomSession, opts: RunOptions, hooks: Hooks) -> None:
    """Take the new room's live position and save a catch-up position that starts at its start."""
    from peekcli.runner import first_position, stream_mode

    mode = stream_mode(session, opts, None)
    (chunk, _initial), mode = first_position(session, replace(opts, history=0), mode, hooks)
    live = "messages" if mode == "messages" else "events"
    cursor = Cursor(to=chunk.end, live=live)
    session.store.save(session.homeserver, session.room_id, Position(cursor.encode(), CATCHUP))


def _catch_up(
    session: RoomSession,
    opts: RunOptions,
    sink: Sink,
    hooks: Hooks,
    accept: Callable[[JSON], bool] | None,
    lock: AbstractContextManager[Any] | None,
    saved: Position,
) -> Follower:
    """Deliver the room from where its catch-up walk stands up to the live position, then save
    that live position, so the usual loop goes on from there."""
    hooks.renew_token = session.renew
    follower = Follower(
        store=session.store,
        homeserver=session.homeserver,
        room_id=session.room_id,
        strategy=CatchUpStrategy(session.client, session.room_id),
        sink=sink,
        retry=RetryPolicy(max_retries=opts.max_retries),
        hooks=hooks,
        include_ephemeral=opts.include_ephemeral,
        accept=accept,
        max_events=opts.max_events,
        lock=lock,
    )
    try:
        follower.run(saved, drain=True)
    except ForbiddenError as exc:
        raise forbidden(session, exc) from None
    except InvalidTokenError as exc:
        raise InvalidTokenError(
            f"the saved catch-up position for {session.room_id} was refused ({exc.message}); "
            "start over with --reset",
            status=exc.status,
            errcode=exc.errcode,
        ) from None
    if follower.done or follower.tombstone is not None:
        return follower
    last = follower.saved or saved
    cursor = Cursor.decode(last.token)
    session.store.save(
        session.homeserver,
        session.room_id,
        Position(cursor.to, cursor.live, last_event_id=last.last_event_id),
    )
    return follower
