"""A room id the server does not know: `info`, `snapshot`, `watch` and `export` all say the room
was not found on that server (exit 4), where they used to say HTTP 400 (exit 1) or "not
world-readable" (exit 3). A room that exists but is private still gets exit 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.peekproc import run_peek
from tests.homeserver import Homeserver

COMMANDS = [("info",), ("snapshot",), ("watch", "--json"), ("export",)]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("room", ["!doesnotexist:localhost", "!doesnotexist:elsewhere.test"])
def test_an_unknown_room_id_is_not_found_on_that_server(
    synapse: Homeserver, tmp_path: Path, command: tuple[str, ...], room: str
) -> None:
    result = run_peek(
        command[0], room, *command[1:], "-s", synapse.base_url, state_file=tmp_path / "s.json"
    )
    assert (result.returncode, result.stdout) == (4, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"peek: room {room} not found on {synapse.base_url} "), line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_private_room_is_still_forbidden(
    synapse: Homeserver, private_room: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = run_peek(
        command[0],
        private_room,
        *command[1:],
        "-s",
        synapse.base_url,
        state_file=tmp_path / "s.json",
    )
    assert result.returncode == 3, result.stderr
    assert "not world-readable" in result.stderr or "not watchable" in result.stdout
