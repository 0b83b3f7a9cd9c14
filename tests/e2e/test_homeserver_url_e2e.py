"""Homeserver URLs a newcomer gets wrong, against the real Synapse (plain http on loopback)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.peekproc import run_peek
from tests.homeserver import Homeserver


@pytest.mark.parametrize("command", ["snapshot", "watch", "info"])
def test_a_bare_host_port_on_plain_http_suggests_http_at_once(
    synapse: Homeserver, world_room: str, tmp_path: Path, command: str
) -> None:
    bare = urlsplit(synapse.base_url).netloc  # 127.0.0.1:PORT → https://127.0.0.1:PORT
    began = time.monotonic()
    result = run_peek(command, world_room, "-s", bare, state_file=tmp_path / "s.json")
    took = time.monotonic() - began
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"peek: https://{bare} does not speak https: {bare} answers plain http; "
        f"use --homeserver {synapse.base_url}"
    )
    assert took < 6, f"took {took:.1f} s"  # was 10.5 s (a connect timeout), then retries


def test_a_client_api_path_as_the_url_names_the_base_url(
    synapse: Homeserver, world_room: str, tmp_path: Path
) -> None:
    wrong = f"{synapse.base_url}/_matrix/client"
    result = run_peek("snapshot", world_room, "-s", wrong, state_file=tmp_path / "s.json")
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"peek: no Matrix client API at {wrong} (/register: M_UNRECOGNIZED)")
    assert line.endswith(f"without /_matrix/…: {synapse.base_url}")
