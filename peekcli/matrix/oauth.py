"""OAuth 2.0 for Matrix (spec v1.15+): server metadata, dynamic client registration, the device
authorization grant (RFC 8628), the `refresh_token` grant and token revocation (RFC 7009).

Servers on the Matrix Authentication Service (matrix.org among them) log users in only this way.
OAuth endpoints take form-encoded bodies and answer errors as `{"error": …}` rather than Matrix's
`errcode`, so they get their own small transport over the client's HTTP session. Tokens travel in
request bodies here (that is the protocol) and are never logged or put in a message.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from peekcli.errors import (
    MatrixError,
    NetworkError,
    NotFoundError,
    PeekError,
    RateLimited,
    UnrecognizedError,
)
from peekcli.matrix.client import JSON, MatrixClient
from peekcli.retry import RetryPolicy
from peekcli.suggest import peek_command
from peekcli.tokens import is_valid_token

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_GRANT = "refresh_token"
API_SCOPE = "urn:matrix:client:api:*"
DEVICE_SCOPE = "urn:matrix:client:device:"
CLIENT_NAME = "peek"
#: The spec wants an https page about the client; servers show it on the consent screen.
CLIENT_URI = "https://pypi.org/project/peek-matrix/"
#: RFC 8628 §3.5: without an `interval`, poll every 5 s; `slow_down` adds 5 s for good.
DEFAULT_INTERVAL = 5.0
SLOW_DOWN_STEP = 5.0

#: Injectable for tests, so the device-flow poll never really waits.
sleep: Callable[[float], None] = time.sleep
clock: Callable[[], float] = time.monotonic


class OAuthError(PeekError):
    """An OAuth endpoint refused a request; `error` is the RFC 6749 error code."""

    def __init__(self, message: str, *, error: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class ServerMetadata:
    """The parts of `GET /auth_metadata` peek uses."""

    issuer: str
    token_endpoint: str
    registration_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None

    @property
    def supports_device_grant(self) -> bool:
        return bool(self.device_authorization_endpoint and self.registration_endpoint)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ServerMetadata | None:
        issuer, token = doc.get("issuer"), _endpoint(doc.get("token_endpoint"))
        if not isinstance(issuer, str) or not issuer or token is None:
            return None
        return cls(
            issuer=issuer,
            token_endpoint=token,
            registration_endpoint=_endpoint(doc.get("registration_endpoint")),
            device_authorization_endpoint=_endpoint(doc.get("device_authorization_endpoint")),
            revocation_endpoint=_endpoint(doc.get("revocation_endpoint")),
        )


def _endpoint(value: Any) -> str | None:
    """An endpoint URL tokens may be sent to: https, or http on the loopback interface only."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.netloc:
        return value
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return value
    return None


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_in: float | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], where: str) -> TokenSet:
        access = doc.get("access_token")
        if not isinstance(access, str) or not access:
            raise NetworkError(f"{where} sent a token reply without an access token")
        if not is_valid_token(access):
            raise NetworkError(f"{where} sent an unusable access token (not printable ASCII)")
        refresh = doc.get("refresh_token")
        return cls(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in=_positive(doc.get("expires_in")),
        )


@dataclass(frozen=True)
class DeviceAuthorization:
    """What the user needs to approve the login elsewhere, and how long they have."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


def _positive(value: Any) -> float | None:
    """A positive JSON number as a float, else None (`true` is no number here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def discover(client: MatrixClient) -> ServerMetadata | None:
    """The server's OAuth 2.0 metadata, or None when it does not log in through OAuth."""
    try:
        doc = client.auth_metadata()
    except (NotFoundError, UnrecognizedError):
        return None
    except MatrixError as exc:
        if exc.status in (400, 403, 404, 405):
            return None
        raise
    return ServerMetadata.from_doc(doc)


def new_device_id() -> str:
    """A device id MAS accepts (≥ 10 characters of A-Z, 0-9)."""
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


def scope_for(device_id: str) -> str:
    return f"{API_SCOPE} {DEVICE_SCOPE}{device_id}"


def registration_metadata() -> JSON:
    """A public native client that logs in with the device grant and refreshes its tokens."""
    return {
        "client_name": CLIENT_NAME,
        "client_uri": CLIENT_URI,
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": [DEVICE_GRANT, REFRESH_GRANT],
    }


def register_client(client: MatrixClient, meta: ServerMetadata) -> str:
    """Dynamic client registration (RFC 7591); returns the client id."""
    if meta.registration_endpoint is None:
        raise OAuthError(f"{meta.issuer} offers no client registration")
    reply = _post(client, meta.registration_endpoint, json_body=registration_metadata())
    client_id = reply.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise NetworkError(f"{meta.issuer} registered peek but sent no client_id")
    return client_id


def authorize_device(
    client: MatrixClient, meta: ServerMetadata, client_id: str, scope: str
) -> DeviceAuthorization:
    """Start the device grant: the server hands out a code for the user to approve."""
    if meta.device_authorization_endpoint is None:
        raise OAuthError(f"{meta.issuer} does not offer the device authorization grant")
    doc = _post(
        client, meta.device_authorization_endpoint, form={"client_id": client_id, "scope": scope}
    )
    device_code, user_code = doc.get("device_code"), doc.get("user_code")
    uri, complete = doc.get("verification_uri"), doc.get("verification_uri_complete")
    if not all(isinstance(v, str) and v for v in (device_code, user_code, uri)):
        raise NetworkError(f"{meta.issuer} sent an unusable device authorization reply")
    assert isinstance(device_code, str) and isinstance(user_code, str) and isinstance(uri, str)
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        expires_in=_positive(doc.get("expires_in")) or 600.0,
        interval=_positive(doc.get("interval")) or DEFAULT_INTERVAL,
    )


def poll_for_token(
    client: MatrixClient, meta: ServerMetadata, client_id: str, grant: DeviceAuthorization
) -> TokenSet:
    """Poll the token endpoint until the user approves, denies, or the code expires."""
    deadline = clock() + grant.expires_in
    interval = wait = grant.interval
    backoff, failures = RetryPolicy(), 0
    form = {"grant_type": DEVICE_GRANT, "device_code": grant.device_code, "client_id": client_id}
    while True:
        if clock() + wait > deadline:
            raise OAuthError(_expired(client), error="expired_token")
        sleep(wait)
        wait = interval
        try:
            return TokenSet.from_doc(_post(client, meta.token_endpoint, form=form), meta.issuer)
        except OAuthError as exc:
            failures = 0
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval = wait = interval + SLOW_DOWN_STEP
                continue
            if exc.error == "access_denied":
                raise OAuthError("the login was denied in the browser", error=exc.error) from None
            if exc.error == "expired_token":
                raise OAuthError(_expired(client), error=exc.error) from None
            raise
        except NetworkError:
            # RFC 8628 §3.5: back off on a failing connection rather than give up the login,
            # with the one retry policy, never polling faster than the server's interval.
            wait = max(interval, backoff.delay(failures))
            failures += 1


def _expired(client: MatrixClient) -> str:
    return (
        "the login code expired before it was approved; run "
        f"`{peek_command('login', client.base_url)}` again"
    )


def refresh(client: MatrixClient, token_endpoint: str, client_id: str, token: str) -> TokenSet:
    """The `refresh_token` grant: spends the refresh token for a new pair."""
    form = {"grant_type": REFRESH_GRANT, "refresh_token": token, "client_id": client_id}
    return TokenSet.from_doc(_post(client, token_endpoint, form=form), _origin(token_endpoint))


def revoke(client: MatrixClient, endpoint: str, client_id: str, token: str, hint: str) -> None:
    """RFC 7009: end the session the token belongs to (an unknown token still answers 200)."""
    _post(client, endpoint, form={"token": token, "token_type_hint": hint, "client_id": client_id})


# -- transport -------------------------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _post(
    client: MatrixClient,
    url: str,
    *,
    form: Mapping[str, str] | None = None,
    json_body: JSON | None = None,
) -> JSON:
    """POST to an OAuth endpoint; OAuth errors → `OAuthError`, transport failures → NetworkError."""
    where = _origin(url)
    reply = client.http.send(
        "POST", url, where=where, form=form, json=json_body, headers={"Accept": "application/json"}
    )
    data = {} if reply.empty else reply.data
    status = reply.status
    if 200 <= status < 300:
        if not isinstance(data, dict):
            raise NetworkError(f"{where} sent an unreadable reply (HTTP {status}, not JSON)")
        return data
    if status == 429:
        raise RateLimited(f"{where} answered HTTP 429 (rate limited)", None)
    if status >= 500 or not isinstance(data, dict):
        raise NetworkError(f"{where} answered HTTP {status}")
    error = data.get("error")
    error = error if isinstance(error, str) else None
    detail = data.get("error_description")
    what = error or f"HTTP {status}"
    if isinstance(detail, str) and detail:
        what = f"{what}: {detail}"
    raise OAuthError(f"{where} refused the request ({what})", error=error, status=status)
