"""Start-up: `peek --help`, `--version` and completion load no command module (issue 6).

peek runs from shells, cron and every TAB press, so these three must cost little more than
importing click: the command modules (their options, their imports) load only for the command
that runs. The command list of `peek --help` comes from `peekcli.cli.COMMANDS`, so that table
must say exactly what the commands' own help says.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from peekcli.cli import COMMANDS, cli

#: What a start-up may load from peek: the group, the shared helpers, nothing else.
BASE = {"peekcli", "peekcli.cli", "peekcli.commands", "peekcli.commands.common",
        "peekcli.commands.output", "peekcli.errors"}  # fmt: skip


def _loaded(args: list[str], **env: str) -> set[str]:
    """peekcli modules imported by one real `peek ARGS` process (and its output)."""
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('\\nMODULES', *sorted(m for m in sys.modules "
        "if m.startswith('peekcli')), file=sys.stderr))\n"
        f"sys.argv = ['peek', *{args!r}]\n"
        "from peekcli.cli import main\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stderr.splitlines() if x.startswith("MODULES"))
    return set(line.split()[1:])


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_load_no_command_module(args: list[str]) -> None:
    assert _loaded(args) <= BASE


def test_completing_a_command_name_loads_only_that_command() -> None:
    loaded = _loaded([], _PEEK_COMPLETE="bash_complete", COMP_WORDS="peek wa", COMP_CWORD="1")
    assert "peekcli.commands.stream" in loaded  # `watch` lives there
    others = {f"peekcli.commands.{m}" for m in ("auth", "export", "info", "rooms", "state")}
    assert not loaded & others, loaded
    # ...and nothing of the core: no client, no state file, no renderer.
    assert {m for m in loaded if not m.startswith("peekcli.commands.")} <= BASE, loaded


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_list_says_what_each_command_says(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command)
    assert command.name == name
    assert not command.hidden
    first_paragraph = (command.help or "").split("\n\n")[0]
    assert COMMANDS[name][2] == " ".join(first_paragraph.split()), (
        f"peekcli/cli.py COMMANDS[{name!r}] must be the first paragraph of its help"
    )


def test_help_lists_every_command_with_its_line() -> None:
    out = CliRunner().invoke(cli, ["--help"], terminal_width=200).stdout
    for name, (_, _, line) in COMMANDS.items():
        assert f"  {name}" in out and line in out, name


def test_every_command_is_reachable() -> None:
    assert cli.list_commands(click.Context(cli)) == sorted(COMMANDS)
    result = CliRunner().invoke(cli, ["nonsense"])
    assert result.exit_code == 2 and "No such command" in result.output
