"""`peek export` on a terminal: the progress line never ends up glued to the data."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.e2e.peekproc import peek_command, peek_env
from tests.homeserver import Homeserver, User


def _on_a_terminal(args: list[str], state_file: Path, timeout: float = 60) -> tuple[int, bytes]:
    """Run peek with stdout and stderr on one pseudo-terminal; what the terminal received."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*peek_command(), *args],
        env=peek_env(state_file, TERM="xterm", COLUMNS="200"),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            seen += data
    finally:
        os.close(master)
        code = proc.wait(timeout=10)
    return code, bytes(seen)


def test_the_progress_line_is_erased_before_the_page(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    room = synapse.create_room(alice, world_readable=True, name="Terminal")
    for i in range(30):
        synapse.send_text(alice, room, f"line {i}")
    code, seen = _on_a_terminal(
        ["export", room, "--homeserver", synapse.base_url, "--format", "html"],
        tmp_path / "state.json",
    )
    assert code == 0, seen[-500:]
    assert b"fetched " in seen  # the progress line was shown on this terminal
    before, found, _ = seen.partition(b"<!DOCTYPE html>")
    assert found
    # Whatever progress was drawn, the last thing before the page erased it.
    last_line = before.rsplit(b"\n", 1)[-1]
    assert last_line.endswith(b"\r\x1b[K") or last_line == b"", last_line
    assert b"fetched" not in last_line.rsplit(b"\r\x1b[K", 1)[-1]
