"""One way to open a room for every command: homeserver, stores, identity, room id.

The homeserver comes from `--homeserver` (or `PEEK_HOMESERVER`, which click reads), else the
config file, else discovery from the server name in the room reference; the state file gives
the stores; `peekcli.auth` picks the identity; an alias becomes a room id (remembered, so a
saved position stays reachable when the directory is not).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from peekcli.auth import Identity, choose_identity
from peekcli.config import Config, load_config
from peekcli.errors import (
    ForbiddenError,
    InvalidTokenError,
    MatrixError,
    NetworkError,
    NotFoundError,
    PeekError,
    TokenRejected,
    UnrecognizedError,
    UsageError,
)
from peekcli.matrix.client import API, MatrixClient, q
from peekcli.matrix.discovery import discover
from peekcli.matrix.events import predecessor_of
from peekcli.matrix.http import Http, RequestLog, pooled_session
from peekcli.matrix.ids import RoomRef, normalize_homeserver, parse_room
from peekcli.retry import Gate
from peekcli.state import (
    CredentialStore,
    Notice,
    StateStore,
    credentials_path_for,
    default_state_path,
)

#: `--guest` → "force", `--no-guest` → "never", neither → "auto" (login or token, else a guest).
GuestMode = Literal["auto", "force", "never"]


@dataclass(frozen=True)
class ConnectOptions:
    """Who reads, and where: what every command that opens a room was given."""

    homeserver: str | None = None
    token: str | None = None
    state_path: Path | None = None
    guest: GuestMode = "auto"
    #: The run's notice (silenced by `peek -q`), for a wait on a store another process holds.
    notice: Notice | None = None


def effective(
    homeserver: str | None, token: str | None, config: Config | None = None
) -> tuple[str | None, str | None]:
    """The homeserver and token to use, the config filling what options and env left open."""
    cfg = config if config is not None else load_config()
    if homeserver is None and cfg.homeserver is not None:
        homeserver = cfg.homeserver
    if token is None and cfg.token is not None and homeserver is not None:
        # cfg.homeserver is set whenever cfg.token is (load_config checks it).
        same = normalize_homeserver(homeserver) == normalize_homeserver(cfg.homeserver or "")
        token = cfg.token if same else None
    return homeserver, token


@dataclass
class RoomSession:
    """An opened room: the client (with its identity's token), the stores, the room id."""

    client: MatrixClient
    store: StateStore
    creds: CredentialStore
    homeserver: str
    ref: RoomRef
    room_id: str
    identity: Identity
    renew: Callable[[], bool] = field(default=lambda: False)
    #: The backoff shared with the run's other rooms on this homeserver (several rooms).
    gate: Gate | None = None


@dataclass
class Shared:
    """What the rooms of one run share: per homeserver one HTTP session (its pool sized for
    `rooms`), one identity (one guest, registered once) and one backoff gate; per server name
    one discovery. Safe to use from the threads that open rooms side by side."""

    rooms: int
    #: Seconds over which rooms waiting on a gate spread their resumption.
    spread: float = 1.0
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _sessions: dict[str, Http] = field(default_factory=dict)
    _gates: dict[str, Gate] = field(default_factory=dict)

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def http(self, homeserver: str, log: RequestLog | None) -> Http:
        with self._guard:
            if homeserver not in self._sessions:
                self._sessions[homeserver] = Http(log=log, session=pooled_session(self.rooms + 4))
            return self._sessions[homeserver]

    def gate(self, homeserver: str) -> Gate:
        with self._guard:
            return self._gates.setdefault(homeserver, Gate(self.spread))


def forbidden(session: RoomSession, exc: ForbiddenError) -> MatrixError:
    """Exit 3 naming the room and the identity that may not read it; exit 4 when the server
    does not know the room at all (Synapse answers 403 to a guest either way)."""
    if unknown_room(session.client, session.room_id, session.ref.via):
        return room_not_found(session.ref.value, session.client.base_url)
    return ForbiddenError(
        f"cannot read {session.ref.value}: it is not world-readable and "
        f"{session.identity.describe()} has not joined it ({exc.errcode or 'HTTP 403'})",
        status=exc.status,
        errcode=exc.errcode,
    )


def room_not_found(room: str, homeserver: str) -> NotFoundError:
    return NotFoundError(
        f"room {room} not found on {homeserver} (the server does not know it; a room on "
        "another server needs a server in the room, e.g. a matrix.to link with ?via=)",
        status=404,
        errcode="M_NOT_FOUND",
    )


def unknown_room(client: MatrixClient, room_id: str, via: tuple[str, ...] = ()) -> bool:
    """Whether the server says it does not know `room_id`, asked when a read was refused.

    The room summary tells: a known room, even a private one, gets its summary (200); an unknown
    one 404 M_NOT_FOUND, or on Synapse 400 "Missing via to query remote room" (the server is in
    no such room and has nowhere to ask). Anything else (no summary endpoint, a token wanted, a
    network error) cannot tell, and the refusal stands.
    """
    if not room_id.startswith("!"):
        return False
    try:
        client.room_summary(room_id, via)
    except NotFoundError as exc:
        return exc.errcode == "M_NOT_FOUND"
    except (ForbiddenError, UnrecognizedError, TokenRejected, InvalidTokenError):
        return False
    except MatrixError as exc:
        return exc.status == 400 and exc.errcode in ("M_UNKNOWN", "M_INVALID_PARAM")
    except PeekError:
        return False
    return False


def homeserver_url(
    text: str,
    *,
    discover_name: bool,
    store: StateStore | None = None,
    log: RequestLog | None = None,
) -> str:
    """The one answer to "URL or server name?": a URL (`://`) as it is; a bare name discovered
    through its .well-known when `discover_name` (a SERVER argument, `login`), else taken as
    `https://NAME` (`--homeserver` of watch, snapshot, info, export, rooms)."""
    text = text.strip()
    if "://" in text or not discover_name:
        return normalize_homeserver(text)
    return discover(text, store=store, log=log)


@dataclass
class Server:
    """A homeserver a command talks to: its URL, the stores, a client, the token to use."""

    homeserver: str
    store: StateStore
    creds: CredentialStore
    client: MatrixClient
    #: `--token`/`PEEK_ACCESS_TOKEN`, or the config's token for this homeserver.
    token: str | None
    guest: GuestMode = "auto"
    shared: Shared | None = None

    def identity(self) -> tuple[Identity, Callable[[], bool]]:
        """The identity that reads here (given token, stored login, or a guest) and its renewal;
        with several rooms, the rooms of one homeserver register one guest between them."""
        if self.shared is None:
            return choose_identity(self.client, self.creds, token=self.token, guest=self.guest)
        lock = self.shared.lock(f"identity {self.homeserver}")
        with lock:
            # The first room registers the guest and stores it; the others find it stored.
            found = choose_identity(self.client, self.creds, token=self.token, guest=self.guest)
        if found[0].kind == "guest":
            _share_guest_renewal(self.client, self.creds, self.homeserver, lock)
        return found


def open_server(
    opts: ConnectOptions,
    *,
    name: str | None = None,
    ref: RoomRef | None = None,
    discover_given: bool = False,
    log: RequestLog | None = None,
    shared: Shared | None = None,
) -> Server:
    """The homeserver of a command: `name` (a SERVER argument, discovered), else `--homeserver`
    (option or `PEEK_HOMESERVER`; discovered only when `discover_given`), else the config file's,
    else discovered from the server named by `ref`. Raises `UsageError` when none is known."""
    state_path = opts.state_path or default_state_path()
    store = StateStore(state_path, opts.notice)
    if name:
        homeserver = homeserver_url(name, discover_name=True, store=store, log=log)
        _, token = effective(homeserver, opts.token)
    else:
        given, token = effective(opts.homeserver, opts.token)
        if given:
            homeserver = homeserver_url(given, discover_name=discover_given, store=store, log=log)
        elif ref is not None and ref.server_name and shared is not None:
            with shared.lock(f"discover {ref.server_name}"):  # one lookup per server name
                homeserver = discover(ref.server_name, store=store, log=log)
        elif ref is not None and ref.server_name:
            homeserver = discover(ref.server_name, store=store, log=log)
        elif ref is not None:
            raise UsageError(f"{ref.value} names no server: give --homeserver (or PEEK_HOMESERVER)")
        else:
            raise UsageError("no homeserver: give --homeserver (or PEEK_HOMESERVER)")
    creds = CredentialStore(credentials_path_for(state_path), opts.notice)
    http = shared.http(homeserver, log) if shared is not None else None
    client = MatrixClient(homeserver, log=log, http=http)
    return Server(homeserver, store, creds, client, token, opts.guest, shared)


def open_room(
    room: str,
    opts: ConnectOptions,
    log: RequestLog | None = None,
    token_homeserver: str | None = None,
    shared: Shared | None = None,
) -> RoomSession:
    """Parse and resolve the room, and pick the identity that will watch it.

    `token_homeserver`: where a given `--token` was already sent (several rooms in one run); a
    room on another homeserver is refused before the token could reach that server.
    `shared`: the session, identity and backoff the run's other rooms on the same homeserver use.
    """
    ref = parse_room(room)
    server = open_server(opts, ref=ref, log=log, shared=shared)
    homeserver, store, client = server.homeserver, server.store, server.client
    if opts.token and token_homeserver is not None and homeserver != token_homeserver:
        raise UsageError(
            f"{room} is on {homeserver}, but the given token belongs to {token_homeserver}: "
            "a token is only sent to its own homeserver; follow that room in a run of its own"
        )
    identity, renew = server.identity()
    remembered = store.known_alias(homeserver, ref.value) if ref.is_alias else None
    room_id = resolve(client, ref, store)
    if remembered is not None and remembered != room_id:
        room_id = _moved_alias(client, store, homeserver, ref.value, remembered, room_id)
    gate = shared.gate(homeserver) if shared is not None else None
    return RoomSession(client, store, server.creds, homeserver, ref, room_id, identity, renew, gate)


def _share_guest_renewal(
    client: MatrixClient, creds: CredentialStore, homeserver: str, lock: threading.Lock
) -> None:
    """A guest the server forgot is replaced once for all the rooms of the homeserver.

    The first room refused registers a new guest; the others, refused with the same old
    token, take the one it stored instead of registering one each.
    """
    renew = client.on_token_rejected
    if renew is None:
        return

    def shared_renew() -> bool:
        refused = client.token
        with lock:
            stored = creds.get(homeserver, "guest")
            if stored is not None and stored["access_token"] != refused:
                client.token = stored["access_token"]
                return True
            return renew()

    client.on_token_rejected = shared_renew


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
        found = predecessor_of(create)
        if found == old:
            store.remember_alias(homeserver, alias, old)  # until the hand-over is done
            return old
        if found is None or found in seen:
            return new
        room = found
        seen.add(room)
    return new


def resolve(client: MatrixClient, ref: RoomRef, store: StateStore | None = None) -> str:
    """The room id for `ref`: ids as they are; aliases through the directory, remembered.

    A remembered alias keeps the saved position reachable when the alias is later removed or the
    directory is unreachable.
    """
    if not ref.is_alias:
        return ref.value
    try:
        reply = client.resolve_alias(ref.value)
    except NotFoundError:
        known = store.known_alias(client.base_url, ref.value) if store else None
        if known:
            return known
        raise NotFoundError(
            f"room alias {ref.value} not found on {client.base_url}", status=404
        ) from None
    except NetworkError:
        known = store.known_alias(client.base_url, ref.value) if store else None
        if known:
            return known
        raise
    room_id = reply.get("room_id")
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        raise NetworkError(f"{client.base_url} resolved {ref.value} to no usable room id")
    if store is not None:
        store.remember_alias(client.base_url, ref.value, room_id)
    return room_id
