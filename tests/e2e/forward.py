"""Relaying one request of a test's HTTP front to Synapse, for the fronts the e2e tests put in
front of the fixture (an https front, a gate that holds /messages)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import requests


def forward(handler: BaseHTTPRequestHandler, upstream: str, timeout: float) -> None:
    """Send `handler`'s request on to `upstream` (Host left to requests) and relay the reply."""
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else None
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
    resp = requests.request(
        handler.command, upstream + handler.path, data=body, headers=headers, timeout=timeout
    )
    handler.send_response(resp.status_code)
    handler.send_header("Content-Type", resp.headers.get("Content-Type", "text/plain"))
    handler.send_header("Content-Length", str(len(resp.content)))
    handler.end_headers()
    handler.wfile.write(resp.content)
