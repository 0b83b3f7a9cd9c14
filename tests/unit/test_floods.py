"""A server that repeats itself gets neither a flood of requests nor a flood of duplicates.

`/events` or `/messages` answering the same events again (with the same `end`, or a new one),
a 429 asking for no wait at all (negative, or a date in the past), pages that repeat under a new
`end`: each once made peek ask ~20 times a second, print the same events again and again, or
walk for ever. And a one-shot run asked to wait an hour gives up, saying why, instead of sleeping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from peekcli import retry
from tests.unit.conftest import lines
from tests.unit.hostilehs import Handler, HostileServer, message, reply_json

EVENTS = "/_matrix/client/v3/events"
MESSAGES = r"/_matrix/client/v3/rooms/[^/]+/messages"


@dataclass
class Waits:
    slept: list[float] = field(default_factory=list)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    """Every wait of the loop recorded instead of waited; jitter draws its minimum."""
    w = Waits()
    monkeypatch.setattr(retry, "pause", w.slept.append)
    monkeypatch.setattr(retry, "jitter", lambda lo, hi: lo)
    return w


def script(*replies: Callable[[Handler, dict[str, str]], None]) -> Any:
    """Answer with `replies` in turn, then keep answering with the last one."""
    queue = list(replies)

    def run(h: Handler, params: dict[str, str]) -> None:
        (queue.pop(0) if len(queue) > 1 else queue[0])(h, params)

    return run


def same_page(*events: dict[str, Any], end: str | None = None) -> Any:
    """The same events, with `end` equal to the `from` asked (or a fixed one)."""

    def run(h: Handler, params: dict[str, str]) -> None:
        page = {"chunk": list(events), "start": params.get("from"), "end": end or params["from"]}
        reply_json(200, page)(h, params)

    return run


def ids(result: Any) -> list[str]:
    return [e["event_id"] for e in lines(result)]


def test_events_repeated_with_the_same_token_print_once_and_back_off(
    hostile: HostileServer, peek: Any, waits: Waits
) -> None:
    again = same_page(message(1))
    then = reply_json(200, {"chunk": [message(2)], "start": "s1", "end": "s2"})
    hostile.on("GET", EVENTS, script(again, again, again, again, again, then))
    result = peek(
        "watch", hostile.room, "-s", hostile.url, "--json", "--history", "0", "--max-events", "2"
    )
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev1", "$ev2"]
    assert waits.slept == [1.0, 2.0, 4.0, 8.0]  # one wait per repeat, growing
    assert len(hostile.calls("/events")) == 6


def test_messages_polling_repeated_with_the_same_token_prints_once(
    hostile: HostileServer, peek: Any, waits: Waits
) -> None:
    hostile.on("GET", EVENTS, reply_json(404, {"errcode": "M_UNRECOGNIZED"}))
    forward = same_page(message(1))
    then = reply_json(200, {"chunk": [message(2)], "start": "s1", "end": "s2"})
    history = reply_json(200, {"chunk": [], "start": "s1", "end": "s0"})

    def messages(h: Handler, params: dict[str, str]) -> None:
        (history if params.get("dir") == "b" else flow)(h, params)

    flow = script(forward, forward, forward, then)
    hostile.on("GET", MESSAGES, messages)
    result = peek(
        "watch", hostile.room, "-s", hostile.url, "--json", "--history", "0",
        "--max-events", "2", "--stream", "messages",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev1", "$ev2"]
    assert [w for w in waits.slept if w >= 1.0][:2] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("fault", "headers"),
    [
        ({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": -5000}, {}),
        ({"errcode": "M_LIMIT_EXCEEDED"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        ({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 0}, {}),
    ],
    ids=["negative", "date-in-the-past", "zero"],
)
def test_a_rate_limit_asking_for_no_wait_still_waits(
    hostile: HostileServer, peek: Any, waits: Waits, fault: Any, headers: dict[str, str]
) -> None:
    limited = reply_json(429, fault, headers)
    ok = reply_json(200, {"chunk": [message(2)], "start": "s1", "end": "s2"})
    hostile.on("GET", EVENTS, script(limited, limited, ok))
    result = peek(
        "watch", hostile.room, "-s", hostile.url, "--json", "--history", "0", "--max-events", "1"
    )
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev2"]
    assert len(waits.slept) == 2 and min(waits.slept) >= retry.MIN_DELAY


def endless_pages(limit: int = 60) -> Any:
    """The same event under a new `end` each time (empty after `limit` pages, to end a peek
    without the fix)."""
    count = 0

    def run(h: Handler, params: dict[str, str]) -> None:
        nonlocal count
        count += 1
        chunk = [message(1)] if count <= limit else []
        reply_json(200, {"chunk": chunk, "start": params.get("from"), "end": f"n{count}"})(
            h, params
        )

    return run


def test_a_snapshot_stops_when_pages_bring_nothing_new(
    hostile: HostileServer, peek: Any, waits: Waits
) -> None:
    hostile.on("GET", EVENTS, endless_pages())
    result = peek("snapshot", hostile.room, "-s", hostile.url, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev1"]
    assert len(hostile.calls("/events")) == 2


def test_an_export_stops_when_pages_bring_nothing_new(hostile: HostileServer, peek: Any) -> None:
    hostile.on("GET", MESSAGES, endless_pages())
    result = peek("export", hostile.room, "-s", hostile.url)
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev1"]
    assert len(hostile.calls("/messages")) == 2
    assert "sent a page it had sent already" in result.stderr


HOUR = reply_json(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 3_600_000})


def test_a_snapshot_asked_to_wait_an_hour_gives_up_and_says_why(
    hostile: HostileServer, peek: Any, waits: Waits
) -> None:
    hostile.on("GET", r"/_matrix/client/v3/rooms/[^/]+/initialSync", HOUR)
    result = peek("snapshot", hostile.room, "-s", hostile.url, "--json")
    assert result.exit_code == 1
    assert waits.slept == []
    assert result.stderr.endswith(
        "the server asks to wait 3600 s, longer than the 60 s a one-shot run waits; "
        "try again later\n"
    )


def test_an_export_asked_to_wait_an_hour_gives_up_and_says_why(hostile: HostileServer) -> None:
    hostile.on("GET", MESSAGES, HOUR)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "peekcli", "export", hostile.room, "-s", hostile.url],
        env=dict(os.environ),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert b"the server asks to wait 3600 s" in done.stderr
    assert time.monotonic() - started < 20
