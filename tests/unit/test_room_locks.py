"""Room locks: one lock file per state file, a byte of it per room, never a file per room."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from peekcli.cli import cli
from peekcli.state import Position, StateStore
from tests.unit.mockhs import HS, ROOM

_HOLDER = """
import sys
from contextlib import ExitStack
from pathlib import Path
from peekcli.state import StateStore
store = StateStore(Path(sys.argv[1]))
with ExitStack() as stack:
    for room in sys.argv[2:]:
        stack.enter_context(store.room_lock("https://hs.test", room))
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process following ROOM with `tmp_path / "a.db"`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "a.db"), ROOM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)


def forget(state_file: Path) -> Result:
    StateStore(state_file).save(HS, ROOM, Position("t1"))
    return CliRunner().invoke(cli, ["state", "forget", ROOM, "--state-file", str(state_file)])


def test_a_room_followed_with_one_state_file_is_free_with_another_in_the_same_folder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    other = forget(tmp_path / "b.db")
    assert (other.exit_code, other.stdout) == (0, f"forgot {ROOM} on {HS}\n")
    same = forget(tmp_path / "a.db")
    assert same.exit_code == 6
    assert same.stderr == f"peek: another peek is following {ROOM} with this state file\n"


def test_within_one_process_too_locks_belong_to_their_state_file(tmp_path: Path) -> None:
    with StateStore(tmp_path / "a.db").room_lock(HS, ROOM):
        assert forget(tmp_path / "b.db").exit_code == 0
        assert forget(tmp_path / "a.db").exit_code == 6


def test_a_lock_is_free_again_once_its_holder_is_gone(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "a.db"), ROOM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    assert forget(tmp_path / "a.db").exit_code == 6
    proc.kill()  # kill -9: the kernel drops its locks
    proc.wait()
    assert forget(tmp_path / "a.db").exit_code == 0


def _open_files(folder: Path) -> list[str]:
    """The files under `folder` this process has open, one entry per descriptor."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{folder}/"):
            found.append(target[len(str(folder)) + 1 :])
    return sorted(found)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_thousand_rooms_held_cost_one_open_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.save(HS, ROOM, Position("t1"))
    with ExitStack() as stack:
        for n in range(1000):
            stack.enter_context(store.room_lock(HS, f"!r{n}:hs.test"))
        # The database, its journal and shared memory, and the one lock file.
        assert _open_files(tmp_path) == [
            "state.db",
            "state.db-shm",
            "state.db-wal",
            "state.db.lock",
        ]
    # And another process sees each of them held.
    with ExitStack() as stack:
        for n in range(0, 1000, 100):
            stack.enter_context(store.room_lock(HS, f"!r{n}:hs.test"))
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, str(tmp_path / "state.db")],
            capture_output=True,
            text=True,
        )
    assert probe.stdout.split() == ["busy"] * 10 + ["free"], probe.stderr


_PROBE = """
import sys
from pathlib import Path
from peekcli.errors import BusyError
from peekcli.state import StateStore
store = StateStore(Path(sys.argv[1]))
for room in [f"!r{n}:hs.test" for n in range(0, 1000, 100)] + ["!r1:hs.test"]:
    try:
        with store.room_lock("https://hs.test", room, wait=False, following=False):
            print("free")
    except BusyError:
        print("busy")
"""
