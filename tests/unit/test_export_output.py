"""`export -o` never destroys what FILE names and never writes through a planted link.

A regular FILE is built in `FILE.part` and renamed into place; renaming over a FIFO or a
device would replace it with a regular file (as root, `-o /dev/null` replaced /dev/null), so
those are written directly, as stdout is. `FILE.part` is created exclusively and never through
a symbolic link, which in a shared sticky /tmp another user can plant to make peek overwrite
a file of the victim's.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.hostilehs import HostileServer, message

EVENTS = [f"$ev{n}" for n in range(1, 6)]


@pytest.fixture
def hs(hostile: HostileServer) -> HostileServer:
    hostile.history = [message(n) for n in range(1, 6)]
    return hostile


@pytest.fixture
def where(tmp_path: Path) -> Path:
    """A directory holding only what the test and the export put there."""
    path = tmp_path / "here"
    path.mkdir()
    return path


def export(peek: Any, hs: HostileServer, out: Path | str, *args: str) -> Any:
    return peek("export", hs.room, "-s", hs.url, "-o", str(out), *args)


def ids(data: bytes) -> list[str]:
    return [json.loads(line)["event_id"] for line in data.splitlines()]


def test_a_fifo_is_written_to_and_stays_a_fifo(hs: HostileServer, peek: Any, where: Path) -> None:
    fifo = where / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so peek's open does not block
    try:
        result = export(peek, hs, fifo)
        assert result.exit_code == 0, result.stderr
        assert stat.S_ISFIFO(fifo.lstat().st_mode)
        assert ids(os.read(reader, 1 << 16)) == EVENTS
    finally:
        os.close(reader)
    assert sorted(p.name for p in where.iterdir()) == ["pipe"]  # no .part, no temp file


def test_a_character_device_is_written_to_not_replaced(
    hs: HostileServer, peek: Any, where: Path
) -> None:
    # Through a link, so that a peek without the fix replaces the link, never /dev/null itself.
    null = where / "null"
    null.symlink_to("/dev/null")
    result = export(peek, hs, null)
    assert result.exit_code == 0, result.stderr
    assert null.is_symlink() and stat.S_ISCHR(null.stat().st_mode)
    assert sorted(p.name for p in where.iterdir()) == ["null"]


def test_dev_stdout_writes_to_what_the_shell_opened(hs: HostileServer, tmp_path: Path) -> None:
    was_link = os.path.islink("/dev/stdout")
    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"event_id": "$before"}\n')
    with open(log, "ab") as out:  # `peek export … -o /dev/stdout >> log.jsonl`
        done = subprocess.run(
            [sys.executable, "-m", "peekcli", "export", hs.room, "-s", hs.url, "-o", "/dev/stdout"],
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert ids(log.read_bytes()) == ["$before", *EVENTS]
    assert os.path.islink("/dev/stdout") == was_link


def test_a_socket_is_refused(hs: HostileServer, peek: Any, where: Path) -> None:
    path = where / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        result = export(peek, hs, path)
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"peek: -o {path} is not a regular file, FIFO or character device: refused\n"
    )
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_resume_onto_a_fifo_is_a_usage_error(hs: HostileServer, peek: Any, where: Path) -> None:
    fifo = where / "pipe"
    os.mkfifo(fifo)
    result = export(peek, hs, fifo, "--resume")
    assert result.exit_code == 2
    assert "--resume needs -o FILE to be a regular file" in result.stderr


def test_a_planted_part_link_is_not_followed(hs: HostileServer, peek: Any, where: Path) -> None:
    victim = where / "victim.txt"
    victim.write_text("precious\n")
    out = where / "out.jsonl"
    Path(f"{out}.part").symlink_to(victim)
    result = export(peek, hs, out)
    assert result.exit_code == 0, result.stderr
    assert victim.read_text() == "precious\n"
    assert ids(out.read_bytes()) == EVENTS
    assert sorted(p.name for p in where.iterdir()) == ["out.jsonl", "victim.txt"]


def test_resume_refuses_a_planted_part_link(hs: HostileServer, peek: Any, where: Path) -> None:
    victim = where / "victim.txt"
    victim.write_text("precious\n")
    out = where / "out.jsonl"
    Path(f"{out}.part").symlink_to(victim)
    Path(f"{out}.part.json").write_text("{}")
    result = export(peek, hs, out, "--resume")
    assert result.exit_code == 1
    assert "is not a regular file of yours: refused" in result.stderr
    assert victim.read_text() == "precious\n"
    assert not out.exists()


def test_a_regular_file_is_still_replaced_whole(hs: HostileServer, peek: Any, where: Path) -> None:
    out = where / "out.jsonl"
    out.write_text("old content that is longer than nothing\n" * 100)
    result = export(peek, hs, out)
    assert result.exit_code == 0, result.stderr
    assert ids(out.read_bytes()) == EVENTS
