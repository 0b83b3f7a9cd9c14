"""`peek rooms [SERVER]`: the public room directory, with what `peek watch` can follow."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from peekcli.commands.common import (
    Count,
    fail_usage,
    guarded,
    homeserver_option,
    note,
    state_file_option,
    token_option,
)
from peekcli.errors import help_epilog

if TYPE_CHECKING:
    from collections.abc import Iterable

    from peekcli.matrix.directory import PublicRoom


@click.command("rooms", epilog=help_epilog("rooms"))
@click.argument("server", required=False)
@click.option("--search", metavar="TERM", help="Only rooms whose name, alias or topic has TERM.")
@click.option(
    "--limit",
    type=Count(min=0),
    default=50,
    show_default=True,
    metavar="N",
    help="Show at most N rooms (0: the whole directory).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per room: room_id, alias, name, topic, members, world_readable, "
    "guest_can_join, join_rule, room_type.",
)
@homeserver_option("Client API URL to ask, instead of SERVER.")
@token_option("Access token, for servers whose directory needs one.")
@state_file_option("State file (discovery cache; credentials beside it).")
@click.option("--page-size", type=Count(1, 1000), default=100, hidden=True)
def rooms(server: str | None, **kw: Any) -> None:
    """List the public rooms of SERVER (a server name like example.org, or a URL).

    WATCH says whether the room is world-readable, i.e. whether `peek watch` can follow it
    without joining. Without SERVER, the homeserver from --homeserver, PEEK_HOMESERVER or the
    config file is asked. On a terminal the list is a table; piped, it is one room per line:
    address (alias or room id), members, watchable (yes/no), name, topic, separated by tabs.

    \b
    Examples:
      peek rooms example.org
      peek rooms example.org --search linux --limit 10
      peek rooms example.org --json | jq -r 'select(.world_readable) | .alias // .room_id'
    """
    ctx = click.get_current_context()
    if server and ctx.get_parameter_source("homeserver") == click.core.ParameterSource.COMMANDLINE:
        fail_usage("give SERVER or --homeserver, not both")
    guarded(lambda: _list(server, **kw))


def _list(
    server: str | None,
    *,
    search: str | None,
    limit: int,
    as_json: bool,
    homeserver: str | None,
    token: str | None,
    state_file: Path | None,
    page_size: int,
) -> None:
    from peekcli.commands import output
    from peekcli.connect import ConnectOptions, effective, open_server
    from peekcli.errors import UsageError
    from peekcli.matrix.directory import public_rooms

    where = ConnectOptions(homeserver, token, state_file, notice=output.current().note)
    if not server and not effective(homeserver, None)[0]:
        raise UsageError("whose directory? give a SERVER (peek rooms example.org) or --homeserver")
    hs = open_server(where, name=server, log=output.current().request_log)
    client, base = hs.client, hs.homeserver
    found = public_rooms(
        client,
        search=search,
        limit=limit or None,
        page_size=page_size,
        authenticate=lambda: hs.identity()[1],
    )
    if as_json:
        _json_lines(found)
    elif sys.stdout.isatty():
        _table(list(found), base, limit)
    else:
        _tab_separated(found)


def _json_lines(found: Iterable[PublicRoom]) -> None:
    from dataclasses import asdict

    from peekcli.render.jsonl import encode_event

    for room in found:
        sys.stdout.buffer.write(encode_event(asdict(room)))
        sys.stdout.buffer.flush()


def _tab_separated(found: Iterable[PublicRoom]) -> None:
    from peekcli.render.sanitize import one_line

    for room in found:
        fields = [
            room.address,
            str(room.members) if room.members is not None else "-",
            "yes" if room.world_readable else "no",
            room.name or "-",
            room.topic or "-",
        ]
        # one_line expands tabs and shows newlines as ⏎: a field never splits a line or a column.
        sys.stdout.write("\t".join(one_line(f, 300) for f in fields) + "\n")
    sys.stdout.flush()


def _table(found: list[PublicRoom], base: str, limit: int) -> None:
    from rich.console import Console

    from peekcli.render.sanitize import one_line

    if not found:
        note(f"no public rooms on {base}")
        return
    console = Console()
    console.print(directory_table(found, one_line(base, 200)))
    if limit and len(found) >= limit:
        note(f"showing the first {limit} rooms; --limit 0 shows them all")


def directory_table(found: list[PublicRoom], title: str) -> Any:
    """A rich table, laid out for the console it is printed on (see `_DirectoryTable`)."""
    return _DirectoryTable(found, title)


class _DirectoryTable:
    """The directory as a table built for the console's width when printed.

    Every server string is sanitized and added as plain text, never markup. An address is never
    broken across lines (a piece of an alias on the next line reads as another room): it stays
    on one line, shortened with an ellipsis when the column is too narrow; below 80 columns the
    topic column goes, so that name and address keep the room.
    """

    #: Narrower than this, the topic column is left out.
    TOPIC_MIN_WIDTH = 80

    def __init__(self, found: list[PublicRoom], title: str) -> None:
        self.found = found
        self.title = title

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from peekcli.render.sanitize import one_line

        topics = options.max_width >= self.TOPIC_MIN_WIDTH
        table = Table(
            title=Text(f"Public rooms on {self.title}"), title_justify="left", expand=False
        )
        table.add_column("Room", overflow="fold", ratio=2)
        table.add_column("Members", justify="right", no_wrap=True)
        table.add_column("Watch", no_wrap=True)
        if topics:
            table.add_column("Topic", overflow="fold", ratio=3)
        for room in self.found:
            address = Text(
                one_line(room.address, 255), style="cyan", no_wrap=True, overflow="ellipsis"
            )
            label = (
                Group(Text(one_line(room.name, 80), style="bold"), address)
                if room.name
                else address
            )
            watch = Text("yes", style="green") if room.world_readable else Text("no", style="dim")
            members = str(room.members) if room.members is not None else "-"
            cells: list[Any] = [label, members, watch]
            if topics:
                cells.append(Text(one_line(room.topic or "", 300)))
            table.add_row(*cells)
        yield table
