"""A hostile homeserver cannot exhaust memory, hold peek for ever or crash it with its replies.

Against a real server on loopback (tests/unit/hostilehs.py): an endless chunked body, a gzip
bomb, a body trickled a byte at a time (a read timeout restarts on every byte) and JSON nested
too deeply for the parser. Each is a failed request: retried like a network failure, and with
no retries left one line and exit 1.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import pytest

from peekcli.follow import strategies
from peekcli.matrix import http as client
from tests.unit.hostilehs import (
    HostileServer,
    endless_chunked,
    gzip_bomb,
    message,
    nested,
    reply_json,
    reply_raw,
    trickle,
)

INITIAL_SYNC = r"/_matrix/client/v3/rooms/[^/]+/initialSync"
EVENTS = "/_matrix/client/v3/events"
MESSAGES = r"/_matrix/client/v3/rooms/[^/]+/messages"


def limited_memory() -> None:
    """In the child: 1 GiB of address space, so an unbounded read fails instead of swapping."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run_peek(*args: str) -> tuple[subprocess.CompletedProcess[bytes], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "peekcli", *args],
        env=dict(os.environ),
        capture_output=True,
        timeout=120,
        preexec_fn=limited_memory,
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize(
    "reply", [endless_chunked, gzip_bomb(300_000_000)], ids=["endless", "bomb"]
)
def test_a_reply_larger_than_any_page_is_a_failed_request(
    hostile: HostileServer, reply: Any
) -> None:
    hostile.on("GET", INITIAL_SYNC, reply)
    done, took = run_peek("snapshot", hostile.room, "-s", hostile.url, "--max-retries", "0")
    assert done.returncode == 1, done.stderr.decode(errors="replace")[-2000:]
    assert done.stderr.decode() == f"peek: {hostile.url} sent a reply larger than 80 MiB\n"
    assert took < 30


def test_a_reply_as_large_as_a_full_page_is_still_read(hostile: HostileServer, peek: Any) -> None:
    # 1000 events at the spec's 64 KiB limit make a 62.5 MiB page; the same size in ten events
    body = "x" * 6_500_000
    events = [message(n, body) for n in range(1, 11)]
    page = {"room_id": hostile.room, "messages": {"chunk": events, "start": "s0", "end": "s1"}}
    hostile.on("GET", INITIAL_SYNC, reply_raw(200, json.dumps(page).encode()))  # encoded once
    result = peek(
        "snapshot", hostile.room, "-s", hostile.url, "--json", "--history", "10",
        "--grep", "^y",  # read and filtered, not printed: the read is what is tested
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""


@pytest.fixture
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds of a second or so instead of the real 15 s + 10 s margins, to keep the test fast."""
    monkeypatch.setattr(strategies, "LONG_POLL_MARGIN", 0.5)
    monkeypatch.setattr(client, "REPLY_MARGIN", 0.5)


def test_a_trickled_long_poll_ends_at_its_timeout_plus_a_margin(
    hostile: HostileServer, peek: Any, short_bounds: None
) -> None:
    hostile.on("GET", EVENTS, trickle(b'{"chunk": [], "end": "s2"}'))
    started = time.monotonic()
    result = peek(
        "watch", hostile.room, "-s", hostile.url, "--history", "0",
        "--timeout", "1000", "--max-retries", "0",
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.exit_code == 1, result.stderr
    assert f"peek: {hostile.url} took longer than 2 s to answer" in result.stderr
    assert took < 6


def test_a_trickled_page_ends_a_snapshot(
    hostile: HostileServer, peek: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "REPLY_MARGIN", -29.0)  # the 30 s read timeout, minus 29
    hostile.on("GET", INITIAL_SYNC, trickle(b'{"chunk": []}'))
    started = time.monotonic()
    result = peek("snapshot", hostile.room, "-s", hostile.url, "--max-retries", "0")
    assert result.exit_code == 1, result.stderr
    assert result.stderr == f"peek: {hostile.url} took longer than 1 s to answer\n"
    assert time.monotonic() - started < 6


# -- deeply nested JSON ----------------------------------------------------------------------


def test_a_deeply_nested_reply_is_retried_by_watch(hostile: HostileServer, peek: Any) -> None:
    replies = iter([reply_raw(200, nested(100_000))])
    page = {"chunk": [message(2)], "start": "s1", "end": "s2"}

    def events(h: Any, params: dict[str, str]) -> None:
        next(replies, reply_json(200, page))(h, params)

    hostile.on("GET", EVENTS, events)
    result = peek(
        "watch", hostile.room, "-s", hostile.url, "--json", "--history", "0", "--max-events", "1"
    )
    assert result.exit_code == 0, result.stderr
    assert '"$ev2"' in result.stdout
    assert "nested too deeply" in result.stderr


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["snapshot", "ROOM"], INITIAL_SYNC),
        (["export", "ROOM"], MESSAGES),
        (["info", "ROOM"], r"/_matrix/client/v3/rooms/[^/]+/state"),
        (["rooms", "-s", "URL"], "/_matrix/client/v3/publicRooms"),
        (["doctor", "-s", "URL"], "/_matrix/client/versions"),
    ],
)
def test_a_deeply_nested_reply_is_one_line_not_a_traceback(
    hostile: HostileServer, peek: Any, command: list[str], path: str
) -> None:
    hostile.on("GET", path, reply_raw(200, nested(100_000)))
    args = [hostile.room if a == "ROOM" else hostile.url if a == "URL" else a for a in command]
    if "ROOM" in command:
        args += ["-s", hostile.url]
    retries = ["--max-retries", "0"] if command[0] in ("snapshot", "export") else []
    result = peek(*args, *retries)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "nested too deeply" in result.stderr or command[0] == "doctor"
    assert "nested too deeply" in (result.stderr + result.stdout)
