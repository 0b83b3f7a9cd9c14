"""The click app: the `peek` group and its commands, each in `peekcli/commands/`.

Commands load lazily: `peek --help`, `--version` and completion import only click, this file and
`peekcli.commands.common`/`output`; a command's module (its options, its imports) loads when that
command runs, shows its help or completes an argument. Start-up is paid on every TAB press and
cron run (target: ≤ 1.3× `python -c "import click"`, see tests/bench). A new command goes into
`COMMANDS` with the first paragraph of its help (tests/unit/test_startup.py checks it).
requests, rich and platformdirs are imported inside the commands.
"""

from __future__ import annotations

import importlib

import click

from peekcli import __version__
from peekcli.commands import output
from peekcli.commands.common import CONTEXT, EXIT_CODES

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


class LazyGroup(click.Group):
    """A group that imports a command's module on first use (see the module docstring)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attr, _ = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"peekcli.commands.{module}"), attr)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `peek --help`, from `COMMANDS`: no command module is imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                line = click.Command(name, help=COMMANDS[name][2])  # click's own truncation
                rows.append((name, line.get_short_help_str(limit)))
            elif not self.commands[name].hidden:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT, epilog=EXIT_CODES)
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
    output.verbose = verbose
    output.quiet = quiet


def main() -> None:
    cli(prog_name="peek")
