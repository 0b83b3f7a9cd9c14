"""`--exec CMD` against the real Synapse: retries, a kill while CMD runs, skipping failures."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.peekproc import peek_command, peek_env, run_peek
from tests.homeserver import Homeserver, User

#: Appends the event id and type to seen.log.
RECORD = 'printf "%s %s\\n" "$PEEK_EVENT_ID" "$PEEK_EVENT_TYPE" >> "$1/seen.log"'


def exec_cmd(work: Path, script: str, *args: str) -> str:
    """CMD for --exec: a shell script (the user writes the shell); the work dir is $1, then
    `args` ($2…)."""
    return shlex.join(["sh", "-c", script, "peek-exec", str(work), *args])


def seen(work: Path) -> list[str]:
    path = work / "seen.log"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def start_position(hs: Homeserver, room: str, state: Path) -> None:
    first = run_peek(
        "snapshot", room, "--homeserver", hs.base_url, "--history", "0", "--json", state_file=state
    )
    assert first.returncode == 0, first.stderr


def test_retry_hands_each_event_over_until_it_succeeds(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    start_position(synapse, room, state)
    sent = [synapse.send_text(alice, room, f"m{i}") for i in range(3)]
    # Fails the first time it sees the second message, then succeeds; keeps each stdin.
    script = (
        f'{RECORD}; if [ "$PEEK_EVENT_ID" = "$2" ] && [ ! -e "$1/failed" ]; then '
        'touch "$1/failed"; exit 7; fi; cat >> "$1/out.jsonl"'
    )
    result = run_peek(
        "snapshot",
        room,
        "--homeserver",
        synapse.base_url,
        "--exec",
        exec_cmd(tmp_path, script, sent[1]),
        "--exec-failure",
        "retry",
        state_file=state,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # --exec without --json: nothing else on stdout
    assert "exit status 7" in result.stderr and "retry 1" in result.stderr
    assert seen(tmp_path) == [sent[0], sent[1], sent[1], sent[2]]
    handed = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [e["event_id"] for e in handed] == sent
    assert [e["content"]["body"] for e in handed] == ["m0", "m1", "m2"]
    # Delivered: the next run has nothing to hand over.
    again = run_peek(
        "snapshot",
        room,
        "--homeserver",
        synapse.base_url,
        "--exec",
        exec_cmd(tmp_path, RECORD),
        state_file=state,
    )
    assert again.returncode == 0 and seen(tmp_path) == [sent[0], sent[1], sent[1], sent[2]]


def test_kill_9_while_cmd_runs_hands_that_event_over_again(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    start_position(synapse, room, state)
    sent = [synapse.send_text(alice, room, f"m{i}") for i in range(3)]
    (tmp_path / "armed").touch()
    # On the second event, while "armed": say so, then hang until killed.
    script = (
        f'{RECORD}; if [ "$PEEK_EVENT_ID" = "$2" ] && [ -e "$1/armed" ]; then '
        'echo $$ > "$1/cmd.pid"; touch "$1/started"; exec sleep 60; fi; cat > /dev/null'
    )
    cmd = exec_cmd(tmp_path, script, sent[1])
    args = ["snapshot", room, "--homeserver", synapse.base_url, "--exec", cmd]
    proc = subprocess.Popen(
        [*peek_command(), *args],
        env=peek_env(state),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "CMD never started on the second event"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        pid_file = tmp_path / "cmd.pid"
        if pid_file.exists():  # the orphaned CMD (its own process group) holds peek's stderr
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        proc.communicate()
    assert seen(tmp_path) == [sent[0], sent[1]]
    (tmp_path / "armed").unlink()

    again = run_peek(*args, state_file=state)
    assert again.returncode == 0, again.stderr
    # The first event is not repeated (saved after it); the second comes again; none skipped.
    assert seen(tmp_path) == [sent[0], sent[1], sent[1], sent[2]]


def test_skip_warns_and_goes_on(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    start_position(synapse, room, state)
    sent = [synapse.send_text(alice, room, body) for body in ("good 1", "bad", "good 2")]
    script = (
        f'{RECORD}; body=$(cat); case "$body" in *\\"bad\\"*) exit 3;; esac; '
        'printf "%s\\n" "$body" >> "$1/out.jsonl"'
    )
    result = run_peek(
        "snapshot",
        room,
        "--homeserver",
        synapse.base_url,
        "--json",
        "--exec",
        exec_cmd(tmp_path, script),
        "--exec-failure",
        "skip",
        state_file=state,
    )
    assert result.returncode == 0, result.stderr
    assert f"failed on {sent[1]} (exit status 3); skipped it" in result.stderr
    assert seen(tmp_path) == sent
    handed = [
        json.loads(line)["content"]["body"]
        for line in (tmp_path / "out.jsonl").read_text().splitlines()
    ]
    assert handed == ["good 1", "good 2"]
    # With --json too, every delivered event (skipped ones included) is printed after CMD ran.
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == sent
    again = run_peek(
        "snapshot",
        room,
        "--homeserver",
        synapse.base_url,
        "--json",
        "--exec",
        exec_cmd(tmp_path, RECORD),
        "--exec-failure",
        "skip",
        state_file=state,
    )
    assert again.returncode == 0 and again.stdout == ""
    assert seen(tmp_path) == sent


def test_stop_exits_9_and_keeps_the_event_for_the_next_run(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    start_position(synapse, room, state)
    sent = [synapse.send_text(alice, room, f"m{i}") for i in range(2)]
    failing = f'{RECORD}; [ "$PEEK_EVENT_ID" != "$2" ]'
    args = ["snapshot", room, "--homeserver", synapse.base_url, "--json"]
    result = run_peek(*args, "--exec", exec_cmd(tmp_path, failing, sent[1]), state_file=state)
    assert result.returncode == 9, result.stderr
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == [sent[0]]
    assert sent[1] in result.stderr and "Traceback" not in result.stderr
    ok = run_peek(*args, "--exec", exec_cmd(tmp_path, RECORD), state_file=state)
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["event_id"] for line in ok.stdout.splitlines()] == [sent[1]]
    assert seen(tmp_path) == [sent[0], sent[1], sent[1]]


@pytest.mark.parametrize(
    ("script", "extra", "sig", "code"),
    [
        # CMD runs long: Ctrl-C kills it and ends the run at once, not when it is done.
        ('echo $$ > "$1/cmd.pid"; touch "$1/started"; exec sleep 60', [], signal.SIGINT, 130),
        # CMD always fails and is retried with backoff: SIGTERM ends the retrying.
        ('touch "$1/started"; exit 1', ["--exec-failure", "retry"], signal.SIGTERM, 143),
    ],
    ids=["long-cmd-sigint", "retrying-sigterm"],
)
def test_a_stop_ends_a_multi_room_run_promptly_while_cmd_runs_or_backs_off(
    synapse: Homeserver,
    alice: User,
    fresh_room,
    tmp_path: Path,
    script: str,
    extra: list[str],
    sig: int,
    code: int,
) -> None:
    """Several rooms, one thread each: the delivery lock must not keep Ctrl-C/SIGTERM waiting
    for a CMD or its backoff (it once ignored both until CMD ended, or for ever with retry)."""
    rooms = [fresh_room(), fresh_room()]
    sent = synapse.send_text(alice, rooms[0], "hello")
    state = tmp_path / "state.json"
    args = ["watch", *rooms, "--homeserver", synapse.base_url, "--history", "1"]
    proc = subprocess.Popen(
        [*peek_command(), *args, "--exec", exec_cmd(tmp_path, script), *extra],
        env=peek_env(state),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "CMD never started"
            time.sleep(0.02)
        os.kill(proc.pid, sig)
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == code, err
        assert time.monotonic() - stopped < 5, "the stop waited for CMD"
        assert b"Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        pid_file = tmp_path / "cmd.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    if pid_file.exists():  # the long CMD was killed with the run, not left behind
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid)
    # The event CMD never finished is handed over again by the next run (at least once).
    positions = json.loads(state.read_text())["positions"] if state.exists() else {}
    assert all(p.get("last_event_id") != sent for hs in positions.values() for p in hs.values())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))
