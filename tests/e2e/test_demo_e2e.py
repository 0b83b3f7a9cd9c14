"""`python -m tests.homeserver` prints commands to copy: each must work as printed, from the
checkout, before the venv is activated (it used to print `peek watch …`, and `peek` is not on
PATH then)."""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.homeserver import Homeserver, User, banner

ROOT = Path(__file__).resolve().parents[2]


def test_the_printed_watch_command_works_as_printed(
    synapse: Homeserver,
    alice: User,
    fresh_room: Callable[..., str],
    tmp_path: Path,
) -> None:
    localpart = f"demo{uuid.uuid4().hex[:8]}"
    room = fresh_room(alias_localpart=localpart)
    synapse.send_text(alice, room, "hello demo")
    alias = f"#{localpart}:{synapse.server_name}"
    text = banner(synapse, alice, room, alias, cwd=ROOT)  # a newcomer runs it in the checkout
    lines = text.splitlines()
    printed = lines[lines.index("Watch the room:") + 1].strip()
    assert shlex.split(printed)[0] in (".venv/bin/peek", "peek") or "/" in shlex.split(printed)[0]
    # A shell without the venv on PATH, in the checkout, runs the line as printed.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PEEK_STATE_FILE": str(tmp_path / "state.json"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    done = subprocess.run(
        ["/bin/sh", "-c", f"{printed} --json --history 1 --max-events 1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["content"]["body"] == "hello demo"
