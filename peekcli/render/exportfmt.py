"""`peek export --format text|html`: the pretty rendering of a room's history, as a file.

Both writers feed each event (oldest first) to the same `PrettyRenderer` `peek watch` uses, so a
message reads the same in the terminal, in the text file and on the page. Text is that rendering
without colour, wrapped at a fixed width with the renderer's hanging indent. HTML is one
self-contained page: rich's segments become `<span style=…>` with inline styles (what rich's own
`export_html(inline_styles=True)` does, streamed here so a year of history never sits in memory),
every piece of event text passes through `html.escape`, and the page has no script at all (its
Content-Security-Policy would not run one anyway). No network I/O happens here.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

from rich.console import Console
from rich.terminal_theme import DEFAULT_TERMINAL_THEME
from rich.text import Text

from peekcli import __version__
from peekcli.render.matrix_html import SPOILER, SPOILER_MARK
from peekcli.render.pretty import PrettyRenderer
from peekcli.render.sanitize import one_line
from peekcli.render.terminal import PipeConsole
from peekcli.render.timeline import Timeline

#: Columns of the text and HTML renderings (long lines wrap under the message column).
WIDTH = 100


def _event(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return {"type": "(unreadable event)"}


def _room_title(room_id: str, state: Iterable[Mapping[str, Any]]) -> str:
    """The room's name (or canonical alias), else its id: for a page title, sanitised."""
    found: dict[str, str] = {}
    for event in state:
        content = event.get("content")
        if not isinstance(content, Mapping) or event.get("state_key") != "":
            continue
        for etype, key in (("m.room.name", "name"), ("m.room.canonical_alias", "alias")):
            value = content.get(key)
            if event.get("type") == etype and isinstance(value, str) and value.strip():
                found[etype] = value
    title = found.get("m.room.name") or found.get("m.room.canonical_alias") or room_id
    return one_line(title, 200)


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


#: Events a relation may come after its target and still fold into it (edits applied, reactions
#: summed); later ones read as notifications ("alice edited a message: …").
FOLD_WINDOW = 2000


def _folded(
    renderer: PrettyRenderer, timeline: Timeline, boundary: _RoomBoundary, event: Any
) -> list[Text]:
    """The lines of whatever the timeline releases once `event` is added."""
    if not isinstance(event, dict):
        return renderer.render(event)
    out: list[Text] = []
    marks = boundary.lines(event)
    if marks:  # a new room: nothing of the old one folds into it
        for entry in timeline.finish():
            out.extend(renderer.render_entry(entry))
        out.extend(marks)
    for entry in timeline.add(event):
        out.extend(renderer.render_entry(entry))
    return out


def _rest(renderer: PrettyRenderer, timeline: Timeline) -> list[Text]:
    return [text for entry in timeline.finish() for text in renderer.render_entry(entry)]


class TextWriter:
    """The pretty rendering, without colour, as UTF-8 text."""

    wants_state = True

    def __init__(self, out: BinaryIO, *, width: int = WIDTH) -> None:
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
        self.timeline = Timeline(window=FOLD_WINDOW)

    def begin(self, room_id: str, state: list[dict[str, Any]]) -> None:
        self.renderer.learn_state(state)

    def write(self, line: bytes) -> None:
        for text in _folded(self.renderer, self.timeline, self.boundary, _event(line)):
            self.console.print(text)

    def finish(self) -> None:
        for text in _rest(self.renderer, self.timeline):
            self.console.print(text)
        self.stream.flush()
        self.stream.detach()  # the binary stream stays open: it belongs to the caller


_PAGE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="peek {version}">
<title>{title}</title>
<style>
body {{ color: {fg}; background-color: {bg}; margin: 1.5em; }}
h1 {{ font-family: sans-serif; font-size: 1.3em; margin-bottom: 0.2em; }}
p.about {{ font-family: sans-serif; font-size: 0.85em; opacity: 0.7; margin-top: 0; }}
details.spoiler {{ display: inline; }}
details.spoiler summary {{ display: inline; cursor: pointer; }}
pre {{ font-family: Menlo, "DejaVu Sans Mono", Consolas, "Liberation Mono", monospace;
       font-size: 0.9em; line-height: 1.35; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="about">{about}</p>
<pre>"""

_PAGE_TAIL = """</pre>
</body>
</html>
"""


class HtmlWriter:
    """One self-contained HTML page of the pretty rendering (inline styles, no script)."""

    wants_state = True

    def __init__(self, out: BinaryIO, *, width: int = WIDTH, homeserver: str = "") -> None:
        self.out = out
        self.homeserver = homeserver
        self.theme = DEFAULT_TERMINAL_THEME
        self.console = Console(
            file=io.StringIO(),
            width=width,
            color_system="truecolor",
            force_terminal=True,
            force_interactive=False,
            highlight=False,
            markup=False,
            emoji=False,
            legacy_windows=False,
        )
        self.renderer = PrettyRenderer(seconds=True, spoilers=True)
        self.boundary = _RoomBoundary()
        self.timeline = Timeline(window=FOLD_WINDOW)
        self._styles: dict[Any, str] = {}

    def begin(self, room_id: str, state: list[dict[str, Any]]) -> None:
        self.renderer.learn_state(state)
        title = _room_title(room_id, state)
        about = f"{one_line(room_id, 300)}"
        if self.homeserver:
            about += f" · read from {one_line(self.homeserver, 300)}"
        about += f" · exported {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by peek"
        head = _PAGE_HEAD.format(
            version=html.escape(__version__),
            title=html.escape(title),
            about=html.escape(about),
            fg=self.theme.foreground_color.hex,
            bg=self.theme.background_color.hex,
        )
        self.out.write(head.encode("utf-8"))

    def write(self, line: bytes) -> None:
        texts = _folded(self.renderer, self.timeline, self.boundary, _event(line))
        self.out.write("".join(self._html(text) for text in texts).encode("utf-8", "replace"))

    def _html(self, text: Text) -> str:
        parts: list[str] = []
        spoiler = False  # inside a <details> holding spoiler text (revealed by a click, no script)
        for segment in self.console.render(text, self.console.options):
            if segment.control or not segment.text:
                continue
            meta = segment.style.meta if segment.style is not None else {}
            escaped = html.escape(segment.text, quote=True)
            if SPOILER_MARK in meta:
                if spoiler:
                    parts.append("</details>")
                parts.append(f'<details class="spoiler"><summary>{escaped}</summary>')
                spoiler = True
                continue
            if spoiler and SPOILER not in meta and segment.text.strip():
                parts.append("</details>")
                spoiler = False
            css = self._css(segment.style)
            parts.append(f'<span style="{css}">{escaped}</span>' if css else escaped)
        if spoiler:
            parts.append("</details>")
        return "".join(parts)

    def _css(self, style: Any) -> str:
        if style is None or not style:
            return ""
        css = self._styles.get(style)
        if css is None:
            css = self._styles[style] = html.escape(style.get_html_style(self.theme), quote=True)
        return css

    def finish(self) -> None:
        rest = "".join(self._html(text) for text in _rest(self.renderer, self.timeline))
        self.out.write(rest.encode("utf-8", "replace"))
        self.out.write(_PAGE_TAIL.encode("utf-8"))
        self.out.flush()
