"""One run on one room, wired end to end: reference → room id → identity → position → follower.

This is the core's entry point for `watch` and `snapshot`; the CLI parses options into
`RunOptions`, supplies a sink and hooks, and maps the `PeekError`s raised here to exit codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from peekcli.auth import Identity, choose_identity
from peekcli.client import JSON, MatrixClient, RequestLog
from peekcli.errors import ForbiddenError, InvalidTokenError, UsageError
from peekcli.rooms import RoomRef, normalize_homeserver, parse_room, resolve
from peekcli.state import CredentialStore, Position, StateStore, credentials_path_for
from peekcli.stream import EventsStrategy, Follower, Hooks, RetryPolicy, Sink, initial_sync


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


@dataclass
class Start:
    """How a run begins, for the renderer's header: fresh (with initialSync's reply) or resuming."""

    room_id: str
    ref: RoomRef
    identity: Identity
    resuming: bool
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


def homeserver_for(ref: RoomRef, given: str | None) -> str:
    if given:
        return normalize_homeserver(given)
    if ref.server_name:
        return normalize_homeserver(ref.server_name)
    raise UsageError(f"{ref.value} names no server: give --homeserver (or PEEK_HOMESERVER)")


def open_room(room: str, opts: RunOptions, log: RequestLog | None = None) -> RoomSession:
    """Parse and resolve the room, and pick the identity that will watch it."""
    from peekcli.state import default_state_path

    ref = parse_room(room)
    homeserver = homeserver_for(ref, opts.homeserver)
    state_path = opts.state_path or default_state_path()
    store = StateStore(state_path)
    creds = CredentialStore(credentials_path_for(state_path))
    client = MatrixClient(homeserver, log=log)
    identity, renew = choose_identity(client, creds, token=opts.token, guest=opts.guest)
    room_id = resolve(client, ref, store)
    return RoomSession(client, store, creds, homeserver, ref, room_id, identity, renew)


def follow(
    session: RoomSession,
    opts: RunOptions,
    sink: Sink,
    hooks: Hooks,
    on_start: Callable[[Start], None] | None = None,
    accept: Callable[[JSON], bool] | None = None,
) -> Follower:
    """Deliver the room's events to `sink` from the right position until done; returns the loop."""
    hooks.renew_token = session.renew
    strategy = EventsStrategy(session.client, session.room_id, opts.timeout_ms)
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
    )
    if opts.reset:
        session.store.forget(session.homeserver, session.room_id)
    saved = session.store.get(session.homeserver, session.room_id)
    start = Start(session.room_id, session.ref, session.identity, resuming=False)
    if opts.from_token:
        position = Position(opts.from_token, strategy.kind, alias=follower.alias)
        start.resuming = True
    elif saved is not None:
        position = saved
        start.resuming = True
    else:
        try:
            history, start.initial = initial_sync(session.client, session.room_id, opts.history)
        except ForbiddenError as exc:
            raise forbidden(session, exc) from None
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
        raise InvalidTokenError(
            f"the saved position for {session.ref.value} was refused ({exc.message}); "
            "start over with --reset",
            status=exc.status,
            errcode=exc.errcode,
        ) from None
    return follower


def forbidden(session: RoomSession, exc: ForbiddenError) -> ForbiddenError:
    return ForbiddenError(
        f"cannot read {session.ref.value}: it is not world-readable and "
        f"{session.identity.describe()} has not joined it ({exc.errcode or 'HTTP 403'})",
        status=exc.status,
        errcode=exc.errcode,
    )
