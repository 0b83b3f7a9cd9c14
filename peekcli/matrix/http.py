"""HTTP for everything peek sends: the only module that imports requests.

One keep-alive session per client, connect and read timeouts, a request log that never sees a
token (tokens travel in a header; the log gets the URL without its query), and transport
failures turned into `NetworkError` with a short reason. What a reply *means* (Matrix errcodes,
OAuth errors, a discovery document) is the caller's: `matrix/client.py`, `matrix/oauth.py`,
`matrix/discovery.py`.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import json as jsonlib
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from peekcli import __version__
from peekcli.errors import NetworkError, UsageError

CONNECT_TIMEOUT = 10.0
#: Loopback answers in microseconds: a connection (TCP and TLS) that takes longer is not coming,
#: typically a plain http server waiting for the rest of what it takes for a request.
LOOPBACK_CONNECT_TIMEOUT = 2.0
#: The longest a rate limit is obeyed, in seconds: a server asking for more gets asked again then.
MAX_RETRY_AFTER = 3600.0

RequestLog = Callable[[str, str, int | None, float], None]

#: The largest reply body peek reads, decoded (gzip included): a /messages or /events page of
#: 1000 events at the spec's 64 KiB limit each is 62.5 MiB; the rest is room for the envelope.
MAX_REPLY_BYTES = 80 * 1024 * 1024
#: One exchange, from connecting to the last byte, may take its read timeout (for /events: the
#: long-poll's own timeout + its margin) plus this: a read timeout alone restarts on every byte
#: a server trickles.
REPLY_MARGIN = 10.0
_CHUNK = 64 * 1024
#: A download's body is read in chunks of this size, and each must come within the exchange's
#: time (read timeout + REPLY_MARGIN): a file may take as long as it keeps coming, a server
#: trickling it slower than that is cut off.
DOWNLOAD_CHUNK = 256 * 1024
#: Redirects one download follows (by hand: the token goes only to the homeserver).
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


# -- bounded exchanges --------------------------------------------------------------------------
#
# One watchdog thread shuts an exchange's socket down when its time is up, whatever phase
# it is in (connecting, headers, body), so a trickling server cannot hold peek; the body is read
# in chunks up to MAX_REPLY_BYTES, decoded, so neither an endless body nor a gzip bomb can fill
# memory. Both end as a NetworkError: a failed request, retried like any other.


class _Watch:
    """The sockets one exchange uses, shut down when its deadline passes.

    `extend` moves the deadline (a download re-arms it at each chunk): the watchdog, when it
    comes round early, looks again at the new deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = min(seconds, 86400.0)
        self.deadline = time.monotonic() + self.seconds
        self.expired = False
        self.stopped = False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        _watchdog.add(self)

    def extend(self) -> None:
        """The full time again from now (a float store: no lock needed)."""
        self.deadline = time.monotonic() + self.seconds

    def stop(self) -> None:
        """Before the connection goes back to the pool: an expiry after this touches nothing."""
        with self.lock:
            self.stopped = True
            self.sockets.clear()

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> float | None:
        """The watchdog's call at the deadline it knew: the new deadline when it was extended."""
        with self.lock:
            if self.stopped:
                return None
            if self.deadline > time.monotonic():
                return self.deadline
            self.expired = True
            for sock in self.sockets:
                _shut(sock)
            return None


class _Watchdog:
    """One thread for every exchange of the process, woken at the earliest deadline.

    A timer thread per exchange would cost a thread start for every request: with a thousand
    rooms long-polling, a good share of what an idle reply costs. Stopped exchanges stay in the
    heap until their deadline comes round (finding them early would cost more than it saves).
    """

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _Watch]] = []
        self.cond = threading.Condition()
        self.count = itertools.count()
        self.thread: threading.Thread | None = None

    def add(self, watch: _Watch, deadline: float | None = None) -> None:
        when = watch.deadline if deadline is None else deadline
        with self.cond:
            earliest = self.heap[0][0] if self.heap else math.inf
            heapq.heappush(self.heap, (when, next(self.count), watch))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="peek watchdog", daemon=True)
                self.thread.start()
            elif when < earliest:
                self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                now = time.monotonic()
                due: list[_Watch] = []
                while self.heap and self.heap[0][0] <= now:
                    due.append(heapq.heappop(self.heap)[2])
                if not due:
                    self.cond.wait(self.heap[0][0] - now if self.heap else None)
                    continue
            for watch in due:
                later = watch._expire()
                if later is not None:
                    self.add(watch, later)


_watchdog = _Watchdog()


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: it wakes a recv blocked in another
    # thread without touching the TLS object that thread is using.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current = threading.local()


def _watch(sock: socket.socket | None) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)


class _WatchedPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _watch(getattr(conn, "sock", None))  # a kept-alive connection: already connected
        return conn


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _watch(getattr(conn, "sock", None))
        return conn


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedPool,
            "https": _WatchedHTTPSPool,
        }


def new_session(pool_size: int = 10) -> requests.Session:
    """A session whose exchanges `Http.send` can time out as a whole."""
    session = requests.Session()
    adapter = _WatchedAdapter(pool_connections=2, pool_maxsize=max(pool_size, 10))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def capped_body(resp: requests.Response, where: str, max_bytes: int = MAX_REPLY_BYTES) -> bytes:
    """A streamed response's body, decoded, at most `max_bytes` (else a NetworkError)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise NetworkError(f"{where} sent a reply larger than {max_bytes // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The JSON in `body`, or None when it is not JSON; nesting too deep for the parser is a
    `NetworkError` (an unreadable reply), never a RecursionError."""
    try:
        return jsonlib.loads(body)
    except RecursionError:
        raise NetworkError("the reply is nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError):
        return None


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
        self.session = session if session is not None else new_session()
        self.session.headers["User-Agent"] = f"peek/{__version__}"
        self.log = log
        #: Per origin: the proxies, CA bundle and stream setting `session.request` would use.
        self._settings: dict[str, dict[str, Any]] = {}

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
        """One exchange; no answer → `Unreachable` / `NetworkError`, a bad URL → `UsageError`.

        The whole exchange lasts at most `read_timeout` + REPLY_MARGIN and its body is read up
        to MAX_REPLY_BYTES: past either, or JSON nested too deeply, it is a `NetworkError`."""
        connect = connect_timeout or _connect_timeout(url)
        watch = _Watch(read_timeout + REPLY_MARGIN)
        _current.watch = watch
        watch.start()
        resp: requests.Response | None = None
        try:
            prepared, settings = self._prepared(
                url, headers or {}, method=method, params=params, json=json, data=form
            )
            resp = self.session.send(
                prepared,
                **settings,
                timeout=(connect, read_timeout),
                allow_redirects=allow_redirects,
            )
            content = capped_body(resp, where)
            if watch.expired:
                raise requests.exceptions.ConnectionError("the exchange ran out of time")
        except NetworkError:
            self._log(method, url, None)
            raise
        except (requests.exceptions.RequestException, OSError) as exc:
            if not watch.expired or isinstance(
                exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
            ):
                return self._failed(method, url, where, exc)
            self._log(method, url, None)
            raise NetworkError(
                f"{where} took longer than {read_timeout + REPLY_MARGIN:g} s to answer"
            ) from None
        finally:
            watch.stop()
            _current.watch = None
            if resp is not None:
                resp.close()
        self._log(method, url, resp.status_code, resp.elapsed.total_seconds())
        try:
            data = parse_json(content)
        except NetworkError as exc:
            raise NetworkError(f"{where} sent an unreadable reply ({exc.message})") from None
        return Reply(resp.status_code, data, resp.reason or "", resp.headers, not content)

    def download(
        self,
        url: str,
        *,
        where: str,
        token: str | None = None,
        read_timeout: float = 60.0,
        max_redirects: int = MAX_REDIRECTS,
    ) -> Download:
        """GET `url` for a body read in chunks (a media file); no answer → `NetworkError`.

        Redirects are followed here, by hand: the token (`Authorization: Bearer`) goes only to
        `url`'s own origin, never to another host a redirect names. A redirect off http(s), or
        more than `max_redirects`, is a `NetworkError`; any other status is the caller's (its
        body through `Download.reply`). Bounded like `send`: the headers within `read_timeout`
        + REPLY_MARGIN, then each DOWNLOAD_CHUNK of the body within that time again."""
        hop = url
        for _ in range(max_redirects + 1):
            headers = (
                {"Authorization": f"Bearer {token}"} if token and same_origin(hop, url) else {}
            )
            resp, watch = self._open(hop, where, headers, read_timeout)
            if resp.status_code not in _REDIRECTS:
                return Download(resp, watch, where)
            watch.stop()
            resp.close()
            location = resp.headers.get("Location")
            if not location:
                raise NetworkError(f"{where} sent a redirect without a Location")
            hop = urljoin(hop, location)
            if urlsplit(hop).scheme not in ("http", "https"):
                raise NetworkError(f"{where} redirected a download off the web")
        raise NetworkError(f"{where} redirected a download more than {max_redirects} times")

    def _open(
        self, url: str, where: str, headers: dict[str, str], read_timeout: float
    ) -> tuple[requests.Response, _Watch]:
        """One streamed GET up to its headers, its watch still running for the body."""
        watch = _Watch(read_timeout + REPLY_MARGIN)
        _current.watch = watch
        watch.start()
        try:
            prepared, settings = self._prepared(url, headers)
            resp = self.session.send(
                prepared,
                **settings,
                timeout=(_connect_timeout(url), read_timeout),
                allow_redirects=False,
            )
        except (requests.exceptions.RequestException, OSError) as exc:
            watch.stop()
            if not watch.expired or isinstance(
                exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
            ):
                self._failed("GET", url, where, exc)
            self._log("GET", url, None)
            raise NetworkError(f"{where} took longer than {watch.seconds:g} s to answer") from None
        finally:
            _current.watch = None
        self._log("GET", url, resp.status_code, resp.elapsed.total_seconds())
        return resp, watch

    def _prepared(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
    ) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        """A request as `session.request` sends it (the session's headers and cookies, the
        environment's proxies and CA bundle, streamed), the environment read once per origin
        instead of twice per request: a download is one of hundreds, a long-poll reply one of
        thousands with many rooms, and that reading cost about a fifth of requests' CPU for each.
        """
        merged = requests.structures.CaseInsensitiveDict(self.session.headers)
        merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=method,
            url=url,
            headers=merged,
            params=params,
            json=json,
            data=data,
            cookies=self.session.cookies,
            hooks=self.session.hooks,
        )
        parts = urlsplit(prepared.url or url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._settings:
            self._settings[origin] = dict(
                self.session.merge_environment_settings(origin, {}, True, None, None)
            )
        return prepared, self._settings[origin]

    def _failed(self, method: str, url: str, where: str, exc: BaseException) -> NoReturn:
        try:
            raise exc
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
        except OSError as exc2:
            self._log(method, url, None)
            why = type(exc2).__name__
            raise Unreachable(f"cannot reach {where} ({why})", why) from None

    def _log(self, method: str, url: str, status: int | None, elapsed: float = 0.0) -> None:
        if self.log is not None:
            # URLs never carry the token (it travels in a header), so they are safe to log.
            self.log(method, url.split("?", 1)[0], status, elapsed)


class Download:
    """A reply whose body the caller reads in chunks, on a kept-alive connection of the
    session: `close` gives the connection back, or drops it when the body was not read whole."""

    def __init__(self, resp: requests.Response, watch: _Watch, where: str) -> None:
        self.status: int = resp.status_code
        self.headers: Mapping[str, str] = resp.headers
        self._resp = resp
        self._watch = watch
        self._where = where

    def chunks(self) -> Iterator[bytes]:
        """The body, decoded, in chunks of at most DOWNLOAD_CHUNK; each must come within the
        exchange's time, and a connection that breaks off (or is cut off) is a `NetworkError`,
        never a short body taken for the whole."""
        try:
            for chunk in self._resp.iter_content(DOWNLOAD_CHUNK):
                self._watch.extend()
                yield chunk
                self._watch.extend()  # the caller's time with the chunk is not the server's
        except (requests.exceptions.RequestException, OSError) as exc:
            raise self._broke(exc) from None
        if self._watch.expired:
            raise self._broke(None)

    def reply(self) -> Reply:
        """The body read whole (capped: an error reply is small) and parsed like `send`'s."""
        try:
            content = capped_body(self._resp, self._where)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise self._broke(exc) from None
        if self._watch.expired:
            raise self._broke(None)
        resp = self._resp
        return Reply(
            resp.status_code, parse_json(content), resp.reason or "", resp.headers, not content
        )

    def close(self) -> None:
        self._watch.stop()  # first: an expiry must never shut a socket back in the pool
        self._resp.close()

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _broke(self, exc: BaseException | None) -> NetworkError:
        if self._watch.expired:
            return NetworkError(
                f"{self._where} sent the download too slowly "
                f"(under {DOWNLOAD_CHUNK // 1024} KiB in {self._watch.seconds:g} s)"
            )
        return NetworkError(f"the download from {self._where} broke off ({type(exc).__name__})")


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port equal (default ports filled in): where a token may go."""
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"http": 80, "https": 443}

    def port(p: Any) -> int | None:
        try:
            return p.port or default.get(p.scheme)
        except ValueError:
            return None

    return (pa.scheme, (pa.hostname or "").lower(), port(pa)) == (
        pb.scheme,
        (pb.hostname or "").lower(),
        port(pb),
    )


def pooled_session(size: int) -> requests.Session:
    """One HTTP session for the rooms of one homeserver, its pool sized for them all: each
    room's long-poll keeps its own connection alive instead of opening a new one each time."""
    return new_session(size)


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
