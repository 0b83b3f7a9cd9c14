"""Matrix client-server HTTP: one keep-alive session, bearer auth, and error bodies → typed errors.

Every reply is untrusted: anything that is not the JSON object we asked for becomes a `PeekError`
subclass, so callers never see a `requests` exception or a `KeyError` on a malformed body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from peekcli import __version__
from peekcli.errors import (
    ForbiddenError,
    InvalidTokenError,
    MatrixError,
    NetworkError,
    NotFoundError,
    PeekError,
    RateLimited,
    TokenRejected,
    UnrecognizedError,
    UsageError,
)
from peekcli.tokens import is_valid_token

API = "/_matrix/client/v3"
CONNECT_TIMEOUT = 10.0
#: Seconds added to a long-poll's own timeout before the HTTP read gives up on it.
LONG_POLL_MARGIN = 15.0

JSON = dict[str, Any]
RequestLog = Callable[[str, str, int | None, float], None]


def q(segment: str) -> str:
    """Quote one path segment: room ids, aliases and event ids carry `!`, `#`, `:` and `$`."""
    return quote(segment, safe="")


class MatrixClient:
    """A thin, typed wrapper around the endpoints peek uses; retry policy is the caller's."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        session: requests.Session | None = None,
        log: RequestLog | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"peek/{__version__}"
        self.log = log
        #: Set by a stored login (peekcli.auth): called when an authenticated request is refused
        #: with 401; True means a renewed token is in place and the request is sent once more.
        self.on_token_rejected: Callable[[], bool] | None = None

    # -- transport -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JSON | None = None,
        read_timeout: float = 30.0,
        auth: bool = True,
    ) -> JSON:
        """Send one request and return its JSON object, or raise the matching `PeekError`."""
        data = self.request_any(
            method, path, params=params, body=body, read_timeout=read_timeout, auth=auth
        )
        if not isinstance(data, dict):
            raise NetworkError(f"{self.base_url} sent an unreadable reply (not a JSON object)")
        return data

    def request_any(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JSON | None = None,
        read_timeout: float = 30.0,
        auth: bool = True,
    ) -> Any:
        """Like `request`, for the few endpoints whose reply is a JSON array."""
        kw: dict[str, Any] = {"params": params, "body": body, "read_timeout": read_timeout}
        if auth and self.token and self.on_token_rejected is not None:
            try:
                return self._send(method, path, auth=True, **kw)
            except TokenRejected:
                if not self.on_token_rejected():
                    raise
        return self._send(method, path, auth=auth, **kw)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        body: JSON | None,
        read_timeout: float,
        auth: bool,
    ) -> Any:
        """One HTTP exchange, its reply parsed (see `_parse`)."""
        url = path if path.startswith("http") else self.base_url + path
        headers = {}
        if auth and self.token:
            if not is_valid_token(self.token):
                # A stored token from before tokens were checked: never sent, treated as
                # rejected, so a guest is registered anew and a login refreshed.
                raise TokenRejected(
                    f"the access token for {self.base_url} is unusable (not printable ASCII)",
                    status=401,
                )
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT, read_timeout),
            )
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise UsageError(f"invalid homeserver URL {self.base_url!r}: {exc}") from None
        except requests.exceptions.Timeout:
            self._log(method, url, None)
            raise NetworkError(f"{self.base_url} did not answer in time") from None
        except requests.exceptions.RequestException as exc:
            self._log(method, url, None)
            raise NetworkError(f"cannot reach {self.base_url} ({_reason(exc)})") from None
        self._log(method, url, resp.status_code, resp.elapsed.total_seconds())
        return self._parse(resp)

    def _log(self, method: str, url: str, status: int | None, elapsed: float = 0.0) -> None:
        if self.log is not None:
            # URLs never carry the token (it travels in a header), so they are safe to log.
            self.log(method, url.split("?", 1)[0], status, elapsed)

    def _parse(self, resp: requests.Response) -> Any:
        status = resp.status_code
        try:
            data = resp.json()
        except (ValueError, json.JSONDecodeError):
            data = None
        if 200 <= status < 300:
            if data is None:
                raise NetworkError(
                    f"{self.base_url} sent an unreadable reply (HTTP {status}, not JSON)"
                )
            return data
        errcode = data.get("errcode") if isinstance(data, dict) else None
        error = data.get("error") if isinstance(data, dict) else None
        errcode = errcode if isinstance(errcode, str) else None
        error = error if isinstance(error, str) else None
        what = f"{errcode}: {error}" if errcode and error else (errcode or error or resp.reason)
        message = f"{self.base_url} answered HTTP {status} ({what})"
        if status == 429 or errcode == "M_LIMIT_EXCEEDED":
            raise RateLimited(message, _retry_after(resp, data))
        if status >= 500 or data is None:
            raise NetworkError(message)
        if status == 401 or errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            soft = bool(data.get("soft_logout")) if isinstance(data, dict) else False
            raise TokenRejected(message, status=status, errcode=errcode, soft_logout=soft)
        if errcode == "M_UNRECOGNIZED" or status == 405:
            raise UnrecognizedError(message, status=status, errcode=errcode)
        if status == 403:
            raise ForbiddenError(message, status=status, errcode=errcode)
        if status == 404:
            raise NotFoundError(message, status=status, errcode=errcode)
        if status == 400 and error and ("from" in error.lower() or "token" in error.lower()):
            raise InvalidTokenError(message, status=status, errcode=errcode)
        raise MatrixError(message, status=status, errcode=errcode)

    # -- endpoints -------------------------------------------------------------------------------

    def versions(self) -> JSON:
        return self.request("GET", "/_matrix/client/versions", auth=False, read_timeout=15)

    def register_guest(self) -> JSON:
        return self.request(
            "POST", f"{API}/register", params={"kind": "guest"}, body={}, auth=False
        )

    def whoami(self) -> JSON:
        return self.request("GET", f"{API}/account/whoami")

    def login_flows(self) -> JSON:
        return self.request("GET", f"{API}/login", auth=False)

    def login(self, body: JSON) -> JSON:
        return self.request("POST", f"{API}/login", body=body, auth=False)

    def refresh(self, refresh_token: str) -> JSON:
        """`POST /refresh`: spends the single-use refresh token for a new pair."""
        return self.request(
            "POST", f"{API}/refresh", body={"refresh_token": refresh_token}, auth=False
        )

    def logout(self) -> JSON:
        return self.request("POST", f"{API}/logout", body={})

    def auth_metadata(self) -> JSON:
        """The OAuth 2.0 server metadata (spec v1.15+; before that, MSC2965's unstable path)."""
        try:
            return self.request("GET", "/_matrix/client/v1/auth_metadata", auth=False)
        except (NotFoundError, UnrecognizedError):
            return self.request(
                "GET", "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", auth=False
            )

    def resolve_alias(self, alias: str) -> JSON:
        return self.request("GET", f"{API}/directory/room/{q(alias)}")

    def initial_sync(self, room_id: str, limit: int) -> JSON:
        return self.request("GET", f"{API}/rooms/{q(room_id)}/initialSync", params={"limit": limit})

    def room_state(self, room_id: str) -> list[Any]:
        reply = self.request_any("GET", f"{API}/rooms/{q(room_id)}/state")
        return reply if isinstance(reply, list) else []

    def events(
        self,
        room_id: str,
        from_token: str,
        timeout_ms: int,
        limit: int,
        *,
        read_timeout: float | None = None,
    ) -> JSON:
        """`read_timeout` overrides timeout + margin for servers that hold long-polls longer."""
        return self.request(
            "GET",
            f"{API}/events",
            params={"room_id": room_id, "from": from_token, "timeout": timeout_ms, "limit": limit},
            read_timeout=read_timeout or timeout_ms / 1000 + LONG_POLL_MARGIN,
        )

    def messages(self, room_id: str, from_token: str | None, direction: str, limit: int) -> JSON:
        params: dict[str, Any] = {"dir": direction, "limit": limit}
        if from_token:
            params["from"] = from_token
        return self.request("GET", f"{API}/rooms/{q(room_id)}/messages", params=params)

    def room_summary(
        self, room: str, via: tuple[str, ...] = (), *, unstable: bool = False, auth: bool = True
    ) -> JSON:
        """`GET /v1/room_summary/{roomIdOrAlias}` (spec v1.15), or MSC3266's older nheko path."""
        path = (
            f"/_matrix/client/unstable/im.nheko.summary/rooms/{q(room)}/summary"
            if unstable
            else f"/_matrix/client/v1/room_summary/{q(room)}"
        )
        params = {"via": list(via)} if via else None
        return self.request("GET", path, params=params, auth=auth, read_timeout=15)

    def federation_version(self) -> JSON:
        """Server software and version; many deployments serve it on the client URL too."""
        return self.request("GET", "/_matrix/federation/v1/version", auth=False, read_timeout=10)

    def public_rooms(
        self, *, limit: int, since: str | None, search: str | None, auth: bool
    ) -> JSON:
        """One page of the room directory; a search term needs the POST form (with a filter)."""
        if search is None:
            params: dict[str, Any] = {"limit": limit}
            if since:
                params["since"] = since
            return self.request("GET", f"{API}/publicRooms", params=params, auth=auth)
        body: JSON = {"limit": limit, "filter": {"generic_search_term": search}}
        if since:
            body["since"] = since
        return self.request("POST", f"{API}/publicRooms", body=body, auth=auth)


#: The longest a rate limit is obeyed, in seconds: a server asking for more gets asked again then.
MAX_RETRY_AFTER = 3600.0


def _retry_after(resp: requests.Response, data: Any) -> float | None:
    """Seconds to wait: the body's `retry_after_ms`, else `Retry-After` (seconds or HTTP date)."""
    import math

    seconds: float | None = None
    if isinstance(data, dict):
        ms = data.get("retry_after_ms")
        if isinstance(ms, int | float) and not isinstance(ms, bool):
            seconds = float(ms) / 1000
    header = resp.headers.get("Retry-After", "").strip()
    if seconds is None and header:
        try:
            seconds = float(header)
        except ValueError:
            seconds = _seconds_until(header)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _seconds_until(http_date: str) -> float | None:
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


def _reason(exc: requests.exceptions.RequestException) -> str:
    """A short, token-free description of a connection failure."""
    text = str(exc)
    for needle, label in (
        ("Name or service not known", "DNS lookup failed"),
        ("nodename nor servname", "DNS lookup failed"),
        ("Temporary failure in name resolution", "DNS lookup failed"),
        ("Connection refused", "connection refused"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed by the server"),
    ):
        if needle in text:
            return label
    return type(exc).__name__


#: Longest server software string we pass on (it is untrusted text).
MAX_SOFTWARE = 80


def server_software(client: MatrixClient) -> str | None:
    """`Synapse 1.163.2` from `GET /_matrix/federation/v1/version`, or None when not served."""
    try:
        reply = client.federation_version()
    except PeekError:
        return None
    server = reply.get("server")
    if not isinstance(server, dict):
        return None
    parts = [server.get("name"), server.get("version")]
    text = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return text[:MAX_SOFTWARE] or None
