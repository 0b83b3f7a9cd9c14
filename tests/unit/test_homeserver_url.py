"""A homeserver URL that is wrong in a way a newcomer makes: peek says what is wrong at once.

- `-s 127.0.0.1:18501` becomes https://…; on a port that speaks plain http peek used to wait
  10.5 s and say "did not answer in time": now it says at once to use http://.
- `-s http://host/_matrix/client` (a client API path, not the base URL) used to end with "allows
  no guests (M_UNRECOGNIZED)", exit 7: a 404 on the registration endpoint means a wrong URL or
  a server that does not offer it, and peek says which.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from tests.unit.mockhs import ROOM

PLAIN = "127.0.0.1:18501"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def speaks_plain_http(rsps: responses.RequestsMock, failure: Exception) -> None:
    """https on PLAIN fails as `failure`; plain http there answers like a homeserver."""
    for method in (responses.GET, responses.POST):
        rsps.add(method, re.compile(rf"https://{re.escape(PLAIN)}/.*"), body=failure)
    rsps.add(responses.GET, f"http://{PLAIN}/_matrix/client/versions", json={"versions": ["v1.11"]})


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version number"),
        requests.exceptions.ConnectTimeout("timed out during the TLS handshake"),
    ],
    ids=["tls-error", "handshake-timeout"],
)
@pytest.mark.parametrize("command", ["snapshot", "watch", "info", "export"])
def test_https_on_a_plain_http_port_suggests_http_at_once(
    rsps: responses.RequestsMock, peek: Any, command: str, failure: Exception
) -> None:
    speaks_plain_http(rsps, failure)
    began = time.monotonic()
    result = peek(command, ROOM, "-s", PLAIN)
    assert time.monotonic() - began < 2, "answered after retries"
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        f"peek: https://{PLAIN} does not speak https: {PLAIN} answers plain http; "
        f"use --homeserver http://{PLAIN}"
    )
    plain = [c for c in rsps.calls if c.request.url.startswith("http://")]
    assert all("Authorization" not in c.request.headers for c in plain)  # no token over http


@pytest.mark.parametrize(
    "plain",
    [
        {"body": requests.exceptions.ConnectionError("Connection refused")},
        # nginx on its https port, asked plain http: a 400 page, not a Matrix server.
        {"body": "<html>400 The plain HTTP request was sent to HTTPS port</html>", "status": 400},
    ],
    ids=["refused", "https-proxy-page"],
)
def test_a_real_tls_failure_stays_a_network_error(
    rsps: responses.RequestsMock, peek: Any, plain: dict[str, Any]
) -> None:
    """An https port that is no Matrix server over http: the TLS failure is reported as such."""
    failure = requests.exceptions.SSLError("certificate verify failed")
    for method in (responses.GET, responses.POST):
        rsps.add(method, re.compile(r"https://tls\.test/.*"), body=failure)
    rsps.add(responses.GET, "http://tls.test/_matrix/client/versions", **plain)
    result = peek("snapshot", ROOM, "-s", "tls.test", "--max-retries", "0")
    assert result.exit_code == 1
    assert "use --homeserver http://" not in result.stderr


@pytest.mark.parametrize("path", ["/_matrix/client", "/_matrix/client/v3", "/matrix"])
def test_a_client_api_path_instead_of_the_base_url_is_named(
    rsps: responses.RequestsMock, peek: Any, path: str
) -> None:
    base = f"https://hs.test{path}"
    unrecognized = {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
    rsps.add(
        responses.POST, re.compile(re.escape(base) + r"/_matrix/.*"), json=unrecognized, status=404
    )
    rsps.add(
        responses.GET, re.compile(re.escape(base) + r"/_matrix/.*"), json=unrecognized, status=404
    )
    result = peek("snapshot", ROOM, "-s", base)
    assert (result.exit_code, result.stdout) == (2, "")
    line = result.stderr.splitlines()[-1]
    assert line.startswith(f"peek: no Matrix client API at {base} "), line
    assert "allows no guests" not in line
    if "/_matrix" in path:
        assert line.endswith("give the homeserver's base URL, without /_matrix/…: https://hs.test")


def test_a_server_without_guest_registration_says_so(
    rsps: responses.RequestsMock, peek: Any
) -> None:
    """/versions answers: the URL is right, the server just does not offer guest registration."""
    unrecognized = {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
    rsps.add(
        responses.POST, "https://hs.test/_matrix/client/v3/register", json=unrecognized, status=404
    )
    rsps.add(responses.GET, "https://hs.test/_matrix/client/versions", json={"versions": ["v1.11"]})
    result = peek("snapshot", ROOM, "-s", "https://hs.test")
    assert result.exit_code == 7
    assert "guest registration" in result.stderr and "log in" in result.stderr
