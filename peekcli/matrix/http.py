"""HTTP for everything peek sends: the only module that imports requests.

One keep-alive session per client, connect and read timeouts, a request log that never sees a
token (tokens travel in a header; the log gets the URL without its query), and transport
failures turned into `NetworkError` with a short reason. What a reply *means* (Matrix errcodes,
OAuth errors, a discovery document) is the caller's: `matrix/client.py`, `matrix/oauth.py`,
`matrix/discovery.py`.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters

from peekcli import __version__
from peekcli.errors import NetworkError, UsageError

CONNECT_TIMEOUT = 10.0
#: Loopback answers in microseconds: a connection (TCP and TLS) that takes longer is not coming,
#: typically a plain http server waiting for the rest of what it takes for a request.
LOOPBACK_CONNECT_TIMEOUT = 2.0
#: The longest a rate limit is obeyed, in seconds: a server asking for more gets asked again then.
MAX_RETRY_AFTER = 3600.0

RequestLog = Callable[[str, str, int | None, float], None]


class NoAnswer(NetworkError):
    """A timeout, or a TLS handshake that failed: perhaps https sent to a plain http port."""


class Unreachable(NetworkError):
    """No answer at all; `reason` is short and token-free ("connection refused")."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Reply:
    """An HTTP answer: its status, its body parsed as JSON (None when it is not JSON)."""

    status: int
    data: Any
    #: The HTTP reason phrase ("Bad Gateway"), for messages when the body says nothing.
    phrase: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    empty: bool = False

    def retry_after(self) -> float | None:
        """Seconds to wait: the body's `retry_after_ms`, else `Retry-After` (seconds or date)."""
        seconds: float | None = None
        if isinstance(self.data, dict):
            ms = self.data.get("retry_after_ms")
            if isinstance(ms, int | float) and not isinstance(ms, bool):
                seconds = float(ms) / 1000
        header = (self.headers.get("Retry-After") or "").strip()
        if seconds is None and header:
            try:
                seconds = float(header)
            except ValueError:
                seconds = _seconds_until(header)
        if seconds is None or math.isnan(seconds):
            return None
        return min(max(0.0, seconds), MAX_RETRY_AFTER)


class Http:
    """Sends requests over one session; `where` names the server in error messages."""

    def __init__(
        self, *, log: RequestLog | None = None, session: requests.Session | None = None
    ) -> None:
        self.session = session if session is not None else requests.Session()
        self.session.headers["User-Agent"] = f"peek/{__version__}"
        self.log = log

    def send(
        self,
        method: str,
        url: str,
        *,
        where: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float = 30.0,
        connect_timeout: float | None = None,
        allow_redirects: bool = True,
    ) -> Reply:
        """One exchange; no answer → `Unreachable` / `NetworkError`, a bad URL → `UsageError`."""
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=json,
                data=form,
                headers=dict(headers or {}),
                timeout=(connect_timeout or _connect_timeout(url), read_timeout),
                allow_redirects=allow_redirects,
            )
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise UsageError(f"invalid homeserver URL {where!r}: {exc}") from None
        except requests.exceptions.SSLError:
            self._log(method, url, None)
            raise NoAnswer(f"cannot reach {where} (TLS failed)") from None
        except requests.exceptions.Timeout:
            self._log(method, url, None)
            raise NoAnswer(f"{where} did not answer in time") from None
        except requests.exceptions.RequestException as exc:
            self._log(method, url, None)
            why = reason(exc)
            raise Unreachable(f"cannot reach {where} ({why})", why) from None
        self._log(method, url, resp.status_code, resp.elapsed.total_seconds())
        return reply_of(resp)

    def _log(self, method: str, url: str, status: int | None, elapsed: float = 0.0) -> None:
        if self.log is not None:
            # URLs never carry the token (it travels in a header), so they are safe to log.
            self.log(method, url.split("?", 1)[0], status, elapsed)


def reply_of(resp: requests.Response) -> Reply:
    """A `Reply` from a response of this transport's session (also a streamed download's)."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    return Reply(resp.status_code, data, resp.reason or "", resp.headers, not resp.content)


def pooled_session(size: int) -> requests.Session:
    """One HTTP session for the rooms of one homeserver, its pool sized for them all: each
    room's long-poll keeps its own connection alive instead of opening a new one each time."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(size, 10))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _connect_timeout(url: str) -> float:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return LOOPBACK_CONNECT_TIMEOUT
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return LOOPBACK_CONNECT_TIMEOUT if loopback else CONNECT_TIMEOUT


def reason(exc: requests.exceptions.RequestException) -> str:
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
