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
from dataclasses import replace

from peekcli.connect import RoomSession
from peekcli.follow.plan import Delivery, FollowOptions, Hooks, Start
from peekcli.follow.room import (
    Replaced,
    announce,
    catch_up,
    first_position,
    follow_room,
    stream_mode,
)
from peekcli.follow.strategies import CATCHUP, Cursor
from peekcli.matrix.ids import RoomRef, is_room_id
from peekcli.state import Position, StateStore
from peekcli.suggest import peek_command

#: Key in a saved position: the room that replaced this one (set when the tombstone was passed).
MARKER = "replaced_by"
#: Enough for any real chain of upgrades; stops a server that points rooms at each other.
MAX_HOPS = 50


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


def follow(session: RoomSession, opts: FollowOptions, delivery: Delivery) -> int:
    """Follow `session`'s room, and on through every replacement room (see the module doc).

    Returns how many events were delivered over all rooms.
    """
    store, homeserver, hooks = session.store, session.homeserver, delivery.hooks
    room, current = session.room_id, session
    follow = opts.follow_upgrades
    seen = {room}
    first_start = delivery.on_start
    delivered = 0
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
                        return delivered
                    if not switched:
                        if store.get(homeserver, room) is None:
                            _begin_at_start(current, sub, hooks)
                        store.redirect(homeserver, old, room)
                    continue
                saved = store.get(homeserver, room)
                if saved is not None and saved.kind == CATCHUP:
                    if first_start is not None:
                        start = Start(room, current.ref, current.identity, resuming=True)
                        announce(replace(delivery, on_start=first_start), start)
                        first_start = None
                    walk = catch_up(current, sub, delivery, saved)
                    delivered += walk.delivered
                    if walk.done:
                        return delivered
                    if walk.tombstone is not None:
                        first = False
                        continue
                    sub = replace(sub, max_events=_left(opts, delivered))
            ran = follow_room(current, sub, replace(delivery, on_start=first_start))
            if isinstance(ran, Replaced):
                old = room
                if not enter(ran.new_room, "following it"):
                    return delivered
                store.redirect(homeserver, old, room)
                continue
            first_start = None
            first = False
            delivered += ran.delivered
            if ran.done or ran.tombstone is None:
                return delivered


def _left(opts: FollowOptions, delivered: int) -> int | None:
    return None if opts.max_events is None else opts.max_events - delivered


def _session_for(session: RoomSession, room_id: str) -> RoomSession:
    """The same identity and client, on the replacement room (named by its id in messages)."""
    return replace(session, room_id=room_id, ref=RoomRef(room_id))


def _begin_at_start(session: RoomSession, opts: FollowOptions, hooks: Hooks) -> None:
    """Take the new room's live position and save a catch-up position that starts at its start."""
    mode = stream_mode(session, opts, None)
    (chunk, _initial), mode = first_position(session, replace(opts, history=0), mode, hooks)
    live = "messages" if mode == "messages" else "events"
    cursor = Cursor(to=chunk.end, live=live)
    session.store.save(session.homeserver, session.room_id, Position(cursor.encode(), CATCHUP))
