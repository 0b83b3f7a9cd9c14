"""Find a server's client API URL from its name, the way the spec's client discovery does.

People know `example.org` (from `#room:example.org`), not `https://matrix-client.example.org`.
`https://HOST/.well-known/matrix/client` says where the client API is; the candidate is accepted
only when `GET {base}/_matrix/client/versions` answers like a homeserver. When the well-known is
absent, malformed or points at a dead URL, `https://NAME` is tried too, because many servers serve
the client API on their name directly. What was found is cached in the state file for a day, so a
watch restarted by cron does not do two extra round trips every time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from peekcli.errors import NetworkError, PeekError, UsageError
from peekcli.matrix.http import Http, RequestLog, Unreachable
from peekcli.matrix.ids import is_server_name, normalize_homeserver

if TYPE_CHECKING:
    from peekcli.state import StateStore

WELL_KNOWN = "/.well-known/matrix/client"
#: How long a discovered URL is trusted before it is looked up again.
CACHE_FOR = timedelta(hours=24)
#: Discovery is a one-off at start-up: a server that needs longer is as good as absent.
TIMEOUT = (5.0, 10.0)


def hostname(server_name: str) -> str:
    """The server name without its port: the spec looks the well-known up on the bare host."""
    if server_name.startswith("["):
        return server_name[: server_name.index("]") + 1]
    return server_name.partition(":")[0]


def discover(
    server_name: str,
    *,
    store: StateStore | None = None,
    log: RequestLog | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> str:
    """The client API URL of `server_name`; raises `NetworkError` (exit 1) when nothing answers."""
    if not is_server_name(server_name):
        raise UsageError(f"not a server name: {server_name!r} (expected host or host:port)")
    cached = store.known_homeserver(server_name) if store is not None else None
    if cached is not None:
        url, checked = cached
        if checked is not None and timedelta(0) <= now() - checked < CACHE_FOR:
            return url
    try:
        url = _lookup(server_name, log)
    except NetworkError:
        if cached is not None:  # better a URL that worked yesterday than no watch at all
            return cached[0]
        raise
    if store is not None:
        store.remember_homeserver(server_name, url)
    return url


def _lookup(server_name: str, log: RequestLog | None) -> str:
    session = Http(log=log)
    problems: list[str] = []
    candidates: list[str] = []
    well_known = f"https://{hostname(server_name)}{WELL_KNOWN}"
    found, problem = _well_known(session, well_known, log)
    if found is not None:
        candidates.append(found)
    elif problem is not None:
        problems.append(f"{well_known}: {problem}")
    fallback = f"https://{server_name}"
    if fallback not in candidates:
        candidates.append(fallback)
    for url in candidates:
        problem = _check_versions(session, url, log)
        if problem is None:
            return url
        problems.append(f"{url}: {problem}")
    raise NetworkError(
        f"found no homeserver for {server_name} ({'; '.join(problems)}); "
        "give its client API URL with --homeserver"
    )


def _get(session: Http, url: str, log: RequestLog | None) -> tuple[int, Any] | str:
    """(status, JSON or None) or a short reason why there was no answer."""
    try:
        reply = session.send(
            "GET",
            url,
            where=url,
            headers={"Accept": "application/json"},
            connect_timeout=TIMEOUT[0],
            read_timeout=TIMEOUT[1],
        )
    except Unreachable as exc:
        return exc.reason
    except NetworkError:
        return "did not answer in time"
    except UsageError:
        return "not a usable URL"
    return reply.status, reply.data


def _well_known(session: Http, url: str, log: RequestLog | None) -> tuple[str | None, str | None]:
    """(the advertised base URL, None), (None, what is wrong with it), or (None, None): absent."""
    got = _get(session, url, log)
    if isinstance(got, str):
        # No such host is the common "no well-known" case; the fallback reports it if it matters.
        return None, (got if got != "DNS lookup failed" else None)
    status, data = got
    if status == 404:
        return None, None
    if status != 200:
        return None, f"HTTP {status}"
    homeserver = data.get("m.homeserver") if isinstance(data, dict) else None
    base = homeserver.get("base_url") if isinstance(homeserver, dict) else None
    if not isinstance(base, str) or not base.strip():
        return None, "malformed (no m.homeserver.base_url)"
    try:
        url = normalize_homeserver(base)
    except PeekError:
        return None, "malformed (m.homeserver.base_url is not an http(s) URL)"
    if not _secure(url):
        # Tokens and passwords would cross the network in clear on a URL nobody typed: a user
        # who means it gives that URL with --homeserver.
        return None, f"refused: m.homeserver.base_url {url} is plain http"
    return url, None


def _secure(url: str) -> bool:
    """https, or http on the loopback interface (a local homeserver or tunnel)."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_versions(session: Http, base: str, log: RequestLog | None) -> str | None:
    """None when `base` answers `/versions` like a homeserver, else what went wrong."""
    got = _get(session, base + "/_matrix/client/versions", log)
    if isinstance(got, str):
        return got
    status, data = got
    if status != 200:
        return f"/versions answered HTTP {status}"
    if not isinstance(data, dict) or not isinstance(data.get("versions"), list):
        return "/versions answered with no version list (not a Matrix homeserver)"
    return None
