"""The click app: the `peek` group and its commands, each in `peekcli/commands/`.

Only click and the command modules (which import nothing heavy at top level) load for `--help`,
`--version` and completion; requests, rich and platformdirs are imported inside the commands.
"""

from __future__ import annotations

import click

from peekcli import __version__
from peekcli.commands import completion, output, state, stream
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
    """
    output.verbose = verbose
    output.quiet = quiet


cli.add_command(stream.watch)
cli.add_command(stream.snapshot)
cli.add_command(state.state)
cli.add_command(completion.completion)


def main() -> None:
    cli(prog_name="peek")
