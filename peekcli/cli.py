"""The click app: the `peek` group and its commands, each in `peekcli/commands/`.

Commands load lazily: `peek --help`, `--version` and completion import only click, this file and
`peekcli.commands.common`/`output`; a command's module (its options, its imports) loads when that
command runs, shows its help or completes an argument. Start-up is paid on every TAB press and
cron run (target: ≤ 1.3× `python -c "import click"`, see tests/bench). A new command goes into
`COMMANDS` with the first paragraph of its help (tests/unit/test_startup.py checks it).
requests, rich and platformdirs are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import TYPE_CHECKING

import click

from peekcli import __version__
from peekcli.commands import output
from peekcli.commands.common import CONTEXT
from peekcli.errors import help_epilog

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

#: Command name → (module in peekcli.commands, attribute, first paragraph of its help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "watch": ("stream", "watch", "Follow ROOM live, printing every event as it arrives."),
    "snapshot": (
        "stream",
        "snapshot",
        "Print everything new in ROOM since the last run, save the position, exit.",
    ),
    "export": ("export", "export", "Write ROOM's history, oldest first, to stdout or FILE."),
    "rooms": (
        "rooms",
        "rooms",
        "List the public rooms of SERVER (a server name like example.org, or a URL).",
    ),
    "info": (
        "info",
        "info",
        "Show what peek can tell about ROOM before watching it, and whether it can.",
    ),
    "doctor": (
        "info",
        "doctor",
        "Check what HOMESERVER supports and which stream `peek watch` would use there.",
    ),
    "state": ("state", "state", "Inspect and edit saved stream positions (never shows tokens)."),
    "completion": ("completion", "completion", "Print the shell completion script for SHELL."),
    "login": (
        "auth",
        "login",
        "Log in to HOMESERVER, so peek can watch its rooms where guests are refused.",
    ),
    "whoami": (
        "auth",
        "whoami",
        "Show who peek is logged in as on HOMESERVER (all stored logins by default).",
    ),
    "logout": ("auth", "logout", "End peek's login on HOMESERVER and forget it."),
}


def _columns() -> int:
    """`shutil.get_terminal_size().columns` without importing shutil (and bz2, lzma with it)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(click.HelpFormatter):
    """click's formatter, measuring the terminal as click does, minus shutil's import time."""

    def __init__(
        self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None
    ) -> None:
        if width is None and click.formatting.FORCED_WIDTH is None:
            width = max(min(_columns(), max_width or 80) - 2, 50)
        super().__init__(indent_increment, width, max_width)


class _Context(click.Context):
    formatter_class = _HelpFormatter


class LazyGroup(click.Group):
    """A group that imports a command's module on first use (see the module docstring)."""

    context_class = _Context

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attr, _ = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"peekcli.commands.{module}"), attr)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click's, but a typo is matched against every command: click only offers the loaded
        ones, and in a real run none is loaded yet (`peek wach` → "Did you mean 'watch'?")."""
        no_such = getattr(click.exceptions, "NoSuchCommand", None)  # click ≥ 8.4
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            if no_such is None or not isinstance(exc, no_such):
                raise
            raise no_such(args[0], possibilities=self.list_commands(ctx), ctx=ctx) from None

    def _short_help(self, name: str, limit: int = 45) -> str | None:
        """A command's line for lists (None: hidden), without importing it if it is lazy."""
        if name in COMMANDS:
            # A stand-in command, so that click truncates the line exactly as its own.
            return click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)
        command = self.commands[name]
        return None if command.hidden else command.get_short_help_str(limit)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `peek --help`, from `COMMANDS`: no command module is imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (name, line) for name in names if (line := self._short_help(name, limit)) is not None
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names, from `COMMANDS`: completing `peek wa<TAB>` imports no command module."""
        from click.shell_completion import CompletionItem

        results = [
            CompletionItem(name, help=line)
            for name in self.list_commands(ctx)
            if name.startswith(incomplete) and (line := self._short_help(name)) is not None
        ]
        # Options of `peek` itself (what click.Group adds after its command names).
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results


@click.group(cls=LazyGroup, context_settings=CONTEXT, epilog=help_epilog("peek"))
@click.version_option(__version__, "-V", "--version", prog_name="peek")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log every request (method, URL, status) to stderr."
)
@click.option("-q", "--quiet", is_flag=True, help="No notes, warnings or status lines on stderr.")
def cli(verbose: bool, quiet: bool) -> None:
    """Follow world-readable Matrix rooms from the terminal, without joining them.

    \b
    Examples:
      peek watch '#lobby:example.org'             follow a room live
      peek watch '#lobby:example.org' --json | jq -r .content.body
      peek snapshot '#lobby:example.org' --json   print what is new since last time, exit
      peek -v snapshot '#lobby:example.org'       the same, logging each request to stderr
      peek rooms example.org --search linux       public rooms, and which ones peek can watch
    """
    click.get_current_context().obj = output.OutputContext(verbose=verbose, quiet=quiet)


def _degrade_unencodable_output() -> None:
    """Under PYTHONIOENCODING=ascii or a C locale, a character the terminal's encoding lacks
    (an event's `é`, a `·` of the layout) prints as `?` instead of ending the run."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(errors="replace")


def main() -> None:
    _degrade_unencodable_output()
    from peekcli.rlimit import raise_open_file_limit

    raise_open_file_limit()
    try:
        cli(prog_name="peek")
    except SystemExit as exc:
        if exc.code != 1:
            raise
        # click answers a closed stdout (EPIPE, e.g. `peek --help | head -n 1`) with exit 1
        # after wrapping the streams in its (_)PacifyFlushWrapper: make it the documented 141.
        import sys

        from peekcli.errors import EXIT_PIPE

        if type(sys.stdout).__name__.lstrip("_") == "PacifyFlushWrapper":
            raise SystemExit(EXIT_PIPE) from None
        raise
