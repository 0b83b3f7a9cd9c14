"""Tables on a narrow terminal (60 columns): columns are dropped or shortened, an address is never
broken across lines (`peek rooms` used to split aliases mid-word; `peek state list` wrapped)."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

from rich.console import Console

from peekcli.commands.rooms import directory_table
from peekcli.matrix.directory import PublicRoom

LONG_ALIAS = "#a-rather-long-room-alias-for-testing:matrix.example.org"
LONG_ID = "!7SQJZSmvy1ve0RdKDtcUWaUQBAW6muE3XCS5DZs9MKo:matrix.example.org"


def rendered(width: int) -> list[str]:
    rooms = [
        PublicRoom(LONG_ID, LONG_ALIAS, "Room with a long name", "a topic " * 8, 1234, True),
        PublicRoom("!short:hs.test", None, None, None, 3, False),
    ]
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=True, color_system=None).print(
        directory_table(rooms, "https://matrix.example.org")
    )
    return buf.getvalue().splitlines()


def test_rooms_at_60_columns_keeps_addresses_whole_or_shortened() -> None:
    lines = rendered(60)
    assert all(len(line) <= 60 for line in lines)
    text = "\n".join(lines)
    # Whole, or cut with an ellipsis: never a piece of it on the next line.
    alias_line = next(line for line in lines if "#a-rather" in line)
    assert LONG_ALIAS in alias_line or "…" in alias_line
    body = [line for line in lines if line.startswith("│")]
    assert not [line for line in body if "example.org" in line and "#a-rather" not in line]
    assert "!short:hs.test" in text and "1234" in text and "yes" in text


def test_rooms_wide_shows_everything() -> None:
    text = "\n".join(rendered(200))
    assert LONG_ALIAS in text and "a topic a topic" in text


def on_a_terminal(args: list[str], columns: int, env: dict[str, str]) -> list[str]:
    """Run `peek ARGS` with stdout on a pseudo-terminal `columns` wide, as a user would."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "COLUMNS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "peekcli", *args], stdout=slave, stderr=subprocess.PIPE, env=env
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    return out.decode().replace("\r\n", "\n").splitlines()


def test_state_list_at_60_columns_drops_columns_and_shortens_ids(tmp_path: Path) -> None:
    from peekcli.state import Position, StateStore

    state = tmp_path / "state.json"
    store = StateStore(state)
    hs = "https://matrix.example.org"
    store.save(
        hs, LONG_ID, Position("s12345_678_9_0_1_1_1_1_0_1_1_1_1_1", "events", alias=LONG_ALIAS)
    )
    env = {"PEEK_STATE_FILE": str(state)}
    narrow = on_a_terminal(["state", "list"], 60, env)
    assert narrow[0].split()[0] == "ROOM" and all(len(line) <= 60 for line in narrow)
    assert len(narrow) == 2  # one line per room: nothing wrapped
    assert "…" in narrow[1] and "POSITION" not in narrow[0]
    wide = on_a_terminal(["state", "list"], 250, env)
    assert LONG_ID in wide[1] and LONG_ALIAS in wide[1] and "POSITION" in wide[0]
