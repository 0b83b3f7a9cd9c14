"""`peek state`: list, forget and locate saved positions. Tokens are never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from peekcli.commands.common import CONTEXT, guarded, safe
from peekcli.errors import PeekError


@click.group(context_settings=CONTEXT)
def state() -> None:
    """Inspect and edit saved stream positions (never shows tokens)."""


state_file_option = click.option(
    "--state-file",
    envvar="PEEK_STATE_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file to use.  [env: PEEK_STATE_FILE]",
)


def _store(state_file: Path | None) -> Any:
    from peekcli.state import StateStore, default_state_path

    return StateStore(state_file or default_state_path())


@state.command("path")
@state_file_option
def state_path(state_file: Path | None) -> None:
    """Print the state file's path.

    \b
    Example:
      cat "$(peek state path)"
    """
    click.echo(str(_store(state_file).path))


@state.command("list")
@state_file_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per room.")
def state_list(state_file: Path | None, as_json: bool) -> None:
    """List rooms with a saved position.

    \b
    Example:
      peek state list --json | jq -r .room_id
    """

    def run() -> None:
        import json

        for hs, room_id, pos in _store(state_file).positions():
            row = {
                "homeserver": hs,
                "room_id": room_id,
                "alias": pos.alias,
                "kind": pos.kind,
                "position": pos.token,
                "last_event_id": pos.last_event_id,
                "updated": pos.updated,
            }
            if as_json:
                click.echo(json.dumps(row))
            else:
                name = f"{room_id} ({pos.alias})" if pos.alias else room_id
                click.echo(safe(f"{name}  {hs}  {pos.updated or '-'}  {pos.token}"))

    guarded(run)


@state.command("forget")
@state_file_option
@click.argument("room")
@click.option("--homeserver", "-s", envvar="PEEK_HOMESERVER", metavar="URL")
def state_forget(state_file: Path | None, room: str, homeserver: str | None) -> None:
    """Forget the saved position of ROOM (a room id or an alias peek reached it by).

    \b
    Example:
      peek state forget '#lobby:example.org'
    """

    def run() -> None:
        from peekcli.rooms import normalize_homeserver

        store = _store(state_file)
        hs = normalize_homeserver(homeserver) if homeserver else None
        targets = {room}
        for pos_hs, room_id, pos in store.positions():
            if pos.alias == room and (hs is None or pos_hs == hs):
                targets.add(room_id)
        gone = sum(store.forget(hs, target) for target in targets)
        if not gone:
            raise PeekError(f"no saved position for {room}")
        click.echo(safe(f"forgot {room}"))

    guarded(run)
