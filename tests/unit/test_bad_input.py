"""Bad input gets one line on stderr and exit 2, never a traceback, and nothing is sent.

Each case here once ended in a traceback: a duration of `nan`/`inf`/`1e308` (sleep and timers
overflow), a date before year 1 or after 9999 once made local, a regular expression whose
repetition count overflows the compiler.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.hostilehs import HostileServer, reply_json

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
