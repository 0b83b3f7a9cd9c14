"""`peek state`: list, forget and locate saved positions. Tokens are never shown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from peekcli.commands.common import (
    CONTEXT,
    guarded,
    homeserver_option,
    note,
    safe,
    state_file_option,
)
from peekcli.commands.completion import complete_rooms
from peekcli.errors import PeekError, help_epilog


@click.group(context_settings=CONTEXT, epilog=help_epilog("state"))
def state() -> None:
    """Inspect and edit saved stream positions (never shows tokens)."""


_state_file = state_file_option()


def _store(state_file: Path | None) -> Any:
    from peekcli.commands import output
    from peekcli.state import StateStore, default_state_path

    return StateStore(state_file or default_state_path(), output.current().note)


@state.command("path", epilog=help_epilog("state path"))
@_state_file
def state_path(state_file: Path | None) -> None:
    """Print the state file's path.

    \b
    Example:
      cat "$(peek state path)"
    """
    click.echo(str(_store(state_file).path))


@state.command("list", epilog=help_epilog("state list"))
@_state_file
@click.option("--json", "as_json", is_flag=True, help="One JSON object per room.")
def state_list(state_file: Path | None, as_json: bool) -> None:
    """List rooms with a saved position: room, alias, homeserver, last update, position.

    Reads only the state file (no network); tokens live in the credentials file and are
    never shown.

    \b
    Example:
      peek state list --json | jq -r .room_id
    """

    def run() -> None:
        import json

        store = _store(state_file)
        rows = [
            {
                "homeserver": hs,
                "room_id": room_id,
                "alias": pos.alias,
                "kind": pos.kind,
                "position": pos.token,
                "last_event_id": pos.last_event_id,
                "partial": pos.partial,
                "updated": pos.updated,
            }
            for hs, room_id, pos in store.positions()
        ]
        if as_json:
            for row in rows:
                click.echo(json.dumps(row))
            return
        if not rows:
            note(f"no saved positions in {store.path}")
            return
        header = ("ROOM", "ALIAS", "HOMESERVER", "UPDATED", "POSITION")
        keys = ("room_id", "alias", "homeserver", "updated", "position")
        table = [header] + [tuple(safe(str(r[k] or "-")) for k in keys) for r in rows]
        if sys.stdout.isatty():
            import shutil

            table = fit_columns(table, shutil.get_terminal_size().columns)
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
        for line in table:
            cells = [cell.ljust(w) for cell, w in zip(line, widths, strict=False)]
            click.echo("  ".join([*cells, line[-1]]))

    guarded(run)


def fit_columns(table: list[tuple[str, ...]], width: int) -> list[tuple[str, ...]]:
    """A terminal's `state list`: one line per room, never wrapped (a wrapped table is garbage
    and a broken address unusable). The last columns go first (position, then update time,
    then homeserver); if the room and alias still do not fit, they are shortened in the middle
    with an ellipsis, keeping the server part. Piped output keeps every column whole."""
    gap = 2

    def total(rows: list[tuple[str, ...]]) -> int:
        columns = range(len(rows[0]))
        return sum(max(len(r[i]) for r in rows) for i in columns) + gap * (len(rows[0]) - 1)

    while total(table) > width and len(table[0]) > 2:
        table = [row[:-1] for row in table]
    if total(table) <= width:
        return table
    # Room and alias alone are too wide: share the width in proportion to what they need.
    room, alias = (max(len(row[i]) for row in table) for i in (0, 1))
    room_width = max(12, (width - gap) * room // (room + alias))
    alias_width = max(12, width - gap - room_width)
    return [(_middle(row[0], room_width), _middle(row[1], alias_width)) for row in table]


def _middle(text: str, width: int) -> str:
    """`text` cut to `width` characters with an ellipsis in the middle (ids end in a server)."""
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail :]


@state.command("forget", epilog=help_epilog("state forget"))
@_state_file
@click.argument("room", shell_complete=complete_rooms)
@homeserver_option("Only the position saved for this homeserver (default: every homeserver).")
def state_forget(state_file: Path | None, room: str, homeserver: str | None) -> None:
    """Forget the saved position of ROOM: the next run starts fresh (history, then live).

    ROOM is a room id, or an alias or link peek reached the room by. Refused (exit 6) while
    another peek is following the room.

    \b
    Example:
      peek state forget '#lobby:example.org'
    """

    def run() -> None:
        from peekcli.matrix.ids import normalize_homeserver, parse_room

        store = _store(state_file)
        hs = normalize_homeserver(homeserver) if homeserver else None
        wanted = parse_room(room).value  # not a room: exit 2 with the hint `watch` gives
        found = [
            (pos_hs, room_id, pos.alias)
            for pos_hs, room_id, pos in store.positions()
            if (hs is None or pos_hs == hs)
            and (
                wanted in (room_id, pos.alias)
                or (wanted.startswith("#") and store.known_alias(pos_hs, wanted) == room_id)
            )
        ]
        if not found:
            raise PeekError(f"no saved position for {room} in {store.path}")
        for pos_hs, room_id, alias in found:
            # A running peek would save the position again right away: refuse instead.
            with store.room_lock(pos_hs, room_id, wait=False, following=False):
                store.forget(pos_hs, room_id)
            name = f"{room_id} ({alias})" if alias else room_id
            click.echo(safe(f"forgot {name} on {pos_hs}"))

    guarded(run)
