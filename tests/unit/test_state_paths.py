"""A state file named where none can live is refused naming the path the user gave.

`--state-file /some/file/state.json` (the parent is a file) used to complain about
`credentials.json`, a file the user never named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.mockhs import HS, ROOM


@pytest.mark.parametrize(
    "args",
    [("info", ROOM, "-s", HS), ("snapshot", ROOM, "-s", HS), ("state", "list"), ("whoami",)],
    ids=lambda a: a[0] if a[0] != "state" else "state list",
)
@pytest.mark.parametrize("how", ["option", "env"])
def test_a_state_file_under_a_file_is_refused_naming_it(
    tmp_path: Path, args: tuple[str, ...], how: str
) -> None:
    from click.testing import CliRunner

    from peekcli.cli import cli

    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    given = blocker / "state.json"
    if how == "env":
        result = CliRunner().invoke(cli, list(args), env={"PEEK_STATE_FILE": str(given)})
    else:
        result = CliRunner().invoke(cli, [*args, "--state-file", str(given)])
    assert result.exit_code == 2, result.output
    last = result.stderr.splitlines()[-1]
    assert f"{given}: {blocker} is a file" in last, last
    assert "credentials" not in result.stderr and ".lock" not in result.stderr
    assert blocker.read_text() == "mine\n"


def test_a_state_file_in_a_new_folder_is_still_fine(tmp_path: Path, peek: Any) -> None:
    result = peek("state", "list", "--state-file", str(tmp_path / "new" / "deeper" / "s.db"))
    assert result.exit_code == 0, result.stderr
