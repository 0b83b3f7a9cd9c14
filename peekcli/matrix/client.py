"""Matrix client-server endpoints: bearer auth, and error bodies → typed errors.

Every reply is untrusted: anything that is not the JSON object we asked for becomes a `PeekError`
subclass, so callers never see a transport exception or a `KeyError` on a malformed body. The
transport itself (session, timeouts, request log) is `matrix/http.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

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
from peekcli.matrix.http import Http, NoAnswer, Reply, RequestLog
from peekcli.tokens import is_valid_token

API = "/_matrix/client/v3"
#: The one plain-http request asked after https failed (see `MatrixClient._plain_http_check`).
PLAIN_CHECK_TIMEOUT = 3.0
#: Seconds added to a long-poll's own timeout before the HTTP read gives up on it.
LONG_POLL_MARGIN = 15.0

JSON = dict[str, Any]


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
        http: Http | None = None,
        log: RequestLog | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        #: Shared with another client of the same server (a second token, one connection pool).
        self.http = http or Http(log=log)
        self.log = log
        #: Set by a stored login (peekcli.auth): called when an authenticated request is refused
        #: with 401; True means a renewed token is in place and the request is sent once more.
        self.on_token_rejected: Callable[[], bool] | None = None
        #: Whether the server ever answered (HTTP): a failure before that may be a wrong URL.
        self._answered = False

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
        headers: dict[str, str] = {}
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
            reply = self.http.send(
                method,
                url,
                where=self.base_url,
                params=params,
                json=body,
                headers=headers,
                read_timeout=read_timeout,
            )
        except NoAnswer:
            if not self._answered:  # first contact: perhaps https to a plain http port
                self._plain_http_check(url)
            raise
        self._answered = True
        return self._parse(reply)

    def _plain_http_check(self, url: str) -> None:
        """After https failed on first contact: if the port is a Matrix server speaking plain
        http, say so at once.

        `-s 127.0.0.1:8008` means https://…, and a plain http server there either answers the
        TLS hello with garbage or waits for the rest of a request (Synapse: a timeout); both
        used to look like an outage (retried, "did not answer in time"). One request without
        credentials to `http://same-host:port/_matrix/client/versions` tells; only a Matrix
        answer counts (an https proxy answers plain http on its port with a 400 page).
        """
        parts = urlsplit(url)
        if parts.scheme != "https":
            return
        try:
            reply = self.http.send(
                "GET",
                f"http://{parts.netloc}/_matrix/client/versions",
                where=self.base_url,
                connect_timeout=PLAIN_CHECK_TIMEOUT,
                read_timeout=PLAIN_CHECK_TIMEOUT,
                allow_redirects=False,
            )
        except (NetworkError, UsageError):
            return
        data = reply.data if reply.status == 200 else None
        versions = data.get("versions") if isinstance(data, dict) else None
        if not isinstance(versions, list):
            return
        base = urlsplit(self.base_url)
        plain = urlunsplit(("http", base.netloc, base.path, "", ""))
        raise UsageError(
            f"{self.base_url} does not speak https: {base.netloc} answers plain http; "
            f"use --homeserver {plain}"
        )

    def parse(self, reply: Reply) -> Any:
        """A reply's JSON, or the typed error it stands for (used by streamed downloads too)."""
        return self._parse(reply)

    def _parse(self, reply: Reply) -> Any:
        status, data = reply.status, reply.data
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
        what = f"{errcode}: {error}" if errcode and error else (errcode or error or reply.phrase)
        message = f"{self.base_url} answered HTTP {status} ({what})"
        if status == 429 or errcode == "M_LIMIT_EXCEEDED":
            raise RateLimited(message, reply.retry_after())
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
        with _bad_position():  # the spec's only 400 here: a bad `from`
            return self.request(
                "GET",
                f"{API}/events",
                params={
                    "room_id": room_id,
                    "from": from_token,
                    "timeout": timeout_ms,
                    "limit": limit,
                },
                read_timeout=read_timeout or timeout_ms / 1000 + LONG_POLL_MARGIN,
            )

    def messages(
        self,
        room_id: str,
        from_token: str | None,
        direction: str,
        limit: int,
        *,
        to: str | None = None,
    ) -> JSON:
        """A page of the timeline; with a token (`from`, `to`), a 400 means it was refused."""
        params: dict[str, Any] = {"dir": direction, "limit": limit}
        if from_token:
            params["from"] = from_token
        if to:
            params["to"] = to
        path = f"{API}/rooms/{q(room_id)}/messages"
        if not from_token and not to:
            return self.request("GET", path, params=params)
        with _bad_position():
            return self.request("GET", path, params=params)

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


@contextlib.contextmanager
def _bad_position() -> Iterator[None]:
    """A 400 to a request carrying a stream token is that token refused: `InvalidTokenError`."""
    try:
        yield
    except MatrixError as exc:
        if exc.status == 400 and not isinstance(exc, InvalidTokenError):
            raise InvalidTokenError(exc.message, status=400, errcode=exc.errcode) from None
        raise


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
