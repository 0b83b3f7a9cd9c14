"""Regressions found by using peek as a user would, on the real Synapse, across commands."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.peekproc import json_lines, peek_command, peek_env, run_peek
from tests.homeserver import Homeserver, User


@pytest.mark.parametrize("command", [("snapshot",), ("export", "--format", "text")], ids=" ".join)
def test_pretty_output_into_a_closed_pipe_exits_141_and_skips_nothing(
    synapse: Homeserver,
    alice: User,
    fresh_room: Callable[..., str],
    tmp_path: Path,
    command: tuple[str, ...],
) -> None:
    """rich exits 1 on a broken pipe by default: `peek snapshot ROOM | head` (pretty output)
    and `peek export --format text | head` ended with a silent exit 1 instead of 141."""
    room = fresh_room()
    synapse.send_text(alice, room, "nobody read this")
    state = tmp_path / "state.json"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is already gone
    try:
        result = subprocess.run(
            [*peek_command(), *command, room, "--homeserver", synapse.base_url],
            env=peek_env(state),
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, b"")
    # Nothing reached a reader, so nothing is skipped: the next run shows the message.
    after = run_peek("snapshot", room, "--homeserver", synapse.base_url, "--json", state_file=state)
    assert after.returncode == 0, after.stderr
    texts = [e["content"]["body"] for e in json_lines(after.stdout) if "body" in e["content"]]
    assert texts == ["nobody read this"]
