"""One room, from the right position to the end of the run: the start, the strategy, the loop.

`follow_room` picks where to begin (the saved position, `--from`, or a fresh start through
initialSync), the strategy that reads the room, and hands both to a `Follower`; `catch_up` walks a
replacement room from its start up to its live position. Refusals become the errors a user can
act on (exit 3, 5, 8 with what to do next). Both say how the run ended as a plain `Ran`: the walk
over rooms (`upgrades`) never sees the loop.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass

from peekcli.auth import joined_per
from peekcli.connect import ConnectOptions, RoomSession, forbidden, open_room
from peekcli.errors import (
    ForbiddenError,
    InvalidTokenError,
    MatrixError,
    NotSupported,
    PeekError,
    TokenRejected,
    UnrecognizedError,
    UsageError,
)
from peekcli.follow.follower import Follower
from peekcli.follow.plan import STREAM_MODES, Delivery, FollowOptions, Hooks, Start, StreamMode
from peekcli.follow.strategies import (
    USUAL_TIMEOUT_MS,
    AutoStrategy,
    CatchUpStrategy,
    Chunk,
    Cursor,
    EventsStrategy,
    LongPoll,
    MessagesStrategy,
    NoFallback,
    Strategy,
    initial_sync,
    messages_start,
)
from peekcli.matrix.client import JSON, MatrixClient, server_software
from peekcli.matrix.events import tombstone_in
from peekcli.matrix.http import RequestLog
from peekcli.retry import Gate, RetryPolicy, retrying
from peekcli.state import Position
from peekcli.suggest import peek_command


def open_retrying(
    room: str,
    where: ConnectOptions,
    opts: FollowOptions,
    hooks: Hooks,
    *,
    log: RequestLog | None = None,
    token_homeserver: str | None = None,
) -> RoomSession:
    """`open_room`, its first contact (discovery, guest registration, alias lookup) retried on
    network failures like every request of the stream: quickly and `--max-retries` times for a
    snapshot, for ever for a watch."""
    return retrying(
        lambda: open_room(room, where, log=log, token_homeserver=token_homeserver),
        RetryPolicy(max_retries=opts.max_retries),
        status=hooks.status,
        quick=opts.drain,
    )


@dataclass
class Replaced:
    """A fresh start found the room already replaced, before the history it would show."""

    new_room: str


@dataclass(frozen=True)
class Ran:
    """How a room's run ended: what the walk over rooms (peekcli/follow/upgrades.py) needs to
    know, instead of the loop itself."""

    delivered: int
    #: --max-events reached: the whole run is over.
    done: bool
    #: The replacement room a delivered tombstone named (the run stopped after it), or None.
    tombstone: str | None

    @classmethod
    def of(cls, follower: Follower) -> Ran:
        return cls(follower.delivered, follower.done, follower.tombstone)


def announce(delivery: Delivery, start: Start) -> None:
    """Tell the sink's header how the run begins (under the delivery lock, with other rooms)."""
    if delivery.on_start is None:
        return
    with delivery.lock if delivery.lock is not None else contextlib.nullcontext():
        delivery.on_start(start)


def make_follower(
    session: RoomSession, opts: FollowOptions, delivery: Delivery, strategy: Strategy
) -> Follower:
    """The loop for this room, wired to the delivery plan."""
    return Follower(
        store=session.store,
        homeserver=session.homeserver,
        room_id=session.room_id,
        strategy=strategy,
        sink=delivery.sink,
        retry=RetryPolicy(max_retries=opts.max_retries, gate=session.gate),
        hooks=delivery.hooks,
        include_ephemeral=delivery.include_ephemeral,
        accept=delivery.accept,
        max_events=opts.max_events,
        alias=session.ref.value if session.ref.is_alias else None,
        lock=delivery.lock,
        save_each_event=delivery.save_each_event,
    )


def follow_room(session: RoomSession, opts: FollowOptions, delivery: Delivery) -> Ran | Replaced:
    """Deliver the room's events from the right position until done; says how it ended.

    A fresh start on a room already replaced before the history it would show delivers nothing
    and returns `Replaced` (peekcli/follow/upgrades.py goes on in the new room).
    """
    hooks = delivery.hooks
    hooks.renew_token = session.renew
    if opts.reset:
        session.store.forget(session.homeserver, session.room_id)
    saved = session.store.get(session.homeserver, session.room_id)
    mode = stream_mode(session, opts, saved)
    fresh: tuple[Chunk, JSON | None] | None = None
    if not opts.from_token and saved is None:
        # The first position is a request like any other: an outage retries it the same way.
        first_mode = mode
        fresh, mode = retrying(
            lambda: first_position(session, opts, first_mode, hooks),
            RetryPolicy(max_retries=opts.max_retries, gate=session.gate),
            status=hooks.status,
            renew=hooks.renew_token,
            quick=opts.drain,
        )
    strategy = make_strategy(session, opts, mode, hooks)
    follower = make_follower(session, opts, delivery, strategy)
    start = Start(session.room_id, session.ref, session.identity, resuming=False)
    if opts.from_token:
        position = Position(opts.from_token, strategy.kind, alias=follower.alias)
        start.resuming = start.from_token = True
    elif saved is not None:
        position = follower.written = saved  # already in the store: no need to write it again
        start.resuming = True
    else:
        assert fresh is not None
        history, start.initial = fresh
        new_room = tombstone_in(start.initial, session.room_id, opts.history)
        if new_room is not None:
            return Replaced(new_room)
        session.identity.joined = joined_per(start.initial)
        announce(delivery, start)
        follower.deliver_history(history)
        if follower.done:
            return Ran.of(follower)
        position = follower.saved or Position(history.end, strategy.kind)
    if start.resuming:
        announce(delivery, start)
    if delivery.on_live is not None:
        delivery.on_live()
    try:
        follower.run(position, drain=opts.drain)
    except ForbiddenError as exc:
        raise forbidden(session, exc) from None
    except InvalidTokenError as exc:
        if opts.from_token:  # the user's token, not the saved one: --reset alone would not help
            what, fix = "the --from token", "leave out --from (with --reset to start over)"
        else:
            what, fix = "the saved position", "start over with --reset"
        raise InvalidTokenError(
            f"{what} for {session.ref.value} was refused ({exc.message}); {fix}",
            status=exc.status,
            errcode=exc.errcode,
        ) from None
    except (NotSupported, UnrecognizedError) as exc:
        raise not_supported(session, strategy, exc) from None
    return Ran.of(follower)


def catch_up(session: RoomSession, opts: FollowOptions, delivery: Delivery, saved: Position) -> Ran:
    """Deliver a replacement room from where its catch-up walk stands (`saved`, kind `catchup`)
    up to the live position, then save that live position, so `follow_room` goes on from there."""
    delivery.hooks.renew_token = session.renew
    strategy = CatchUpStrategy(session.client, session.room_id)
    follower = make_follower(session, opts, delivery, strategy)
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
        return Ran.of(follower)
    last = follower.saved or saved
    cursor = Cursor.decode(last.token)
    session.store.save(
        session.homeserver,
        session.room_id,
        Position(cursor.to, cursor.live, last_event_id=last.last_event_id),
    )
    return Ran.of(follower)


# -- stream strategy: which endpoint follows the room ---------------------------------------------


def stream_mode(session: RoomSession, opts: FollowOptions, saved: Position | None) -> StreamMode:
    """The strategy for this run; a saved token is only ever sent to the endpoint that issued it.

    With `auto` the saved position decides: a /messages position goes on with /messages (this
    server was found to lack /events peeking, or the user chose it). An explicit `--stream` that
    does not match the saved position's kind is refused with the two ways out, rather than
    silently starting over (which would skip or repeat events).
    """
    if opts.stream not in STREAM_MODES:
        raise UsageError(f"unknown stream {opts.stream!r} (expected auto, events or messages)")
    if opts.from_token or saved is None:
        return opts.stream
    if saved.kind == opts.stream or (opts.stream == "auto" and saved.kind == "events"):
        return opts.stream
    if opts.stream == "auto" and saved.kind == "messages":
        return "messages"
    room = session.ref.value
    if saved.kind not in ("events", "messages"):
        raise UsageError(
            f"the saved position for {room} is a {saved.kind!r} token, which this peek cannot "
            "follow; start over with --reset"
        )
    raise UsageError(
        f"the saved position for {room} is a /{saved.kind} token and --stream {opts.stream} "
        f"would send it to /{opts.stream}; resume with --stream {saved.kind} (or auto), or "
        f"start over with --stream {opts.stream} --reset"
    )


def first_position(
    session: RoomSession, opts: FollowOptions, mode: StreamMode, hooks: Hooks
) -> tuple[tuple[Chunk, JSON | None], StreamMode]:
    """History and the first token: initialSync, or `/messages?dir=b` where that is refused.

    A /messages token can only be followed with /messages, so a refused initialSync settles
    `auto` on /messages polling before anything is saved.
    """
    try:
        return initial_sync(session.client, session.room_id, opts.history), mode
    except TokenRejected:
        raise
    except MatrixError as exc:
        if mode == "events":
            if isinstance(exc, ForbiddenError):
                raise forbidden(session, exc) from None
            raise
        refused = exc
    try:
        history = messages_start(session.client, session.room_id, opts.history)
    except ForbiddenError as exc:
        raise forbidden(session, exc) from None
    except (NotSupported, UnrecognizedError) as exc:
        raise not_supported(session, None, NoFallback(refused, exc)) from None
    except PeekError:
        if isinstance(refused, ForbiddenError):  # nothing says otherwise: it is forbidden
            raise forbidden(session, refused) from None
        raise
    if mode == "auto":
        hooks.warn(
            f"{describe_server(session)} refused initialSync ({why(refused)}); reading "
            f"{session.ref.value} through /messages{_every(opts)}"
        )
    return (history, None), "messages"


def make_strategy(
    session: RoomSession, opts: FollowOptions, mode: StreamMode, hooks: Hooks
) -> Strategy:
    events = EventsStrategy(
        session.client, session.room_id, opts.timeout_ms, poll=long_poll(session, opts, hooks)
    )
    messages = MessagesStrategy(session.client, session.room_id, opts.poll_interval)
    if mode == "events":
        return events
    if mode == "messages":
        return messages

    def fell_back(exc: PeekError) -> None:
        hooks.warn(
            f"{describe_server(session)} does not implement room peeking through /events "
            f"({why(exc)}); reading {session.ref.value} through /messages{_every(opts)}"
        )

    return AutoStrategy(events, messages, fell_back)


#: Per homeserver (its shared backoff gate), the long-poll timeout its rooms share.
_long_polls: weakref.WeakKeyDictionary[Gate, LongPoll] = weakref.WeakKeyDictionary()
_long_polls_guard = threading.Lock()


def long_poll(session: RoomSession, opts: FollowOptions, hooks: Hooks) -> LongPoll | None:
    """The shared timeout of a many-room run whose long-polls are longer than usual."""
    if not opts.timeout_chosen or opts.timeout_ms <= USUAL_TIMEOUT_MS or session.gate is None:
        return None
    homeserver = session.homeserver

    def cut(after: float) -> None:
        hooks.warn(
            f"a long-poll to {homeserver} was cut after {after:.0f} s (a proxy's timeout?); "
            f"asking for {USUAL_TIMEOUT_MS // 1000} s from now on"
        )

    with _long_polls_guard:
        poll = _long_polls.get(session.gate)
        if poll is None:
            poll = _long_polls[session.gate] = LongPoll(opts.timeout_ms, cut)
        return poll


def _every(opts: FollowOptions) -> str:
    return "" if opts.drain else f", polled every {opts.poll_interval:g} s or less often when quiet"


def why(exc: PeekError) -> str:
    """A short reason for a refusal: `HTTP 404 M_UNRECOGNIZED`, or what the stub did."""
    if isinstance(exc, MatrixError):
        return f"HTTP {exc.status} {exc.errcode}" if exc.errcode else f"HTTP {exc.status}"
    if isinstance(exc, NotSupported):
        return "it answers with an empty stream token"
    return exc.message


#: Server software per client, so a warning and the error after it ask only once.
_software: weakref.WeakKeyDictionary[MatrixClient, str | None] = weakref.WeakKeyDictionary()


def describe_server(session: RoomSession) -> str:
    """`https://hs (Dendrite 0.13.8)` when the server tells its software, else the URL."""
    if session.client not in _software:
        _software[session.client] = server_software(session.client)
    software = _software[session.client]
    return f"{session.homeserver} ({software})" if software else session.homeserver


def not_supported(session: RoomSession, strategy: Strategy | None, exc: PeekError) -> NotSupported:
    """Exit 8 with one line: which server, what it lacks, and what the user can do."""
    server = describe_server(session)
    room = session.ref.value
    if isinstance(exc, NoFallback):
        events = why(exc.events_error) if exc.events_error else "unknown"
        return NotSupported(
            f"{server} cannot serve {room} to peek: no /events peeking ({events}) and "
            f"/messages failed too ({why(exc.messages_error)}); follow the room through another "
            "homeserver with --homeserver, or run "
            f"`{peek_command('doctor', session.homeserver)}` for details"
        )
    if isinstance(strategy, EventsStrategy) or (
        isinstance(strategy, AutoStrategy) and strategy.current is strategy.events
    ):
        return NotSupported(
            f"{server} does not implement room peeking through /events ({why(exc)}); follow "
            f"{room} by polling /messages with --stream messages (or auto)"
        )
    return NotSupported(
        f"{server} does not serve {room} through /messages ({why(exc)}); follow the room "
        f"through another homeserver with --homeserver, or run "
        f"`{peek_command('doctor', session.homeserver)}` for details"
    )
