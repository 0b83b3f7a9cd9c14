"""Regressions found by using peek as a user would, across commands (see each test's docstring)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_into_closed_pipe(*args: str, state_file: Path) -> subprocess.CompletedProcess[bytes]:
    """`peek ARGS | reader` where the reader has already gone: every write meets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEEK_")}
    env["PEEK_STATE_FILE"] = str(state_file)
    try:
        return subprocess.run(
            [sys.executable, "-m", "peekcli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [("--help",), ("watch", "--help"), ("state", "path"), ("completion", "bash")],
    ids=" ".join,
)
def test_output_into_a_closed_pipe_exits_141_quietly(args: tuple[str, ...], tmp_path: Path) -> None:
    """click answers EPIPE with exit 1, which the README's table reserves for failures;
    `peek … | head` must end with the documented 141 and nothing on stderr."""
    result = run_into_closed_pipe(*args, state_file=tmp_path / "state.json")
    assert (result.returncode, result.stderr) == (141, b"")
