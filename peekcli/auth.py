"""Identities: a given token, a stored login (refreshed as it expires), or a guest.

Most servers give no guest tokens (Synapse's default, and matrix.org), yet let any logged-in user
peek into world-readable rooms without joining them. So `peek login` stores a user's login per
homeserver: a password login (`m.login.password`, asking for a refresh token), the OAuth 2.0 device
authorization grant (servers on the Matrix Authentication Service), or a token made elsewhere.

Refresh tokens are single-use: the new pair is written to the credentials file (atomically, under
its lock) before the new access token is used, and the refresh itself runs under that lock, so two
peek processes sharing a login never both spend the same refresh token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peekcli import signals
from peekcli.errors import (
    CredentialRejected,
    ForbiddenError,
    GuestRefused,
    MatrixError,
    NetworkError,
    NotFoundError,
    PeekError,
    StateNotWritable,
    TokenRejected,
    UnrecognizedError,
    UsageError,
)
from peekcli.matrix import oauth
from peekcli.matrix.client import JSON, MatrixClient
from peekcli.state import CredentialStore
from peekcli.suggest import peek_command
from peekcli.tokens import check_token, is_valid_token

#: Wall clock for stored expiry times (they outlive the process); tests replace it.
now: Callable[[], float] = time.time
#: Renew a token this many seconds before its stored expiry, so a request never races it.
EXPIRY_MARGIN = 1.0

PASSWORD = "m.login.password"


@dataclass
class Identity:
    """Who peek watches as; `kind` is "token" (given), "login" (stored) or "guest".

    `joined` says whether that user is joined to the watched room (True) or reads it without
    joining, i.e. peeks (False); None when unknown (a resumed run skips initialSync).
    """

    kind: str
    user_id: str | None = None
    device_id: str | None = None
    joined: bool | None = None

    def describe(self) -> str:
        if self.kind == "guest":
            return f"guest {self.user_id}" if self.user_id else "guest"
        return self.user_id or "the given token"

    def summary(self) -> str:
        """For a header: `guest @g:hs, peeking` / `@u:hs, joined` / `@u:hs`."""
        if self.joined is None:
            return self.describe()
        return f"{self.describe()}, {'joined' if self.joined else 'peeking (not joined)'}"


def joined_per(initial: JSON | None) -> bool | None:
    """Joined or peeking, from a room initialSync reply: it carries `membership` only for members
    (Synapse leaves it out when the user reads a world-readable room without joining)."""
    if not isinstance(initial, dict):
        return None
    return initial.get("membership") == "join"


def short_hs(homeserver: str) -> str:
    """`https://example.org` → `example.org` (what a user types after `peek login`)."""
    return homeserver.removeprefix("https://")


def login_command(homeserver: str) -> str:
    """`peek login SERVER`, shell-quoted: the URL may come from a server's `.well-known`."""
    return peek_command("login", short_hs(homeserver))


def guest_refused(homeserver: str, detail: str) -> GuestRefused:
    hs = short_hs(homeserver)
    return GuestRefused(
        f"{homeserver} allows no guests ({detail}): log in with `{peek_command('login', hs)}`, "
        "or pass --token / PEEK_ACCESS_TOKEN"
    )


def no_registration(client: MatrixClient, exc: MatrixError) -> PeekError:
    """A 404 / M_UNRECOGNIZED on guest registration: a wrong URL, or a server without it.

    `/versions` tells the two apart: every Matrix server answers it at the right base URL.
    """
    what = exc.errcode or f"HTTP {exc.status}"
    try:
        client.versions()
    except PeekError:
        base = client.base_url
        cut = base.find("/_matrix")
        hint = (
            f"give the homeserver's base URL, without /_matrix/…: {base[:cut]}"
            if cut >= 0
            else "check the URL (the homeserver's base URL), or it is not a Matrix homeserver"
        )
        return UsageError(f"no Matrix client API at {base} (/register: {what}); {hint}")
    return guest_refused(client.base_url, f"it does not offer guest registration: {what}")


def logged_out(homeserver: str, detail: str) -> TokenRejected:
    return TokenRejected(
        f"logged out of {homeserver}: {detail}; run `{login_command(homeserver)}` again",
        status=401,
    )


def register_guest(client: MatrixClient, creds: CredentialStore) -> Identity:
    """Register a guest, store its token for later runs, and switch `client` to it."""
    try:
        reply = client.register_guest()
    except (NotFoundError, UnrecognizedError) as exc:
        raise no_registration(client, exc) from None
    except ForbiddenError as exc:
        raise guest_refused(client.base_url, exc.errcode or f"HTTP {exc.status}") from None
    except TokenRejected as exc:
        # Some servers answer a guest registration they do not offer with 401 and a UIA flow.
        raise guest_refused(client.base_url, exc.errcode or f"HTTP {exc.status}") from None
    except MatrixError as exc:
        if exc.errcode in ("M_GUEST_ACCESS_FORBIDDEN", "M_GUEST_DISABLED", "M_FORBIDDEN"):
            raise guest_refused(client.base_url, exc.errcode) from None
        raise
    token, user_id = reply.get("access_token"), reply.get("user_id")
    if not isinstance(token, str) or not token:
        raise guest_refused(client.base_url, "no access token in the registration reply")
    if not is_valid_token(token):
        # Exit 1 like an unreadable reply, but not retried: the server is up and means it.
        raise PeekError(f"{client.base_url} registered a guest with an unusable access token")
    entry = {"access_token": token, "user_id": user_id if isinstance(user_id, str) else None}
    device_id = reply.get("device_id")
    if isinstance(device_id, str):
        entry["device_id"] = device_id
    # A read-only state folder: this run keeps the guest, the next one registers anew.
    with contextlib.suppress(StateNotWritable):
        creds.put(client.base_url, "guest", entry)
    client.token = token
    return Identity("guest", entry["user_id"], entry.get("device_id"))


def choose_identity(
    client: MatrixClient,
    creds: CredentialStore,
    *,
    token: str | None,
    guest: str = "auto",
) -> tuple[Identity, Callable[[], bool]]:
    """Pick the identity (`--token` first, then a stored login, then a guest) and its renewal.

    `guest` is "auto", "force" (`--guest`: a guest whatever is stored) or "never" (`--no-guest`).
    The returned callable is the loop's answer to a rejected token. Guests and logins renew in
    the client (a new guest, or a refresh, then the refused request once more), so the loop only
    hears of a token the renewal could not save: the callable returns False (the server's error
    stands) or raises `TokenRejected` with a clearer message.
    """
    hs = client.base_url
    if token and guest != "force":
        client.token = token
        user_id, device_id = _whoami_of_given_token(client)
        return Identity("token", user_id, device_id), _cannot_renew(hs, "the given token")
    login = creds.get(hs, "login") if guest != "force" else None
    if login is not None:
        session = LoginSession(client, creds)
        return session.start(), session.gave_up
    if guest == "never":
        raise TokenRejected(
            f"no stored login for {hs} and --no-guest was given; run `{login_command(hs)}` "
            "or pass --token",
            status=401,
        )
    stored = creds.get(hs, "guest")
    if stored is not None:
        client.token = stored["access_token"]
        identity = Identity("guest", stored.get("user_id"), stored.get("device_id"))
    else:
        identity = register_guest(client, creds)

    def renew() -> bool:
        fresh = register_guest(client, creds)
        identity.user_id, identity.device_id = fresh.user_id, fresh.device_id
        return True

    # A stored guest the server has forgotten is replaced on any request (alias lookup and
    # initialSync included) by the client itself, once per request; the loop then has nothing
    # left to renew, so a fresh guest refused at once ends the run instead of looping.
    client.on_token_rejected = renew
    return identity, lambda: False


def _whoami_of_given_token(client: MatrixClient) -> tuple[str | None, str | None]:
    """Who a `--token` belongs to, for the header; a rejected token fails here, clearly."""
    try:
        reply = client.whoami()
    except TokenRejected:
        raise TokenRejected(
            f"{client.base_url} rejected the given token (logged out or expired); pass a valid "
            f"--token or run `{login_command(client.base_url)}`",
            status=401,
        ) from None
    except PeekError:
        return None, None  # not worth failing the run over: the header just shows less
    return _str(reply.get("user_id")), _str(reply.get("device_id"))


def _cannot_renew(homeserver: str, what: str) -> Callable[[], bool]:
    def renew() -> bool:
        raise TokenRejected(
            f"{homeserver} rejected {what} (logged out or expired); run "
            f"`{login_command(homeserver)}` or pass a valid --token",
            status=401,
        )

    return renew


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- a stored login in use -------------------------------------------------------------------------


def expired(entry: dict[str, Any]) -> bool:
    expires_at = entry.get("expires_at")
    if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
        return False
    return now() >= expires_at - EXPIRY_MARGIN


class LoginSession:
    """The stored login of `client`'s homeserver, renewed before expiry or on a rejection."""

    def __init__(self, client: MatrixClient, creds: CredentialStore) -> None:
        self.client = client
        self.creds = creds
        self.failure: TokenRejected | None = None

    def start(self) -> Identity:
        """Load the login into the client, refreshing it first if its stored expiry has passed.

        From then on the client calls `renew` on a 401 and sends the refused request once more.
        """
        entry = self.creds.get(self.client.base_url, "login")
        if entry is None:
            raise not_logged_in(self.client.base_url)
        if expired(entry):
            entry = refresh_login(self.client, self.creds, rejected=None)
        self.client.token = entry["access_token"]
        self.client.on_token_rejected = self.renew
        return Identity("login", _str(entry.get("user_id")), _str(entry.get("device_id")))

    def renew(self) -> bool:
        """The server rejected the token: take a newer one (refreshed here or by another peek)."""
        try:
            entry = refresh_login(self.client, self.creds, rejected=self.client.token)
        except TokenRejected as exc:
            self.failure = exc
            raise
        self.client.token = entry["access_token"]
        return True

    def gave_up(self) -> bool:
        """The loop's hook: a rejection reaches it only when renewing and retrying did not help."""
        if self.failure is not None:
            raise self.failure
        raise logged_out(self.client.base_url, "it rejected the token it had just issued")


def not_logged_in(homeserver: str) -> TokenRejected:
    return TokenRejected(
        f"not logged in to {homeserver}; run `{login_command(homeserver)}`", status=401
    )


def refresh_login(
    client: MatrixClient, creds: CredentialStore, *, rejected: str | None
) -> dict[str, Any]:
    """The stored login with a usable access token, refreshed if need be; returns the entry.

    `rejected` is the access token the server just refused (None: renewing ahead of expiry). All
    of it runs under the credentials file's lock: a peek that finds a token other than the one it
    had (another peek refreshed meanwhile) takes that one instead of spending the refresh token.
    """
    hs = client.base_url

    def change(entry: dict[str, Any] | None) -> dict[str, Any]:
        if entry is None or not isinstance(entry.get("access_token"), str):
            raise logged_out(hs, "the stored login is gone (peek logout?)")
        if entry["access_token"] != rejected and not expired(entry):
            return entry
        refresh_token = entry.get("refresh_token")
        who = _str(entry.get("user_id")) or "the stored login"
        if not isinstance(refresh_token, str) or not refresh_token:
            raise logged_out(hs, f"the token of {who} expired or was revoked and cannot be renewed")
        entry.update(_tokens_entry(_spend(client, entry, refresh_token)))
        return entry

    # A stop signal waits for the new pair to be stored: the old refresh token is spent by then.
    with signals.deferred():
        entry = creds.update_entry(hs, "login", change)
    assert entry is not None
    return entry


def _spend(client: MatrixClient, entry: dict[str, Any], refresh_token: str) -> oauth.TokenSet:
    """Trade the refresh token for a new pair: the OAuth grant, or Matrix's `POST /refresh`.

    A network failure propagates as `NetworkError`: the stream loop retries it with backoff, and
    the refresh token is still unspent (or, on Synapse, still valid until the new pair is used).
    """
    hs = client.base_url
    try:
        if entry.get("method") == "oauth":
            endpoint, client_id = entry.get("token_endpoint"), entry.get("client_id")
            if not isinstance(endpoint, str) or not isinstance(client_id, str):
                raise logged_out(hs, "the stored OAuth login is incomplete")
            tokens = oauth.refresh(client, endpoint, client_id, refresh_token)
        else:
            tokens = _matrix_tokens(client.refresh(refresh_token), hs)
    except oauth.OAuthError as exc:
        raise logged_out(hs, f"the refresh was refused ({exc.error or exc.status})") from None
    except MatrixError as exc:
        raise logged_out(hs, f"the refresh was refused ({exc.errcode or exc.status})") from None
    if tokens.refresh_token is None:
        # No new refresh token means the old one stays valid (Matrix spec; RFC 6749 §6).
        tokens = oauth.TokenSet(tokens.access_token, refresh_token, tokens.expires_in)
    return tokens


def _matrix_tokens(reply: JSON, where: str) -> oauth.TokenSet:
    """A Matrix `/login` or `/refresh` reply (expiry in ms) as a token set."""
    access = reply.get("access_token")
    if not isinstance(access, str) or not access:
        raise NetworkError(f"{where} sent a reply without an access token")
    if not is_valid_token(access):
        raise NetworkError(f"{where} sent an unusable access token (not printable ASCII)")
    ms = reply.get("expires_in_ms")
    expires = float(ms) / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else None
    return oauth.TokenSet(access, _str(reply.get("refresh_token")), expires)


def _tokens_entry(tokens: oauth.TokenSet) -> dict[str, Any]:
    entry: dict[str, Any] = {"access_token": tokens.access_token, "expires_at": None}
    if tokens.refresh_token is not None:
        entry["refresh_token"] = tokens.refresh_token
    if tokens.expires_in is not None:
        entry["expires_at"] = round(now() + tokens.expires_in, 3)
    return entry


# -- logging in and out ----------------------------------------------------------------------------


@dataclass
class LoginResult:
    homeserver: str
    user_id: str
    device_id: str | None
    method: str
    #: The user id of the earlier login this one replaced (its session was ended), if any.
    replaced: str | None = None
    #: The earlier session could not be ended on the server (it stays among the user's devices).
    replaced_not_revoked: bool = False


@dataclass
class LoginOptions:
    """What the server offers: OAuth 2.0 metadata (if any) and the `/login` flow types."""

    oauth: oauth.ServerMetadata | None
    flows: list[str]

    @property
    def password(self) -> bool:
        return PASSWORD in self.flows


def login_options(client: MatrixClient) -> LoginOptions:
    meta = oauth.discover(client)
    flows: list[str] = []
    try:
        reply = client.login_flows()
    except MatrixError:
        if meta is None:
            raise
        reply = {}
    listed = reply.get("flows")
    for flow in listed if isinstance(listed, list) else []:
        if isinstance(flow, dict) and isinstance(flow.get("type"), str):
            flows.append(flow["type"])
    return LoginOptions(meta, flows)


def no_usable_flow(homeserver: str, options: LoginOptions) -> PeekError:
    hs = short_hs(homeserver)
    if options.oauth is not None:
        what = "logs in through a browser redirect (OAuth 2.0 without the device grant)"
    else:
        what = f"offers no login peek can do ({', '.join(options.flows) or 'none listed'})"
    return PeekError(
        f"{homeserver} {what}; log in with another client and give peek its access token: "
        f"`{peek_command('login', hs, '--token', '-')}` (reads it from stdin)"
    )


def login_with_password(
    client: MatrixClient,
    creds: CredentialStore,
    user: str,
    password: str,
    device_name: str,
) -> LoginResult:
    """`m.login.password`, asking for a refresh token so the login can outlive its token."""
    body: JSON = {
        "type": PASSWORD,
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
        "initial_device_display_name": device_name,
        "refresh_token": True,
    }
    try:
        reply = client.login(body)
    except (ForbiddenError, TokenRejected) as exc:
        what = exc.errcode or f"HTTP {exc.status}"
        if exc.errcode == "M_USER_DEACTIVATED":
            raise CredentialRejected(
                f"{client.base_url} refused the login for {user}: the account is deactivated"
                f" ({what})"
            ) from None
        raise CredentialRejected(
            f"{client.base_url} refused the login for {user}: wrong user name or password ({what})"
        ) from None
    except MatrixError as exc:
        raise PeekError(f"{client.base_url} refused the login: {exc.message}") from None
    tokens = _matrix_tokens(reply, client.base_url)
    user_id = _str(reply.get("user_id")) or user
    entry = {"method": "password", "user_id": user_id, "device_id": _str(reply.get("device_id"))}
    return _store(client, creds, {**entry, **_tokens_entry(tokens)})


def login_with_token(client: MatrixClient, creds: CredentialStore, token: str) -> LoginResult:
    """Store a token made elsewhere, after `/account/whoami` confirms it and names its user."""
    client.token = check_token(token, "--token")
    try:
        reply = client.whoami()
    except TokenRejected:
        raise TokenRejected(
            f"{client.base_url} rejected the token (logged out or expired); nothing was stored",
            status=401,
        ) from None
    user_id = _str(reply.get("user_id"))
    if user_id is None:
        raise NetworkError(f"{client.base_url} sent a whoami reply without a user id")
    entry = {
        "method": "token",
        "user_id": user_id,
        "device_id": _str(reply.get("device_id")),
        "access_token": token,
    }
    return _store(client, creds, entry)


def login_with_device_grant(
    client: MatrixClient,
    creds: CredentialStore,
    meta: oauth.ServerMetadata,
    show: Callable[[oauth.DeviceAuthorization], None],
) -> LoginResult:
    """The OAuth 2.0 device authorization grant: the user approves in any browser."""
    hs = client.base_url
    client_id = _client_id(client, creds, meta, fresh=False)
    device_id = oauth.new_device_id()
    scope = oauth.scope_for(device_id)
    try:
        grant = oauth.authorize_device(client, meta, client_id, scope)
    except oauth.OAuthError as exc:
        if exc.error != "invalid_client":
            raise
        # The cached registration was forgotten by the server: register again, once.
        client_id = _client_id(client, creds, meta, fresh=True)
        grant = oauth.authorize_device(client, meta, client_id, scope)
    show(grant)
    tokens = oauth.poll_for_token(client, meta, client_id, grant)
    client.token = tokens.access_token
    reply = client.whoami()
    user_id = _str(reply.get("user_id"))
    if user_id is None:
        raise NetworkError(f"{hs} sent a whoami reply without a user id")
    entry = {
        "method": "oauth",
        "user_id": user_id,
        "device_id": _str(reply.get("device_id")) or device_id,
        "issuer": meta.issuer,
        "client_id": client_id,
        "token_endpoint": meta.token_endpoint,
        "revocation_endpoint": meta.revocation_endpoint,
        **_tokens_entry(tokens),
    }
    return _store(client, creds, entry)


def _client_id(
    client: MatrixClient, creds: CredentialStore, meta: oauth.ServerMetadata, *, fresh: bool
) -> str:
    """peek's client id at this server's OAuth issuer: registered once, then reused."""
    cached = creds.entry(client.base_url, "oauth_client")
    if not fresh and cached and cached.get("issuer") == meta.issuer:
        client_id = cached.get("client_id")
        if isinstance(client_id, str) and client_id:
            return client_id
    client_id = oauth.register_client(client, meta)
    creds.update_entry(
        client.base_url,
        "oauth_client",
        lambda _old: {"issuer": meta.issuer, "client_id": client_id},
    )
    return client_id


def _store(client: MatrixClient, creds: CredentialStore, entry: dict[str, Any]) -> LoginResult:
    """Save the new login, then end the session it replaces (best effort)."""
    entry = {k: v for k, v in entry.items() if v is not None}
    old: dict[str, Any] | None = None

    def change(previous: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal old
        old = previous
        return entry

    creds.update_entry(client.base_url, "login", change)
    result = LoginResult(client.base_url, entry["user_id"], entry.get("device_id"), entry["method"])
    if old and old.get("access_token") != entry["access_token"]:
        result.replaced = _str(old.get("user_id")) or "an earlier login"
        # Only sessions peek opened itself are ended: a token made elsewhere (`--token`) may be
        # another client's session, which replacing it here must not log out.
        if old.get("method") in ("password", "oauth"):
            try:
                _end_session(MatrixClient(client.base_url, http=client.http), old)
            except PeekError:
                result.replaced_not_revoked = True
        else:
            result.replaced_not_revoked = True
    return result


@dataclass
class WhoAmI:
    homeserver: str
    user_id: str | None
    device_id: str | None
    method: str | None
    expires_at: float | None


def whoami(client: MatrixClient, creds: CredentialStore) -> WhoAmI:
    """The stored login as the server sees it (refreshed first when it has expired)."""
    LoginSession(client, creds).start()
    reply = client.whoami()
    entry = creds.get(client.base_url, "login") or {}
    expires_at = entry.get("expires_at")
    return WhoAmI(
        client.base_url,
        _str(reply.get("user_id")),
        _str(reply.get("device_id")),
        _str(entry.get("method")),
        float(expires_at) if isinstance(expires_at, int | float) else None,
    )


@dataclass
class LogoutResult:
    user_id: str | None
    #: False when the server had already ended the session (the token was dead).
    revoked: bool


def logout(client: MatrixClient, creds: CredentialStore, *, local_only: bool) -> LogoutResult:
    """End the stored login on the server, then forget it; a network failure keeps it."""
    entry = creds.get(client.base_url, "login")
    if entry is None:
        raise not_logged_in(client.base_url)
    user_id = _str(entry.get("user_id"))
    revoked = False
    if not local_only:
        revoked = _end_session(client, entry, creds=creds)
    creds.delete(client.base_url, "login")
    return LogoutResult(user_id, revoked)


def _end_session(
    client: MatrixClient, entry: dict[str, Any], creds: CredentialStore | None = None
) -> bool:
    """Revoke the session on the server; False if it was already gone there."""
    if entry.get("method") == "oauth":
        endpoint, client_id = entry.get("revocation_endpoint"), entry.get("client_id")
        if not isinstance(endpoint, str) or not isinstance(client_id, str):
            raise PeekError(
                f"{client.base_url} named no revocation endpoint; the login was kept "
                "(use --local to only forget it here)"
            )
        for kind in ("refresh_token", "access_token"):
            token = entry.get(kind)
            if isinstance(token, str) and token:
                oauth.revoke(client, endpoint, client_id, token, kind)
        return True
    try:
        if creds is not None:
            LoginSession(client, creds).start()  # renewed first if expired, and on a 401
        else:
            client.token = entry["access_token"]
        client.logout()
    except TokenRejected:
        return False  # dead, and no refresh brings it back: nothing left to end on the server
    return True
