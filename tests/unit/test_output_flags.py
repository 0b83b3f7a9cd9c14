"""Top-level `-v` (request log, tokens redacted by construction) and `-q` (no notices)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from peekcli.cli import cli
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message


def run(state_file: Path, *args: str):
    return CliRunner().invoke(cli, [*args, "--state-file", str(state_file)])


def test_verbose_logs_each_request_without_the_token(hs: FakeHomeserver, state_file: Path) -> None:
    hs.chain([message(1)])
    result = CliRunner().invoke(
        cli,
        ["-v", "snapshot", ROOM, "-s", HS, "--json", "--state-file", str(state_file)],
        env={"PEEK_ACCESS_TOKEN": "tok-secret-123"},
    )
    assert result.exit_code == 0, result.stderr
    logged = [line for line in result.stderr.splitlines() if "/_matrix/client/v3/" in line]
    assert any(line.startswith("peek: GET ") and "/initialSync" in line for line in logged)
    assert any("/events → 200" in line for line in logged)
    assert "tok-secret-123" not in result.stderr + result.stdout


def test_without_verbose_nothing_is_logged(hs: FakeHomeserver, state_file: Path) -> None:
    hs.chain([message(1)])
    result = run(state_file, "snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 0 and result.stderr == ""


def test_quiet_silences_warnings_but_not_errors(hs: FakeHomeserver, state_file: Path) -> None:
    hs.chain([message(1), message(2)])
    run(state_file, "snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    hs.events_by_token["t1"] = {"chunk": [message(2), message(3)], "end": "t9"}
    loud = CliRunner().invoke(
        cli, ["snapshot", ROOM, "-s", HS, "--json", "--state-file", str(state_file)]
    )
    assert "already delivered" in loud.stderr
    hs.events_by_token["t9"] = {"chunk": [message(3), message(4)], "end": "t10"}
    quiet = CliRunner().invoke(
        cli, ["-q", "snapshot", ROOM, "-s", HS, "--json", "--state-file", str(state_file)]
    )
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert [line for line in quiet.stdout.splitlines()] == [
        '{"type":"m.room.message","room_id":"!room:hs.test","sender":"@alice:hs.test",'
        '"event_id":"$ev4","origin_server_ts":1700000004000,'
        '"content":{"msgtype":"m.text","body":"message 4"}}'
    ]
    failing = CliRunner().invoke(cli, ["-q", "watch", "nonsense", "--json"])
    assert failing.exit_code == 2 and "not a room" in failing.stderr
