"""Bad input gets one line on stderr and exit 2, never a traceback, and nothing is sent.

Each case here once ended in a traceback: a duration of `nan`/`inf`/`1e308` (sleep and timers
overflow), a date before year 1 or after 9999 once made local, a regular expression whose
repetition count overflows the compiler.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from peekcli.render.jsonl import encode_event as encode
from tests.unit.hostilehs import HostileServer, message, reply_json

NOT_FINITE = ["nan", "inf", "-inf", "1e308", "NaN"]


def one_line_usage_error(result: Any) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    said = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(said) <= 3, said  # click's usage line and hint, then the one error line


@pytest.mark.parametrize("value", NOT_FINITE)
def test_poll_interval_must_be_a_finite_number_of_seconds(
    hostile: HostileServer, peek: Any, value: str
) -> None:
    # /events is not served: watch polls /messages and sleeps --poll-interval between polls
    hostile.on("GET", "/_matrix/client/v3/events", reply_json(404, {"errcode": "M_UNRECOGNIZED"}))
    result = peek(
        "watch", hostile.room, "-s", hostile.url, "--history", "0", "--poll-interval", value
    )
    one_line_usage_error(result)
    assert "--poll-interval" in result.stderr
    assert hostile.seen == []


@pytest.mark.parametrize("value", NOT_FINITE)
def test_exec_timeout_must_be_a_finite_number_of_seconds(
    hostile: HostileServer, peek: Any, value: str
) -> None:
    result = peek(
        "watch",
        hostile.room,
        "-s",
        hostile.url,
        "--max-events",
        "1",
        "--exec",
        "cat",
        "--exec-timeout",
        value,
    )
    one_line_usage_error(result)
    assert "--exec-timeout" in result.stderr
    assert hostile.seen == []


@pytest.mark.parametrize("value", NOT_FINITE)
def test_info_poll_interval_must_be_a_finite_number_of_seconds(
    hostile: HostileServer, peek: Any, value: str
) -> None:
    result = peek("info", hostile.room, "-s", hostile.url, "--poll-interval", value)
    one_line_usage_error(result)
    assert hostile.seen == []


def test_a_large_but_finite_duration_is_still_accepted(hostile: HostileServer, peek: Any) -> None:
    result = peek(
        "snapshot",
        hostile.room,
        "-s",
        hostile.url,
        "--json",
        "--exec",
        "cat",
        "--exec-timeout",
        "86400",
    )
    assert result.exit_code == 0, result.stderr
    assert "message 1" in result.stdout


@pytest.mark.parametrize(
    "option", [["--until", "0001-01-01"], ["--since", "0001-01-01"], ["--until", "9999-12-31"]]
)
def test_export_dates_out_of_range_are_a_usage_error(
    hostile: HostileServer, peek: Any, option: list[str]
) -> None:
    result = peek("export", hostile.room, "-s", hostile.url, *option)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"peek: {option[1]!r} is out of the range of dates\n"
    assert hostile.seen == []


def test_export_dates_at_the_edges_of_the_range_still_work(
    hostile: HostileServer, peek: Any
) -> None:
    result = peek(
        "export", hostile.room, "-s", hostile.url, "--since", "1970-01-02", "--until", "9999-12-30"
    )
    assert result.exit_code == 0, result.stderr
    assert '"message 1"' in result.stdout


@pytest.mark.parametrize(
    "pattern", ["a{99999999999}", "a{4294967295}", "(" * 100_000 + ")" * 100_000]
)
def test_grep_that_the_regex_compiler_cannot_take_is_a_usage_error(
    hostile: HostileServer, peek: Any, pattern: str
) -> None:
    result = peek("snapshot", hostile.room, "-s", hostile.url, "--grep", pattern)
    assert result.exit_code == 2, result.output
    said = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(said) == 3 and said[-1].startswith("Error: --grep ")
    assert "is not a valid regular expression" in said[-1] and len(said[-1]) < 300
    assert hostile.seen == []


def run_peek(*args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    """peek in a child process (its own stdout encoding, file limits, real file descriptors)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "peekcli", *args],
        env={**os.environ, **(env or {})},
        timeout=60,
        **kw,
    )


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_pretty_output_to_a_narrow_encoding_degrades_instead_of_crashing(
    hostile: HostileServer, tmp_path: Path, encoding: str
) -> None:
    hostile.history = [message(1, "héllo ✓ 漢字")]
    state = str(tmp_path / "state.json")
    done = run_peek(
        "snapshot", hostile.room, "-s", hostile.url, "--state-file", state,
        env={"PYTHONIOENCODING": encoding},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    out = done.stdout.decode(encoding)
    assert "@mallory:127.0.0.1: h" in out and "llo ? ??" in out
    assert b"Traceback" not in done.stderr


def limit_file_size(size: int) -> Callable[[], None]:
    """In the child: files stop growing at `size` bytes (write fails with EFBIG, as on a full
    disk it fails with ENOSPC) instead of the default SIGXFSZ kill."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def test_export_onto_a_full_disk_is_one_line_and_resumes_later(
    hostile: HostileServer, tmp_path: Path
) -> None:
    newer = [message(n) for n in range(100, 50, -1)]  # pages go backwards, newest first
    older = [message(n) for n in range(50, 0, -1)]

    def pages(h: Any, params: dict[str, str]) -> None:
        if params.get("from") == "p1":
            reply_json(200, {"chunk": older, "start": "p1", "end": "p2"})(h, params)
        elif params.get("from") == "p2":
            reply_json(200, {"chunk": [], "start": "p2"})(h, params)
        else:
            reply_json(200, {"chunk": newer, "start": "s1", "end": "p1"})(h, params)

    hostile.on("GET", r"/_matrix/client/v3/rooms/[^/]+/messages", pages)
    out = tmp_path / "out.jsonl"
    base = ("export", hostile.room, "-s", hostile.url, "-o", str(out))
    # room for the first page in FILE.part, not for the second
    full = run_peek(*base, preexec_fn=limit_file_size(len(b"".join(map(encode, newer))) + 100))
    assert full.returncode == 1
    said = sorted(full.stderr.decode().splitlines())  # the error, and what is left
    assert said[0] == f"peek: cannot write {out}.part: File too large"
    assert said[1].startswith(f"peek: export stopped; {out}.part is kept")
    assert len(said) == 2 and not out.exists()
    later = run_peek(*base, "--resume")
    assert later.returncode == 0, later.stderr.decode()
    assert [json.loads(line)["event_id"] for line in out.read_text().splitlines()] == [
        f"$ev{n}" for n in range(1, 101)
    ]


@pytest.mark.parametrize("command", [["export"], ["snapshot", "--json"], ["snapshot"]])
def test_stdout_onto_a_full_device_is_one_line_and_saves_no_position(
    hostile: HostileServer, tmp_path: Path, command: list[str]
) -> None:
    state = tmp_path / "state.json"
    args = (command[0], hostile.room, "-s", hostile.url, *command[1:])
    if command[0] == "snapshot":
        args = (*args, "--state-file", str(state))
    with open("/dev/full", "wb") as full:
        done = run_peek(*args, stdout=full, stderr=subprocess.PIPE)
    assert done.returncode == 1
    assert done.stderr.decode() == "peek: cannot write the output: No space left on device\n"
    if command[0] == "snapshot":  # nothing was written: the next run prints it all
        again = run_peek(*args)
        assert again.returncode == 0 and b"message 1" in again.stdout


def test_a_long_poll_timeout_beyond_a_week_is_a_usage_error(
    hostile: HostileServer, peek: Any
) -> None:
    # 99999999999999 ms once overflowed the socket timeout: a traceback after connecting
    result = peek("watch", hostile.room, "-s", hostile.url, "--timeout", "99999999999999")
    one_line_usage_error(result)
    assert "--timeout" in result.stderr
    assert hostile.seen == []
