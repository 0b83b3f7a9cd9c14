"""One run on one room, wired end to end: reference → room id → identity → position → follower.

This is the core's entry point for `watch` and `snapshot`; the CLI parses options into
`RunOptions`, supplies a sink and hooks, and maps the `PeekError`s raised here to exit codes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peekcli.auth import Identity, choose_identity, joined_per
from peekcli.client import API, JSON, MatrixClient, RequestLog, q
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
from peekcli.rooms import RoomRef, normalize_homeserver, parse_room, resolve
from peekcli.state import CredentialStore, Position, StateStore, credentials_path_for
from peekcli.stream import (
    AutoStrategy,
    Chunk,
    EventsStrategy,
    Follower,
    Hooks,
    MessagesStrategy,
    NoFallback,
    RetryPolicy,
    Sink,
    Strategy,
    initial_sync,
    messages_start,
    retrying,
)
from peekcli.suggest import peek_command

if TYPE_CHECKING:
    from peekcli.execsink import ExecPolicy


@dataclass
class RunOptions:
    homeserver: str | None = None
    token: str | None = None
    state_path: Path | None = None
    history: int = 10
    from_token: str | None = None
    reset: bool = False
    timeout_ms: int = 30_000
    include_ephemeral: bool = False
    max_events: int | None = None
    drain: bool = False
    wait: bool = True
    max_retries: int | None = None
    guest: str = "auto"
    #: "events" (/events long-poll), "messages" (/messages polling) or "auto" (events, else
    #: messages).
    stream: str = "auto"
    #: Seconds between /messages polls while events flow (it grows while the room is quiet).
    poll_interval: float = 2.0
    #: Go on in the replacement room after a tombstone (`--no-follow`: stop there).
    follow_upgrades: bool = True
    #: `--exec`: what the CLI's per-event command sink does (built by the command layer).
    exec_policy: ExecPolicy | None = None


@dataclass
class Start:
    """How a run begins, for the renderer's header: fresh (with initialSync's reply) or resuming."""

    room_id: str
    ref: RoomRef
    identity: Identity
    resuming: bool
    #: True when the position came from `--from` rather than the state file.
    from_token: bool = False
    initial: JSON | None = None


@dataclass
class RoomSession:
    client: MatrixClient
    store: StateStore
    creds: CredentialStore
    homeserver: str
    ref: RoomRef
    room_id: str
    identity: Identity
    renew: Callable[[], bool] = field(default=lambda: False)


def homeserver_for(
    ref: RoomRef,
    given: str | None,
    store: StateStore | None = None,
    log: RequestLog | None = None,
) -> str:
    """`--homeserver` (or env, or config) as given; else discovered from the room's server."""
    if given:
        return normalize_homeserver(given)
    if ref.server_name:
        from peekcli.discovery import discover

        return discover(ref.server_name, store=store, log=log)
    raise UsageError(f"{ref.value} names no server: give --homeserver (or PEEK_HOMESERVER)")


def open_room(
    room: str,
    opts: RunOptions,
    log: RequestLog | None = None,
    token_homeserver: str | None = None,
) -> RoomSession:
    """Parse and resolve the room, and pick the identity that will watch it.

    `token_homeserver`: where a given `--token` was already sent (several rooms in one run); a
    room on another homeserver is refused before the token could reach that server.
    """
    from peekcli.config import effective
    from peekcli.state import default_state_path

    ref = parse_room(room)
    state_path = opts.state_path or default_state_path()
    store = StateStore(state_path)
    given, token = effective(opts.homeserver, opts.token)
    homeserver = homeserver_for(ref, given, store, log)
    if opts.token and token_homeserver is not None and homeserver != token_homeserver:
        raise UsageError(
            f"{room} is on {homeserver}, but the given token belongs to {token_homeserver}: "
            "a token is only sent to its own homeserver; follow that room in a run of its own"
        )
    creds = CredentialStore(credentials_path_for(state_path))
    client = MatrixClient(homeserver, log=log)
    identity, renew = choose_identity(client, creds, token=token, guest=opts.guest)
    remembered = store.known_alias(homeserver, ref.value) if ref.is_alias else None
    room_id = resolve(client, ref, store)
    if remembered is not None and remembered != room_id:
        room_id = _moved_alias(client, store, homeserver, ref.value, remembered, room_id)
    return RoomSession(client, store, creds, homeserver, ref, room_id, identity, renew)


def _moved_alias(
    client: MatrixClient, store: StateStore, homeserver: str, alias: str, old: str, new: str
) -> str:
    """The room to follow when an alias peek reached `old` by now names `new`.

    A room upgrade moves the alias to the new room before peek sees the old room's tombstone:
    starting afresh in `new` would skip the end of `old` and the start of `new`. So while `old`
    has a saved position not yet handed over (no redirect) and `new` descends from it
    (`m.room.create` predecessors), peek goes on in `old`, whose tombstone leads on to `new`
    from its start. Any other move (the alias given to an unrelated room) follows the alias.
    """
    if store.get(homeserver, old) is None or store.redirect_of(homeserver, old) is not None:
        return new
    room, seen = new, {new}
    for _ in range(10):  # a chain of upgrades since the last run
        try:
            create = client.request("GET", f"{API}/rooms/{q(room)}/state/m.room.create/")
        except PeekError:
            return new  # cannot tell: follow the alias
        predecessor = create.get("predecessor") if isinstance(create, dict) else None
        found = predecessor.get("room_id") if isinstance(predecessor, dict) else None
        if found == old:
            store.remember_alias(homeserver, alias, old)  # until the hand-over is done
            return old
        if not isinstance(found, str) or found in seen:
            return new
        room = found
        seen.add(room)
    return new


def follow(
    session: RoomSession,
    opts: RunOptions,
    sink: Sink,
    hooks: Hooks,
    on_start: Callable[[Start], None] | None = None,
    accept: Callable[[JSON], bool] | None = None,
    lock: AbstractContextManager[Any] | None = None,
) -> Follower | None:
    """`follow_room`, and on into the replacement room after a tombstone (peekcli/upgrades.py).

    Returns the last room's loop (None when a known upgrade stopped the run before any).
    """
    from peekcli.upgrades import follow_upgrades

    return follow_upgrades(
        session, opts, sink, hooks, on_start, accept, lock, follow_room=follow_room
    )


def follow_room(
    session: RoomSession,
    opts: RunOptions,
    sink: Sink,
    hooks: Hooks,
    on_start: Callable[[Start], None] | None = None,
    accept: Callable[[JSON], bool] | None = None,
    lock: AbstractContextManager[Any] | None = None,
) -> Follower:
    """Deliver the room's events to `sink` from the right position until done; returns the loop.

    `lock` (several rooms at once) is held around each chunk's write + flush + save.
    """
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
            RetryPolicy(max_retries=opts.max_retries),
            hooks,
            quick=opts.drain,
        )
    strategy = make_strategy(session, opts, mode, hooks)
    follower = Follower(
        store=session.store,
        homeserver=session.homeserver,
        room_id=session.room_id,
        strategy=strategy,
        sink=sink,
        retry=RetryPolicy(max_retries=opts.max_retries),
        hooks=hooks,
        include_ephemeral=opts.include_ephemeral,
        accept=accept,
        max_events=opts.max_events,
        alias=session.ref.value if session.ref.is_alias else None,
        lock=lock,
    )
    start = Start(session.room_id, session.ref, session.identity, resuming=False)
    if opts.from_token:
        position = Position(opts.from_token, strategy.kind, alias=follower.alias)
        start.resuming = start.from_token = True
    elif saved is not None:
        position = saved
        start.resuming = True
    else:
        assert fresh is not None
        history, start.initial = fresh
        session.identity.joined = joined_per(start.initial)
        if on_start is not None:
            on_start(start)
        follower.deliver_history(history)
        if follower.done:
            return follower
        position = follower.saved or Position(history.end, strategy.kind)
    if start.resuming and on_start is not None:
        on_start(start)
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
    return follower


def forbidden(session: RoomSession, exc: ForbiddenError) -> ForbiddenError:
    return ForbiddenError(
        f"cannot read {session.ref.value}: it is not world-readable and "
        f"{session.identity.describe()} has not joined it ({exc.errcode or 'HTTP 403'})",
        status=exc.status,
        errcode=exc.errcode,
    )


# -- stream strategy: which endpoint follows the room ---------------------------------------------

STREAM_MODES = ("auto", "events", "messages")


def stream_mode(session: RoomSession, opts: RunOptions, saved: Position | None) -> str:
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
    session: RoomSession, opts: RunOptions, mode: str, hooks: Hooks
) -> tuple[tuple[Chunk, JSON | None], str]:
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


def make_strategy(session: RoomSession, opts: RunOptions, mode: str, hooks: Hooks) -> Strategy:
    events = EventsStrategy(session.client, session.room_id, opts.timeout_ms)
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


def _every(opts: RunOptions) -> str:
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
    from peekcli.probe import server_software

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
