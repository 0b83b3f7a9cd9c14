"""`--exec CMD`: one run per delivered event, its JSON on stdin, the position saved per event."""

from __future__ import annotations

import io
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from peekcli import retry as stream
from peekcli.errors import ExecFailed
from peekcli.render.jsonl import encode_event
from peekcli.sinks.exec import ExecPolicy, ExecSink
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

PY = sys.executable


def py(code: str, *args: str) -> str:
    """An --exec CMD running a Python snippet (no shell involved)."""
    return shlex.join([PY, "-c", code, *args])


#: Appends stdin and the PEEK_* variables to files in the directory given as argv[1].
RECORD = (
    "import os, sys; d = sys.argv[1]; data = sys.stdin.buffer.read();"
    "open(os.path.join(d, 'stdin'), 'ab').write(data);"
    "keys = ('PEEK_ROOM_ID', 'PEEK_EVENT_ID', 'PEEK_EVENT_TYPE', 'PEEK_SENDER');"
    "open(os.path.join(d, 'env'), 'a').write(' '.join(os.environ.get(k, '-') for k in keys)"
    " + '\\n')"
)


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(stream, "pause", waits.append)
    return waits


def test_each_event_goes_to_cmd_as_its_json_line_with_its_ids(
    hs: FakeHomeserver, peek: Any, tmp_path: Path
) -> None:
    odd = message(2, body="ünï \u202e and \x1b[2J")
    hs.chain([message(1), odd])
    result = peek("snapshot", ROOM, "-s", HS, "--history", "0", "--exec", py(RECORD, str(tmp_path)))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # --exec alone prints nothing else
    assert (tmp_path / "stdin").read_bytes() == encode_event(message(1)) + encode_event(odd)
    assert (tmp_path / "env").read_text().splitlines() == [
        f"{ROOM} $ev1 m.room.message @alice:hs.test",
        f"{ROOM} $ev2 m.room.message @alice:hs.test",
    ]


def test_with_json_the_events_are_printed_too(
    hs: FakeHomeserver, peek: Any, tmp_path: Path
) -> None:
    hs.chain([message(1), message(2)])
    result = peek(
        "snapshot", ROOM, "-s", HS, "--history", "0", "--json", "--exec", py(RECORD, str(tmp_path))
    )
    assert lines(result) == [message(1), message(2)]


def test_no_shell_is_involved(hs: FakeHomeserver, peek: Any, tmp_path: Path) -> None:
    hs.chain([message(1)])
    cmd = "echo $PEEK_EVENT_ID; touch " + shlex.quote(str(tmp_path / "pwned"))
    result = peek(
        "snapshot", ROOM, "-s", HS, "--history", "0", "--exec", cmd, "--exec-output", "stdout"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"$PEEK_EVENT_ID; touch {tmp_path / 'pwned'}\n"
    assert not (tmp_path / "pwned").exists()


def test_cmd_output_goes_to_stderr_by_default(hs: FakeHomeserver, peek: Any) -> None:
    hs.chain([message(1)])
    result = peek(
        "snapshot", ROOM, "-s", HS, "--history", "0", "--json", "--exec", py("print('from cmd')")
    )
    assert "from cmd" in result.stderr and "from cmd" not in result.stdout
    assert lines(result) == [message(1)]


def test_stop_exits_9_and_the_position_stops_before_the_failed_event(
    hs: FakeHomeserver, peek: Any, state_file: Path, tmp_path: Path
) -> None:
    hs.chain([message(1), message(2), message(3)])
    fail_on_2 = py(
        RECORD + "; sys.exit(5 if os.environ['PEEK_EVENT_ID'] == '$ev2' else 0)", str(tmp_path)
    )
    result = peek("snapshot", ROOM, "-s", HS, "--history", "0", "--json", "--exec", fail_on_2)
    assert result.exit_code == 9
    assert "failed on $ev2 (exit status 5)" in result.stderr
    assert "next run hands it over again" in result.stderr
    assert lines(result) == [message(1)]
    pos = saved(state_file)["positions"][HS][ROOM]
    assert (pos["token"], pos["last_event_id"], pos["partial"]) == ("t0", "$ev1", True)
    ok = peek("snapshot", ROOM, "-s", HS, "--json", "--exec", py("pass"))
    assert ok.exit_code == 0, ok.stderr
    assert lines(ok) == [message(2), message(3)]
    assert ok.stderr == ""  # resuming inside the chunk is not a "server repeated" warning


def test_the_position_moves_after_every_event(
    hs: FakeHomeserver, peek: Any, state_file: Path, tmp_path: Path
) -> None:
    hs.chain([message(1), message(2), message(3)])
    # CMD reads the state file as it runs: the event before it must already be saved.
    check = py(
        "import json, os, sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
        "pos = json.loads(db.execute('SELECT doc FROM positions WHERE homeserver = ?"
        " AND room_id = ?', sys.argv[2:4]).fetchone()[0]);"
        "open(sys.argv[4], 'a').write(os.environ['PEEK_EVENT_ID'] + ' after '"
        " + str(pos.get('last_event_id')) + '\\n')",
        str(state_file),
        HS,
        ROOM,
        str(tmp_path / "log"),
    )
    peek("snapshot", ROOM, "-s", HS, "--history", "0")  # a saved position first
    result = peek("snapshot", ROOM, "-s", HS, "--from", "t0", "--exec", check)
    assert result.exit_code == 0, result.stderr
    log = (tmp_path / "log").read_text().splitlines()
    assert log[1:] == ["$ev2 after $ev1", "$ev3 after $ev2"]


def test_skip_warns_and_goes_on(hs: FakeHomeserver, peek: Any, state_file: Path) -> None:
    hs.chain([message(1), message(2)])
    fail_on_1 = py("import os, sys; sys.exit(os.environ['PEEK_EVENT_ID'] == '$ev1')")
    result = peek(
        "snapshot",
        ROOM,
        "-s",
        HS,
        "--history",
        "0",
        "--json",
        "--exec",
        fail_on_1,
        "--exec-failure",
        "skip",
    )
    assert result.exit_code == 0
    assert "failed on $ev1 (exit status 1); skipped it" in result.stderr
    assert lines(result) == [message(1), message(2)]
    assert saved(state_file)["positions"][HS][ROOM]["last_event_id"] == "$ev2"


def test_retry_backs_off_until_max_retries_then_exits_9(
    hs: FakeHomeserver, peek: Any, _no_waiting: list[float]
) -> None:
    hs.chain([message(1)])
    result = peek(
        "snapshot",
        ROOM,
        "-s",
        HS,
        "--history",
        "0",
        "--exec",
        py("raise SystemExit(2)"),
        "--exec-failure",
        "retry",
        "--max-retries",
        "2",
    )
    assert result.exit_code == 9
    assert result.stderr.count("retry") >= 2 and "after 2 retries" in result.stderr
    assert len(_no_waiting) == 2 and all(0 <= w <= 2 for w in _no_waiting)


@pytest.mark.parametrize("draw", ["shortest", "longest"])
def test_retry_waits_1_2_4_up_to_60_seconds_as_documented(
    hs: FakeHomeserver,
    peek: Any,
    _no_waiting: list[float],
    monkeypatch: pytest.MonkeyPatch,
    draw: str,
) -> None:
    """--help and the README say "1 s, 2 s, 4 s … up to 60 s": each wait is that, at most 20 %
    shorter (the jitter), never a draw from 0 as it once was."""
    monkeypatch.setattr(stream, "jitter", lambda lo, hi: lo if draw == "shortest" else hi)
    hs.chain([message(1)])
    args = ["snapshot", ROOM, "-s", HS, "--history", "0", "--exec", py("raise SystemExit(2)")]
    result = peek(*args, "--exec-failure", "retry", "--max-retries", "7")
    assert result.exit_code == 9
    documented = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    factor = 0.8 if draw == "shortest" else 1.0
    assert _no_waiting == pytest.approx([d * factor for d in documented])
    help_text = " ".join(peek("watch", "--help").stdout.split())
    assert "1 s, 2 s, 4 s … up to 60 s" in help_text


def test_retry_then_success(hs: FakeHomeserver, peek: Any, tmp_path: Path) -> None:
    hs.chain([message(1), message(2)])
    once = py(
        "import os, sys; flag = os.path.join(sys.argv[1], 'failed');"
        "first = os.environ['PEEK_EVENT_ID'] == '$ev1' and not os.path.exists(flag);"
        "first and open(flag, 'w').close(); sys.exit(1 if first else 0)",
        str(tmp_path),
    )
    result = peek(
        "snapshot",
        ROOM,
        "-s",
        HS,
        "--history",
        "0",
        "--json",
        "--exec",
        once,
        "--exec-failure",
        "retry",
    )
    assert result.exit_code == 0, result.stderr
    assert lines(result) == [message(1), message(2)]
    assert "retry 1" in result.stderr


def test_timeout_kills_cmd_and_counts_as_a_failure(hs: FakeHomeserver, peek: Any) -> None:
    hs.chain([message(1)])
    result = peek(
        "snapshot",
        ROOM,
        "-s",
        HS,
        "--history",
        "0",
        "--exec",
        py("import time; time.sleep(30)"),
        "--exec-timeout",
        "0.3",
    )
    assert result.exit_code == 9
    assert "timed out after 0.3 s" in result.stderr


def test_the_access_token_never_reaches_cmd(hs: FakeHomeserver, peek: Any) -> None:
    hs.chain([message(1)])
    result = peek(
        "snapshot",
        ROOM,
        "-s",
        HS,
        "--history",
        "0",
        "--exec-output",
        "stdout",
        "--exec",
        py("import os; print(sorted(k for k in os.environ if 'TOKEN' in k))"),
        env={"PEEK_ACCESS_TOKEN": "supersecret"},
    )
    assert result.exit_code == 0, result.stderr
    assert "PEEK_ACCESS_TOKEN" not in result.stdout and "supersecret" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message_part"),
    [
        (["--exec", "no-such-command-peek-test"], "command not found"),
        (["--exec", "'unbalanced"], "cannot split"),
        (["--exec", ""], "needs a command"),
        (["--exec-timeout", "3"], "goes with --exec"),
        (["--exec-failure", "skip"], "--exec-failure goes with --exec"),
        (["--exec", "true", "--json", "--exec-output", "stdout"], "mix"),
    ],
)
def test_usage_errors(peek: Any, args: list[str], message_part: str) -> None:
    result = peek("snapshot", ROOM, "-s", HS, *args)
    assert result.exit_code == 2
    assert message_part in result.stderr


def test_help_documents_the_options(peek: Any) -> None:
    text = peek("watch", "--help").stdout
    for option in ("--exec", "--exec-failure", "--exec-timeout", "--exec-output", "--no-follow"):
        assert option in text
    assert "at least once" in text


def test_sink_passes_events_on_only_after_cmd_succeeded() -> None:
    class Inner:
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []

        def write(self, event: dict[str, Any]) -> None:
            self.events.append(event)

        def flush(self) -> None:
            return None

        def reader_gone(self) -> bool:
            return False

    inner = Inner()
    out = io.StringIO()
    sink = ExecSink(ExecPolicy([PY, "-c", "import sys; sys.exit(1)"]), inner=inner, out=out)
    with pytest.raises(ExecFailed):
        sink.write(message(1))
    assert inner.events == [] and sink.runs == 1
    ok = ExecSink(ExecPolicy([PY, "-c", "print('hi')"]), inner=inner, out=out)
    ok.write(message(1))
    assert inner.events == [message(1)] and out.getvalue() == "hi\n"
    assert json.loads(encode_event(message(1))) == message(1)
