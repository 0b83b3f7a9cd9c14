"""`peek export --format text|html`: the room's history as a file people can read.

Text feeds each event (oldest first) to the same `PrettyRenderer` `peek watch` uses, so a message
reads the same in the terminal and in the file: that rendering without colour, wrapped at a fixed
width with the renderer's hanging indent. HTML is a page of its own (`render.htmlpage`): semantic
markup, relations folded like a chat client, sanitised like Element, no script. No network I/O
happens here.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from rich.text import Text

from peekcli.media import media_in
from peekcli.render.htmlpage import HtmlPage, PageInfo
from peekcli.render.pretty import PrettyRenderer
from peekcli.render.sanitize import one_line
from peekcli.render.terminal import PipeConsole
from peekcli.render.timeline import Entry, Timeline

#: Columns of the text and HTML renderings (long lines wrap under the message column).
WIDTH = 100
#: Events a relation may come after its target and still fold into it in the text export;
#: later ones read as notifications ("alice edited a message: …").
FOLD_WINDOW = 2000


def _event(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return {"type": "(unreadable event)"}


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

    def begin(self, room_id: str, state: list[dict[str, Any]], summary: RangeFacts) -> None:
        self.renderer.learn_state(state)

    def write(self, line: bytes) -> None:
        event = _event(line)
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


class RangeFacts(Protocol):
    """What the export knows of its range when writing starts (`export.ExportSummary`)."""

    homeserver: str
    since_ms: int | None
    until_ms: int | None
    oldest_ms: int | None
    newest_ms: int | None
    count: int


class HtmlWriter:
    """One self-contained HTML page (see `render.htmlpage`): semantic, readable, no script."""

    wants_state = True

    def __init__(
        self,
        out: BinaryIO,
        *,
        media: Callable[[str], str | None] | None = None,
        tz: dt.tzinfo | None = None,
    ) -> None:
        self.page = HtmlPage(out, media=media, tz=tz)

    def begin(self, room_id: str, state: list[dict[str, Any]], summary: RangeFacts) -> None:
        info = PageInfo(
            homeserver=summary.homeserver,
            since_ms=summary.since_ms,
            until_ms=summary.until_ms,
            oldest_ms=summary.oldest_ms,
            newest_ms=summary.newest_ms,
            count=summary.count,
        )
        self.page.begin(room_id, state, info)

    def write(self, line: bytes) -> None:
        self.page.write(_event(line))

    def finish(self) -> None:
        self.page.finish()
