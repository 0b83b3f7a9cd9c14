"""`peek export --format text`: the room's history as a text file people can read.

Each event (oldest first) goes to the same `PrettyRenderer` `peek watch` uses, so a message reads
the same in the terminal and in the file: that rendering without colour, wrapped at a fixed width
with the renderer's hanging indent. No network I/O happens here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, BinaryIO

from rich.text import Text

from peekcli.media import media_in
from peekcli.render.pretty import PrettyRenderer
from peekcli.render.sanitize import one_line
from peekcli.render.timeline import Entry, Timeline
from peekcli.sinks.export_writer import ExportSummary, event_of
from peekcli.sinks.terminal import PipeConsole

#: Columns of the text rendering (long lines wrap under the message column).
WIDTH = 100
#: Events a relation may come after its target and still fold into it in the text export;
#: later ones read as notifications ("alice edited a message: …").
FOLD_WINDOW = 2000


class _RoomBoundary:
    """With --follow-predecessors the export runs through several rooms: mark each switch."""

    def __init__(self) -> None:
        self.room: str | None = None

    def lines(self, event: Any) -> list[Text]:
        room = event.get("room_id") if isinstance(event, dict) else None
        if not isinstance(room, str):
            return []
        changed = self.room is not None and room != self.room
        self.room = room
        if not changed:
            return []
        return [Text(f"── continued in {one_line(room, 120)} (room upgrade) ──", "bold")]


class TextWriter:
    """The pretty rendering, without colour, as UTF-8 text."""

    wants_state = True

    def __init__(
        self,
        out: BinaryIO,
        *,
        width: int = WIDTH,
        media: Callable[[str], str | None] | None = None,
    ) -> None:
        self.media = media
        self.stream = io.TextIOWrapper(out, encoding="utf-8", newline="\n", write_through=True)
        self.console = PipeConsole(
            file=self.stream,
            width=width,
            color_system=None,
            no_color=True,
            force_terminal=False,
            force_interactive=False,
            highlight=False,
            markup=False,
            emoji=False,
            legacy_windows=False,
        )
        self.renderer = PrettyRenderer(seconds=True)
        self.boundary = _RoomBoundary()
        # Relations fold into their targets (edits applied, reactions summed) within a window.
        self.timeline = Timeline(window=FOLD_WINDOW)

    def begin(self, room_id: str, state: list[dict[str, Any]], summary: ExportSummary) -> None:
        self.renderer.learn_state(state)

    def write(self, line: bytes) -> None:
        event = event_of(line)
        if not isinstance(event, dict):
            self._print(self.renderer.render(event))
            return
        marks = self.boundary.lines(event)
        if marks:  # a new room: nothing of the old one folds into it
            self._release(self.timeline.finish())
            self._print(marks)
        self._release(self.timeline.add(event))

    def _release(self, entries: list[Entry]) -> None:
        for entry in entries:
            self._print(self.renderer.render_entry(entry))
            if self.media is not None:
                for item in media_in(entry.event):
                    local = self.media(item.url)
                    if local is not None:
                        label = "thumbnail" if item.kind == "thumbnail" else "file"
                        self.console.print(Text(f"{' ' * 9}saved {label}: {local}"))

    def _print(self, texts: list[Text]) -> None:
        for text in texts:
            self.console.print(text)

    def finish(self) -> None:
        self._release(self.timeline.finish())
        self.stream.flush()
        self.stream.detach()  # the binary stream stays open: it belongs to the caller
