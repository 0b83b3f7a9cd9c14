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
import sysconfig
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from peekcli.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]

#: What a start-up may load from peek: the group, the shared helpers, nothing else.
BASE = {"peekcli", "peekcli.cli", "peekcli.commands", "peekcli.commands.common",
        "peekcli.commands.output", "peekcli.errors", "peekcli.rlimit"}  # fmt: skip


def _loaded(args: list[str], **env: str) -> set[str]:
    """Modules one real `peek ARGS` process imports beyond what `import click` does.

    Run with `-S` and the paths set by hand, as a regular (non-editable) install would run: the
    editable install's import hook would hide which standard modules peek pulls in itself.
    """
    paths = [str(ROOT), sysconfig.get_paths()["purelib"]]
    report = "print('MODULES', *sorted(sys.modules), file=sys.stderr)"
    code = (
        f"import sys, atexit\nsys.path[:0] = {paths!r}\n"
        f"import click\nbefore = set(sys.modules)\n"
        f"atexit.register(lambda: {report.replace('sys.modules', 'set(sys.modules) - before')})\n"
        f"sys.argv = ['peek', *{args!r}]\n"
        "from peekcli.cli import main\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stderr.splitlines() if x.startswith("MODULES"))
    return set(line.split()[1:])


#: Never on the start-up path: network, rendering, and pathlib (3 ms on a 2-core box).
HEAVY = {"requests", "urllib3", "rich", "platformdirs", "pathlib", "json", "socket", "ssl"}

COMPLETE_WA = {"_PEEK_COMPLETE": "bash_complete", "COMP_WORDS": "peek wa", "COMP_CWORD": "1"}


@pytest.mark.parametrize(
    ("args", "env"), [(["--version"], {}), (["--help"], {}), ([], COMPLETE_WA)]
)
def test_start_up_loads_no_command_module_and_nothing_heavy(
    args: list[str], env: dict[str, str]
) -> None:
    loaded = _loaded(args, **env)
    assert {m for m in loaded if m.startswith("peekcli")} <= BASE, sorted(loaded)
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


@pytest.mark.parametrize("incomplete", ["", "w", "wa", "s", "x", "-", "--v"])
def test_completion_offers_what_click_would_with_every_command_loaded(incomplete: str) -> None:
    ctx = click.Context(cli)
    lazy = [(item.value, item.help) for item in cli.shell_complete(ctx, incomplete)]
    eager = [(item.value, item.help) for item in click.Group.shell_complete(cli, ctx, incomplete)]
    assert lazy == eager
    assert ("watch" in dict(lazy)) == "watch".startswith(incomplete)


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


@pytest.mark.parametrize("columns", ["30", "60", "99", "100", "250", "", "junk", "-5"])
def test_help_is_as_wide_as_clicks_own(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    """`peek --help` measures the terminal without shutil, with click's result."""
    from peekcli.cli import _HelpFormatter

    monkeypatch.setenv("COLUMNS", columns)
    for max_width in (None, 80, 100):
        assert _HelpFormatter(max_width=max_width).width == (
            click.HelpFormatter(max_width=max_width).width
        )
