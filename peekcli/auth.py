"""Identities: a given token, a stored login, or a guest registered (again) on demand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from peekcli.client import MatrixClient
from peekcli.errors import (
    ForbiddenError,
    GuestRefused,
    MatrixError,
    NotFoundError,
    TokenRejected,
    UnrecognizedError,
)
from peekcli.state import CredentialStore


@dataclass
class Identity:
    """Who peek watches as; `kind` is "token" (given), "login" (stored) or "guest"."""

    kind: str
    user_id: str | None = None

    def describe(self) -> str:
        if self.kind == "guest":
            return f"guest {self.user_id}" if self.user_id else "guest"
        return self.user_id or "the given token"


def guest_refused(homeserver: str, detail: str) -> GuestRefused:
    return GuestRefused(
        f"{homeserver} allows no guest access ({detail}); log in with `peek login {homeserver}` "
        "or pass --token / PEEK_ACCESS_TOKEN"
    )


def register_guest(client: MatrixClient, creds: CredentialStore) -> Identity:
    """Register a guest, store its token for later runs, and switch `client` to it."""
    try:
        reply = client.register_guest()
    except (ForbiddenError, NotFoundError, UnrecognizedError) as exc:
        raise guest_refused(client.base_url, exc.errcode or f"HTTP {exc.status}") from None
    except MatrixError as exc:
        if exc.errcode in ("M_GUEST_ACCESS_FORBIDDEN", "M_GUEST_DISABLED", "M_FORBIDDEN"):
            raise guest_refused(client.base_url, exc.errcode) from None
        raise
    token, user_id = reply.get("access_token"), reply.get("user_id")
    if not isinstance(token, str) or not token:
        raise guest_refused(client.base_url, "no access token in the registration reply")
    entry = {"access_token": token, "user_id": user_id if isinstance(user_id, str) else None}
    device_id = reply.get("device_id")
    if isinstance(device_id, str):
        entry["device_id"] = device_id
    creds.put(client.base_url, "guest", entry)
    client.token = token
    return Identity("guest", entry["user_id"])


def choose_identity(
    client: MatrixClient,
    creds: CredentialStore,
    *,
    token: str | None,
    guest: str = "auto",
) -> tuple[Identity, Callable[[], bool]]:
    """Pick the identity (`--token` first, then a stored login, then a guest) and its renewal.

    The returned callable is the loop's answer to a rejected token: a guest is replaced by a new
    one (True: retry the same request), anything else raises `TokenRejected` with a clear message.
    """
    hs = client.base_url
    if token:
        client.token = token
        return Identity("token"), _cannot_renew(hs, "the given token")
    login = creds.get(hs, "login") if guest != "force" else None
    if login is not None:
        client.token = login["access_token"]
        return Identity("login", login.get("user_id")), _cannot_renew(hs, "the stored login")
    if guest == "never":
        raise TokenRejected(
            f"no stored login for {hs} and --no-guest was given; run `peek login {hs}` "
            "or pass --token",
            status=401,
        )
    stored = creds.get(hs, "guest")
    if stored is not None:
        client.token = stored["access_token"]
        identity = Identity("guest", stored.get("user_id"))
    else:
        identity = register_guest(client, creds)

    def renew() -> bool:
        fresh = register_guest(client, creds)
        identity.user_id = fresh.user_id
        return True

    return identity, renew


def _cannot_renew(homeserver: str, what: str) -> Callable[[], bool]:
    def renew() -> bool:
        raise TokenRejected(
            f"{homeserver} rejected {what} (logged out or expired); run `peek login "
            f"{homeserver}` or pass a valid --token",
            status=401,
        )

    return renew
