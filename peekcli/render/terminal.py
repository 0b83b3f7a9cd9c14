"""The pretty sink: a rich Console on stdout fed by `PrettyRenderer`.

Colour only when stdout is a terminal (rich also honours NO_COLOR and FORCE_COLOR), unless
`--color`/`--no-color` says otherwise. Piped output is plain text with no wrapping, one event per
line block, so `grep` and `less` see whole messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import IO, Any

from rich.console import Console

from peekcli.render.pretty import PrettyRenderer, RoomInfo
from peekcli.render.reader import reader_gone


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


class PrettySink:
    """Renders each delivered batch to the console; the header comes first, from the room's state.

    Events are held until `flush` (the follower flushes once per batch, before saving its
    position), so that a batch's relations fold into their targets: the history shows a message
    edited, with its reactions, instead of one line per edit and reaction.
    """

    def __init__(self, console: Console, renderer: PrettyRenderer) -> None:
        self.console = console
        self.renderer = renderer
        self.pending: list[dict[str, Any]] = []

    def header(self, info: RoomInfo, state: Iterable[Mapping[str, Any]]) -> None:
        self.renderer.learn_state(state)
        self.console.print(self.renderer.header(info))

    def write(self, event: dict[str, Any]) -> None:
        self.pending.append(event)

    def flush(self) -> None:
        batch, self.pending = self.pending, []  # taken first: a failing print never repeats it
        for line in self.renderer.render_batch(batch):
            self.console.print(line)
        self.console.file.flush()

    def reader_gone(self) -> bool:
        return reader_gone(self.console.file)
