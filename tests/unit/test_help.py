"""Every command explains itself: help for each option, an example for each command."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from peekcli.cli import cli


def all_commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []

    def walk(prefix: str, group: click.Group) -> None:
        for name in group.list_commands(click.Context(group)):
            command = group.get_command(click.Context(group), name)
            assert command is not None
            out.append((f"{prefix} {name}".strip(), command))
            if isinstance(command, click.Group):
                walk(f"{prefix} {name}", command)

    walk("", cli)
    return out


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=lambda v: str(v))
def test_each_command_has_a_summary_an_example_and_option_help(
    name: str, command: click.Command
) -> None:
    assert command.help and command.get_short_help_str(), name
    if not isinstance(command, click.Group):
        assert "Example" in command.help, f"`peek {name}` has no example in its help"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"`peek {name}` option {param.opts} has no help"
    result = CliRunner().invoke(cli, [*name.split(), "--help"], prog_name="peek")
    assert result.exit_code == 0 and f"Usage: peek {name}" in result.stdout


def test_typos_get_a_suggestion() -> None:
    result = CliRunner().invoke(cli, ["wach"])
    assert result.exit_code == 2 and "Did you mean 'watch'?" in result.stderr
    result = CliRunner().invoke(cli, ["watch", "!r:x", "--jsn"])
    assert result.exit_code == 2 and "'--json'" in result.stderr and "Did you mean" in result.stderr


def test_typos_get_a_suggestion_in_a_real_run() -> None:
    """In a fresh process no command module is loaded yet (lazy commands): the suggestion
    must still come. (In-process, the collection above has loaded them all.)"""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "peekcli", "wach"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == "Error: No such command 'wach'. Did you mean 'watch'?"
