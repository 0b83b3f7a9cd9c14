"""The state and credentials files against a hostile or careless neighbourhood.

A lock held by another process is waited for visibly and interruptibly; lock files are never
opened through a planted link; directories peek creates are 0700 whatever the umask; temp
files a killed writer left are removed; a damaged file (a position of the wrong shape, JSON or
TOML nested too deeply for the parser) is reported as corrupt, never a traceback, never
silently dropped and overwritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from peekcli.state import credentials_path_for
from tests.unit.hostilehs import HostileServer


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    """The state file of the test's `peek` runs, in directories that do not exist yet."""
    return tmp_path / "a" / "b" / "c" / "state.db"


@pytest.fixture
def here(state_file: Path) -> Path:
    """The state file's directory, created."""
    state_file.parent.mkdir(parents=True, mode=0o700)
    return state_file.parent


def snapshot(peek: Any, hs: HostileServer, *args: str) -> Any:
    return peek("snapshot", hs.room, "-s", hs.url, "--json", *args)


def start_peek(hs: HostileServer, state: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "peekcli", "snapshot", hs.room, "-s", hs.url, "--json",
         "--state-file", str(state), *extra],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def stderr_until(proc: subprocess.Popen[bytes], needle: bytes, seconds: float = 15) -> bytes:
    """What the child wrote on stderr until `needle` appeared (or the time ran out)."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen


def stopped_by_sigterm(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=5)
    finally:
        proc.kill()
        proc.wait()


def test_a_state_file_held_elsewhere_is_waited_for_visibly_and_sigterm_stops_it(
    hostile: HostileServer, peek: Any, here: Path, state_file: Path
) -> None:
    state = state_file
    assert snapshot(peek, hostile).exit_code == 0
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        # --reset: a write at once (a resume with nothing new writes nothing)
        proc = start_peek(hostile, state, "--reset")
        said = stderr_until(proc, b"waiting for the state file")
        assert b"waiting for the state file" in said, said
        assert stopped_by_sigterm(proc) == 143
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_quiet_silences_the_wait_for_a_state_file_held_elsewhere(
    hostile: HostileServer, peek: Any, here: Path, state_file: Path
) -> None:
    """`peek -q` keeps stderr for errors: the wait is told through the run's notice."""
    assert snapshot(peek, hostile).exit_code == 0
    holder = sqlite3.connect(state_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "peekcli", "-q", "snapshot", hostile.room, "-s", hostile.url,
             "--json", "--state-file", str(state_file), "--reset"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        # Well past the moment the notice is due (NOTICE_AFTER, 1 s, after the wait begins).
        said = stderr_until(proc, b"waiting", seconds=3)
        assert stopped_by_sigterm(proc) == 143
        assert proc.stderr is not None
        said += proc.stderr.read()
        assert b"waiting" not in said, said
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_credentials_file_held_elsewhere_is_waited_for_visibly_and_sigterm_stops_it(
    hostile: HostileServer, here: Path, state_file: Path
) -> None:
    state = state_file
    lock = Path(f"{credentials_path_for(state)}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another peek storing a token
    try:
        proc = start_peek(hostile, state)  # registers a guest: stores it
        said = stderr_until(proc, b"waiting for the lock of credentials file")
        assert b"waiting for the lock of credentials file" in said, said
        assert stopped_by_sigterm(proc) == 143
    finally:
        os.close(fd)


@pytest.mark.parametrize("name", ["state.db.lock", "credentials.json.lock"])
def test_a_lock_file_planted_as_a_link_is_refused(
    hostile: HostileServer, peek: Any, here: Path, state_file: Path, name: str
) -> None:
    target = here.parent / "elsewhere" / "created-by-peek"
    target.parent.mkdir()
    (here / name).symlink_to(target)
    result = snapshot(peek, hostile)
    assert result.exit_code == 1
    assert result.stderr == f"peek: the lock file {here / name} is a symbolic link: refused\n"
    assert not target.exists()


def test_directories_are_created_0700_under_umask_000(
    hostile: HostileServer, peek: Any, tmp_path: Path, state_file: Path
) -> None:
    old = os.umask(0)
    try:
        result = snapshot(peek, hostile)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_temp_files_a_killed_writer_left_are_removed(
    hostile: HostileServer, peek: Any, here: Path, state_file: Path
) -> None:
    stale = [here / f".credentials.json.{n}.tmp" for n in ("abc123", "zz_9")]
    for path in stale:
        path.write_text('{"half": ')
    other = here / ".something-else.tmp"
    other.write_text("not ours")
    result = snapshot(peek, hostile)  # stores the guest's token
    assert result.exit_code == 0, result.stderr
    assert not any(path.exists() for path in stale)
    assert other.exists()


def corrupt_position(state: Path, doc: str) -> None:
    with sqlite3.connect(state) as conn:
        conn.execute("UPDATE positions SET doc = ?", (doc,))
    conn.close()


@pytest.mark.parametrize(
    "doc", ['{"token": 5}', "[1, 2]", '"just a string"', "[" * 100_000 + "]" * 100_000]
)
def test_a_position_of_the_wrong_shape_is_corrupt_not_overwritten(
    hostile: HostileServer, peek: Any, here: Path, state_file: Path, doc: str
) -> None:
    state = state_file
    assert snapshot(peek, hostile).exit_code == 0
    corrupt_position(state, doc)
    result = snapshot(peek, hostile)
    assert result.exit_code == 1
    assert result.stderr == (
        f"peek: state file {state} is corrupt (a position has the wrong shape); "
        "move it aside to start over\n"
    )
    with sqlite3.connect(state) as conn:
        assert conn.execute("SELECT doc FROM positions").fetchall() == [(doc,)]
    conn.close()


def test_a_json_state_with_a_wrong_shaped_position_is_corrupt(
    hostile: HostileServer, peek: Any, here: Path, state_file: Path
) -> None:
    state = here / "state.json"
    doc = {"version": 1, "positions": {hostile.url: {hostile.room: {"token": ["s1"]}}}}
    state.write_text(json.dumps(doc))
    result = snapshot(peek, hostile)
    assert result.exit_code == 1
    assert "is corrupt (the position of" in result.stderr
    assert result.stderr.count("\n") == 1
    assert json.loads(state.read_text()) == doc


def test_a_credentials_file_nested_too_deeply_is_corrupt(
    hostile: HostileServer, peek: Any, here: Path, state_file: Path
) -> None:
    state = state_file
    creds = credentials_path_for(state)
    creds.write_text('{"version": 1, "homeservers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = snapshot(peek, hostile)
    assert result.exit_code == 1
    assert result.stderr == (
        f"peek: credentials file {creds} is corrupt (nested too deeply); move it aside to "
        "start over\n"
    )


def test_a_config_file_nested_too_deeply_is_corrupt(hostile: HostileServer, here: Path) -> None:
    config = here / "config.toml"
    config.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    done = subprocess.run(  # its own process: the parser's recursion stays out of pytest's
        [sys.executable, "-m", "peekcli", "snapshot", hostile.room, "-s", hostile.url,
         "--state-file", str(here / "state.db")],
        env={**os.environ, "PEEK_CONFIG": str(config)},
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    said = done.stderr.decode()
    assert done.returncode != 0
    assert "Traceback" not in said and str(config) in said
    assert said.count("\n") == 1
