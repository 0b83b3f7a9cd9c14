"""The terminal side of pretty output: a rich Console for stdout, and the header's room facts.

Colour only when stdout is a terminal (rich also honours NO_COLOR and FORCE_COLOR), unless
`--color`/`--no-color` says otherwise. Piped output is plain text with no wrapping, one event per
line block, so `grep` and `less` see whole messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import IO, Any

from rich.console import Console

from peekcli.render.pretty import RoomInfo


class PipeConsole(Console):
    """A Console that leaves a closed stdout to peek: rich's default exits 1 on a broken pipe,
    which would hide the documented quiet exit 141 (`peek watch … | head`)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console(stream: IO[str], color: bool | None) -> Console:
    """`color`: True forces styles, False removes them, None decides from the stream and env."""
    console = PipeConsole(
        file=stream,
        highlight=False,
        markup=False,
        emoji=False,
        force_terminal=True if color else None,
        no_color=True if color is False else None,
    )
    if not console.is_terminal:
        console.soft_wrap = True  # a pipe gets whole lines; the reader wraps if it wants
    return console


def room_info(
    room_id: str,
    state: Iterable[Any],
    *,
    resuming: bool,
    identity: str,
    from_token: bool = False,
) -> RoomInfo:
    """Header facts from room state events (initialSync's `state`, or GET /state)."""
    info = RoomInfo(room_id=room_id, resuming=resuming, identity=identity, from_token=from_token)
    members = 0
    for ev in state:
        if not isinstance(ev, Mapping):
            continue
        content = ev.get("content")
        content = content if isinstance(content, Mapping) else {}
        etype = ev.get("type")
        if etype == "m.room.name" and isinstance(content.get("name"), str):
            info.name = content["name"]
        elif etype == "m.room.topic" and isinstance(content.get("topic"), str):
            info.topic = content["topic"]
        elif etype == "m.room.canonical_alias" and isinstance(content.get("alias"), str):
            info.canonical_alias = content["alias"]
        elif etype == "m.room.member" and content.get("membership") == "join":
            members += 1
    info.members = members or None
    return info
