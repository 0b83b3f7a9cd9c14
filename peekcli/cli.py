"""The click app: the `peek` group and its commands, each in `peekcli/commands/`.

Only click and the command modules (which import nothing heavy at top level) load for `--help`,
`--version` and completion; requests, rich and platformdirs are imported inside the commands.
"""

from __future__ import annotations

import click

from peekcli import __version__
from peekcli.commands import auth, completion, output, state, stream
from peekcli.commands import export as export_command
from peekcli.commands import info as info_command
from peekcli.commands import rooms as rooms_command
from peekcli.commands.common import CONTEXT, EXIT_CODES


@click.group(context_settings=CONTEXT, epilog=EXIT_CODES)
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


cli.add_command(stream.watch)
cli.add_command(stream.snapshot)
cli.add_command(export_command.export)
cli.add_command(rooms_command.rooms)
cli.add_command(info_command.info)
cli.add_command(info_command.doctor)
cli.add_command(state.state)
cli.add_command(completion.completion)
cli.add_command(auth.login)
cli.add_command(auth.whoami)
cli.add_command(auth.logout)


def main() -> None:
    cli(prog_name="peek")
