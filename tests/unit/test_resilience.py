"""Never lose the stream: every failure class, backoff, rate limits, token renewal, bad state files.

Faults are injected with `responses` in front of the scripted homeserver. The loop's waits go
through `peekcli.retry.pause` and its jitter through `peekcli.retry.jitter`; the `waits` fixture
records the one and pins the other to its upper bound, so the backoff is exact and takes no time.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from click.testing import CliRunner

from peekcli import retry as stream
from peekcli.cli import cli
from peekcli.follow.follower import Follower
from peekcli.follow.strategies import Chunk
from peekcli.state import credentials_path_for
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

REFUSED = requests.exceptions.ConnectionError(
    "HTTPSConnectionPool(host='hs.test', port=443): Max retries exceeded with url: /events "
    "(Caused by NewConnectionError(\"HTTPSConnection(host='hs.test', port=443): Failed to "
    'establish a new connection: [Errno 111] Connection refused"))'
)
RESET = requests.exceptions.ConnectionError(
    "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
)
CLOSED = requests.exceptions.ConnectionError(
    "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"
)
DNS = requests.exceptions.ConnectionError(
    "HTTPSConnectionPool(host='hs.test', port=443): Max retries exceeded with url: /events "
    "(Caused by NameResolutionError(\"HTTPSConnection(host='hs.test', port=443): Failed to "
    "resolve 'hs.test' ([Errno -3] Temporary failure in name resolution)\"))"
)
READ_TIMEOUT = requests.exceptions.ReadTimeout(
    "HTTPSConnectionPool(host='hs.test', port=443): Read timed out. (read timeout=45.0)"
)


@dataclass
class FaultyHomeserver(FakeHomeserver):
    """The scripted homeserver, with faults served for a `from` token before its real reply.

    A fault is an exception (raised inside requests, as a real transport error would be) or
    `(status, body)` / `(status, body, headers)`.
    """

    faults: dict[str, list[Any]] = field(default_factory=dict)
    #: Faults for guest registrations, in order (None: register normally).
    register_faults: list[Any] = field(default_factory=list)

    def _register(self, request: Any) -> tuple[int, dict[str, str], str]:
        fault = self.register_faults.pop(0) if self.register_faults else None
        if isinstance(fault, BaseException):
            raise fault
        return super()._register(request)

    def _events(self, request: Any) -> tuple[int, dict[str, str], str]:
        token = parse_qs(urlsplit(request.url).query)["from"][0]
        queue = self.faults.get(token)
        if queue:
            fault = queue.pop(0)
            if isinstance(fault, BaseException):
                raise fault
            status, body, *rest = fault
            headers = rest[0] if rest else {}
            return status, headers, body if isinstance(body, str) else json.dumps(body)
        return super()._events(request)

    def froms(self) -> list[str]:
        """The `from` token of every /events request, in order: what the position was."""
        return [parse_qs(urlsplit(c.request.url).query)["from"][0] for c in self.calls("/events")]


@pytest.fixture
def hs() -> Iterator[FaultyHomeserver]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FaultyHomeserver(rsps).install()  # type: ignore[misc]


@dataclass
class Waits:
    slept: list[float] = field(default_factory=list)
    jitter: list[tuple[float, float]] = field(default_factory=list)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    """Record every wait of the loop instead of waiting; jitter always draws its maximum."""
    w = Waits()

    def top(lo: float, hi: float) -> float:
        w.jitter.append((lo, hi))
        return hi

    monkeypatch.setattr(stream, "pause", w.slept.append)
    monkeypatch.setattr(stream, "jitter", top)
    return w


def status_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "retrying in" in line]


def prime(hs: FaultyHomeserver, peek: Any, state_file: Path) -> dict[str, Any]:
    """A first snapshot that saves the position `t1` (after $ev1); returns what is saved."""
    hs.chain([message(1)], [message(2)])
    first = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "1")
    assert first.exit_code == 0, first.stderr
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "t1"
    return saved(state_file)


# -- every failure class ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        (REFUSED, "cannot reach https://hs.test (connection refused)"),
        (RESET, "cannot reach https://hs.test (connection reset)"),
        (CLOSED, "cannot reach https://hs.test (connection closed by the server)"),
        (DNS, "cannot reach https://hs.test (DNS lookup failed)"),
        (READ_TIMEOUT, "https://hs.test did not answer in time"),
        ((502, "<html><body>Bad Gateway</body></html>"), f"{HS} answered HTTP 502 (Bad Gateway)"),
        (
            (503, {"errcode": "M_UNKNOWN", "error": "overloaded"}),
            f"{HS} answered HTTP 503 (M_UNKNOWN: overloaded)",
        ),
        ((504, ""), f"{HS} answered HTTP 504 (Gateway Timeout)"),
        (
            (200, "<html>captive portal</html>"),
            f"{HS} sent an unreadable reply (HTTP 200, not JSON)",
        ),
        (
            (200, '{"chunk": [{"type": "m.room.mes'),
            f"{HS} sent an unreadable reply (HTTP 200, not JSON)",
        ),
        ((200, "[1, 2, 3]"), f"{HS} sent an unreadable reply (not a JSON object)"),
        (
            (200, {"chunk": "nope", "end": "t9"}),
            "the server sent a reply without a usable event list",
        ),
    ],
    ids=[
        "refused",
        "reset",
        "closed",
        "dns",
        "read-timeout",
        "502-html",
        "503-json",
        "504-empty",
        "200-html",
        "200-truncated-json",
        "200-json-array",
        "200-bad-chunk",
    ],
)
def test_each_failure_class_is_retried_reported_and_never_moves_the_position(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits, fault: Any, shown: str
) -> None:
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [fault, fault]
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2"]
    # Not a terminal: each status is a plain line, then one line when the stream is back.
    assert result.stderr.splitlines() == [
        f"peek: connection lost: {shown}; retrying in 1 s…",
        f"peek: still failing (2 attempts): {shown}; retrying in 2 s…",
        "peek: connection restored",
    ]
    # Every retry asked for the same position; only the answered request moved it.
    assert hs.froms() == ["t0", "t1", "t1", "t1"]
    assert waits.slept == [1.0, 2.0]
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "t2"


def test_failures_exhausting_max_retries_exit_1_and_leave_the_state_byte_identical(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    before = prime(hs, peek, state_file)
    hs.faults["t1"] = [REFUSED] * 10
    result = peek("watch", ROOM, "-s", HS, "--json", "--max-retries", "2")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "peek: cannot reach https://hs.test (connection refused) (gave up after 2 retries)"
    )
    assert len(status_lines(result.stderr)) == 2
    assert hs.froms()[-3:] == ["t1", "t1", "t1"] and len(hs.calls("/events")) == 1 + 3
    assert saved(state_file) == before
    # Once the server is back, the stream goes on from there: nothing was skipped.
    hs.faults.clear()
    again = peek("snapshot", ROOM, "-s", HS, "--json")
    assert [e["event_id"] for e in lines(again)] == ["$ev2"]


def test_max_retries_0_fails_on_the_first_error_without_a_status_line(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    before = prime(hs, peek, state_file)
    hs.faults["t1"] = [(503, {"errcode": "M_UNKNOWN", "error": "down"})]
    result = peek("watch", ROOM, "-s", HS, "--json", "--max-retries", "0")
    assert result.exit_code == 1
    assert result.stderr == "peek: https://hs.test answered HTTP 503 (M_UNKNOWN: down)\n"
    assert waits.slept == [] and saved(state_file) == before


# -- backoff -----------------------------------------------------------------------------------


def test_backoff_doubles_from_1_s_up_to_60_s_with_bounded_jitter_and_resets_after_a_success(
    hs: FaultyHomeserver, peek: Any, waits: Waits
) -> None:
    hs.chain([message(1)], [message(2)], [message(3)])
    hs.faults["t1"] = [RESET] * 8
    hs.faults["t2"] = [RESET] * 2
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "3")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2", "$ev3"]
    # Bounded jitter: each wait is drawn from [0.8, 1] × min(60, 2^n); here the maximum.
    ceilings = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    expected = [*ceilings, 1.0, 2.0]
    assert [hi for _, hi in waits.jitter] == expected
    assert [lo for lo, _ in waits.jitter] == pytest.approx([0.8 * c for c in expected])
    assert waits.slept == [*ceilings, 1.0, 2.0]
    shown = [line.rsplit("retrying in ", 1)[1] for line in status_lines(result.stderr)]
    assert shown == [f"{c:g} s…" for c in ceilings] + ["1 s…", "2 s…"]
    assert "still failing (8 attempts)" in result.stderr
    assert result.stderr.count("peek: connection restored\n") == 2


def test_jitter_is_really_drawn_within_20_percent_below_the_ceiling(
    hs: FaultyHomeserver, peek: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(stream, "pause", slept.append)  # real random jitter
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [REFUSED] * 12
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    ceilings = [min(60.0, 2.0**n) for n in range(12)]
    assert len(slept) == 12
    assert all(0.8 * c <= s <= c for s, c in zip(slept, ceilings, strict=True))
    assert len(set(slept)) > 1  # drawn, not fixed


def test_snapshot_retries_quickly_then_exits_1_with_the_state_untouched(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    before = prime(hs, peek, state_file)
    hs.faults["t1"] = [(502, "<html>bad gateway</html>")] * 20
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert waits.slept == [1.0, 2.0, 4.0]  # default: 3 quick retries
    assert "gave up after 3 retries" in result.stderr.splitlines()[-1]
    assert saved(state_file) == before
    # More retries never wait more than a few seconds each: cron runs must end.
    waits.slept.clear()
    longer = peek("snapshot", ROOM, "-s", HS, "--json", "--max-retries", "7")
    assert longer.exit_code == 1
    assert waits.slept == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert saved(state_file) == before


# -- first contact: discovery, guest registration, alias lookup ------------------------------------


def test_first_contact_with_a_down_server_is_retried_like_the_stream(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    """The README: snapshot retries 3 times (quickly), watch for ever, for the first request of
    a run too: guest registration refused by a server that is down is no reason to exit 1."""
    hs.chain([message(1)], [message(2)])
    # Down for longer than a snapshot's retries: exit 1, nothing saved.
    hs.register_faults = [REFUSED] * 4
    gave_up = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert gave_up.exit_code == 1
    assert waits.slept == [1.0, 2.0, 4.0]
    assert "gave up after 3 retries" in gave_up.stderr.splitlines()[-1]
    assert not state_file.exists()
    # Back within them: the snapshot goes on as if nothing happened.
    waits.slept.clear()
    hs.register_faults = [REFUSED, RESET]
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert waits.slept == [1.0, 2.0]
    assert "connection lost" in status_lines(result.stderr)[0]
    assert "connection restored" in result.stderr
    # A watch waits for ever (here: 9 failures, the backoff growing up to its cap).
    waits.slept.clear()
    hs.register_faults = [DNS] * 9
    credentials_path_for(state_file).unlink()  # no stored guest: it registers again
    args = ("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "1")
    watched = peek(*args, "--reset")
    assert watched.exit_code == 0, watched.stderr
    assert [e["event_id"] for e in lines(watched)] == ["$ev1"]
    assert waits.slept == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_discovery_and_alias_lookup_against_a_down_server_are_retried(
    hs: FaultyHomeserver, peek: Any, waits: Waits
) -> None:
    """No --homeserver: the well-known and /versions lookups, then the alias, are first contact
    too; each outage is waited out with the stream's backoff."""
    versions = [REFUSED, REFUSED]
    aliases = [READ_TIMEOUT]

    def flaky(queue: list[Any], reply: dict[str, Any]) -> Any:
        def answer(_request: Any) -> tuple[int, dict[str, str], str]:
            if queue:
                raise queue.pop(0)
            return 200, {}, json.dumps(reply)

        return answer

    hs.rsps.add(responses.GET, f"{HS}/.well-known/matrix/client", status=404)
    hs.rsps.add_callback(
        responses.GET,
        f"{HS}/_matrix/client/versions",
        callback=flaky(versions, {"versions": ["v1.11"]}),
    )
    hs.rsps.add_callback(
        responses.GET,
        re.compile(re.escape(HS) + r"/_matrix/client/v3/directory/room/.*"),
        callback=flaky(aliases, {"room_id": ROOM, "servers": ["hs.test"]}),
    )
    hs.chain([message(1)])
    result = peek("snapshot", "#lobby:hs.test", "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert versions == [] and aliases == []
    # One first contact, one backoff: discovery failed twice, then the alias lookup once.
    assert waits.slept == [1.0, 2.0, 4.0]


def test_snapshot_recovers_within_its_retries_and_prints_everything_once(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    prime(hs, peek, state_file)
    hs.chain([message(1)], [message(2)], [message(3)])
    hs.faults["t2"] = [DNS, READ_TIMEOUT]
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev2", "$ev3"]
    assert hs.froms()[-4:] == ["t2", "t2", "t2", "t3"]


# -- rate limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "wait"),
    [
        ((429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many", "retry_after_ms": 2500}), 2.5),
        ((429, {"errcode": "M_LIMIT_EXCEEDED"}, {"Retry-After": "7"}), 7.0),
        ((429, "slow down", {"Retry-After": "12"}), 12.0),
        # Some servers send M_LIMIT_EXCEEDED with another status.
        # … and a wait shorter than the backoff's gets the backoff's (never a flood).
        ((400, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 300}), 1.0),
        # No hint at all: the ordinary backoff.
        ((429, {"errcode": "M_LIMIT_EXCEEDED"}), 1.0),
    ],
    ids=["retry_after_ms", "retry-after-header", "retry-after-non-json", "400-errcode", "no-hint"],
)
def test_rate_limits_wait_as_long_as_the_server_asks(
    hs: FaultyHomeserver, peek: Any, waits: Waits, fault: Any, wait: float
) -> None:
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [fault]
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2"]
    assert waits.slept == [wait]
    (line,) = status_lines(result.stderr)
    assert line.startswith("peek: rate limited: https://hs.test answered HTTP ")
    assert hs.froms() == ["t0", "t1", "t1"]


def test_retry_after_as_an_http_date(hs: FaultyHomeserver, peek: Any, waits: Waits) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [(429, "", {"Retry-After": when})]
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    (slept,) = waits.slept
    assert 20 < slept <= 30


def test_absurd_rate_limits_are_capped_at_an_hour(
    hs: FaultyHomeserver, peek: Any, waits: Waits
) -> None:
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 10**30})]
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    assert waits.slept == [3600.0]


# -- what the status line may contain --------------------------------------------------------


def test_server_error_text_in_the_status_line_is_sanitized(
    hs: FaultyHomeserver, peek: Any, waits: Waits
) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\u202eoverloaded\nsecond line\r"
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [(503, {"errcode": "M_UNKNOWN", "error": evil})]
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    for bad in ("\x1b", "\x07", "\u202e", "\r"):
        assert bad not in result.stderr
    (line,) = status_lines(result.stderr)
    assert "overloaded" in line and line.endswith("retrying in 1 s…")
    assert len(result.stderr.splitlines()) == 2  # the status and "connection restored"


def test_quiet_hides_the_status_lines_but_not_the_final_error(
    hs: FaultyHomeserver, peek: Any, waits: Waits
) -> None:
    hs.faults["t0"] = [REFUSED] * 5
    result = peek("-q", "watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-retries", "1")
    assert result.exit_code == 1
    assert result.stderr == (
        "peek: cannot reach https://hs.test (connection refused) (gave up after 1 retry)\n"
    )


# -- tokens ------------------------------------------------------------------------------------


def test_rejected_guest_token_mid_watch_registers_a_new_guest_and_continues_in_place(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "expired"})]
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2"]
    assert hs.guests == 2 and hs.froms() == ["t0", "t1", "t1"]
    auth = [c.request.headers["Authorization"] for c in hs.calls("/events")]
    assert auth == ["Bearer guest-token-1", "Bearer guest-token-1", "Bearer guest-token-2"]
    creds = json.loads(state_file.with_name("credentials.json").read_text())
    assert creds["homeservers"][HS]["guest"]["access_token"] == "guest-token-2"
    assert "guest-token" not in result.stderr + result.stdout


def test_guest_renewal_failing_on_the_network_is_retried_like_any_request(
    hs: FaultyHomeserver, peek: Any, waits: Waits
) -> None:
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "expired"})] * 2
    hs.register_faults = [None, RESET]  # the first guest registers; its renewal hits a reset
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2"]
    assert "connection reset" in status_lines(result.stderr)[0]
    assert hs.froms() == ["t0", "t1", "t1", "t1"] and hs.guests == 2


def test_a_fresh_guest_rejected_at_once_is_not_renewed_in_a_loop(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    before = prime(hs, peek, state_file)
    hs.faults["t1"] = [(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "no"})] * 50
    result = peek("watch", ROOM, "-s", HS, "--json")
    assert result.exit_code == 5
    assert hs.guests == 2  # the first guest and one renewal, no more
    assert "M_UNKNOWN_TOKEN" in result.stderr and "guest-token" not in result.stderr
    assert saved(state_file) == before


def test_rejected_user_token_mid_watch_exits_5_clearly_and_keeps_the_position(
    hs: FaultyHomeserver, peek: Any, state_file: Path, waits: Waits
) -> None:
    hs.chain([message(1)], [message(2)])
    hs.faults["t1"] = [(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "logged out"})]
    token = {"PEEK_ACCESS_TOKEN": "user-secret-42"}  # --token would add a warning (ps shows it)
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", env=token)
    assert result.exit_code == 5
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert result.stderr.startswith("peek: https://hs.test rejected the given token")
    assert "user-secret-42" not in result.stderr + result.stdout + str(saved(state_file))
    assert hs.guests == 0
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "t1"


# -- the state file ----------------------------------------------------------------------------


def test_unreadable_state_file_is_named_and_left_alone(
    hs: FaultyHomeserver, tmp_path: Path
) -> None:
    # Tests run as root, so chmod cannot make a file unreadable: a directory in its place can.
    default = tmp_path / "xdg-state" / "peek" / "state.db"
    default.mkdir(parents=True)
    (default / "keep").write_text("x")
    hs.chain([message(1)])
    # No --state-file: the default path (XDG_STATE_HOME is the test's own).
    result = CliRunner().invoke(cli, ["snapshot", ROOM, "-s", HS, "--json"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"peek: cannot read state file {default}: Is a directory\n"
    assert default.is_dir() and (default / "keep").read_text() == "x"


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "positions": {',
        b"\xff\xfe not utf-8",
        b"[]",
        b"{}",
        b'{"version": 1, "positions": []}',
        b'{"version": 1, "positions": {"https://hs.test": "t5"}}',
        b'{"version": 1, "aliases": {"https://hs.test": 5}}',
        b"",
    ],
    ids=["truncated", "binary", "array", "no-version", "list", "string", "alias", "empty"],
)
def test_corrupt_state_file_is_named_never_overwritten_and_never_a_traceback(
    hs: FaultyHomeserver, peek: Any, state_file: Path, content: bytes
) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(content)
    hs.chain([message(1)])
    for args in (["watch", ROOM, "-s", HS, "--json"], ["snapshot", ROOM, "-s", HS]):
        result = peek(*args)
        assert result.exit_code == 1, result.stderr
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"peek: state file {state_file} is corrupt (")
        assert line.endswith("move it aside to start over")
    assert state_file.read_bytes() == content


def test_state_file_from_a_newer_peek_asks_for_an_upgrade(
    hs: FaultyHomeserver, peek: Any, state_file: Path
) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_text('{"version": 99}')
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 1
    assert "schema version 99" in result.stderr and "upgrade peek" in result.stderr
    assert state_file.read_text() == '{"version": 99}'


# -- a reader that leaves right after a flush ------------------------------------------------------


class _OneChunk:
    kind = "events"

    def fetch(self, token: str, *, drain: bool) -> Chunk:
        return Chunk([message(1), message(2)], start=token, end="t2")


def test_a_reader_that_leaves_right_after_the_flush_has_the_batch_saved(tmp_path: Path) -> None:
    """`peek watch --json | head -n 2`: head reads the batch and exits between peek's flush and
    its next step. What head read counts as delivered: the position is saved, then 141."""
    import os

    from peekcli.sinks.jsonl import JsonLinesSink
    from peekcli.state import Position, StateStore

    read_fd, write_fd = os.pipe()
    got: list[bytes] = []

    class HeadLeavesAfterFlush(io.BufferedWriter):
        def flush(self) -> None:
            super().flush()  # the bytes are in the pipe…
            if not got:
                got.append(os.read(read_fd, 1 << 16))  # …head reads its lines…
                os.close(read_fd)  # …and exits, before peek's next step

    out = HeadLeavesAfterFlush(io.FileIO(write_fd, "wb"))
    store = StateStore(tmp_path / "state.json")
    follower = Follower(
        store=store,
        homeserver=HS,
        room_id=ROOM,
        strategy=_OneChunk(),
        sink=JsonLinesSink(out),
    )
    with pytest.raises(BrokenPipeError):
        follower.run(Position("t0", "events"), drain=False)
    assert [json.loads(x)["event_id"] for x in got[0].splitlines()] == ["$ev1", "$ev2"]
    assert saved(tmp_path / "state.json")["positions"][HS][ROOM]["token"] == "t2"
    with contextlib.suppress(BrokenPipeError):
        out.close()
