"""`peek state`: list, forget and locate saved positions. Tokens are never shown."""

from __future__ import annotations

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
    from peekcli.state import StateStore, default_state_path

    return StateStore(state_file or default_state_path())


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
        widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
        for line in table:
            cells = [cell.ljust(w) for cell, w in zip(line, widths, strict=False)]
            click.echo("  ".join([*cells, line[-1]]))

    guarded(run)


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
        try:
            wanted = parse_room(room).value
        except PeekError:
            wanted = room.strip()
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
