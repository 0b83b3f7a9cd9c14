"""The environment's proxy settings (HTTP_PROXY, NO_PROXY …) apply to every request peek sends,
although peek reads them once per server rather than twice per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from peekcli.errors import NetworkError
from peekcli.matrix.http import Http


class _Proxy(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = json.dumps({"versions": ["v1.11"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    _Proxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_requests_go_through_the_proxy_the_environment_names(
    proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http = Http()
    for _ in range(2):  # the second request uses the settings read for the first
        reply = http.send("GET", "http://hs.invalid/_matrix/client/versions", where="hs.invalid")
        assert reply.status == 200 and reply.data == {"versions": ["v1.11"]}
    assert _Proxy.seen == ["http://hs.invalid/_matrix/client/versions"] * 2


def test_no_proxy_is_honoured(proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "hs.invalid")
    with pytest.raises(NetworkError):
        Http().send("GET", "http://hs.invalid/_matrix/client/versions", where="hs.invalid")
    assert _Proxy.seen == []
