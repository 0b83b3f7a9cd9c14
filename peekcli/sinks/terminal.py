"""The pretty sink: a rich Console on stdout fed by `PrettyRenderer`.

Colour only when stdout is a terminal (rich also honours NO_COLOR and FORCE_COLOR), unless
`--color`/`--no-color` says otherwise (peekcli/render/terminal.py builds the console).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console

from peekcli.render.pretty import PrettyRenderer, RoomInfo
from peekcli.sinks.reader import reader_gone


class PrettySink:
    """Renders each event to the console; the header comes first, from the room's state."""

    def __init__(self, console: Console, renderer: PrettyRenderer) -> None:
        self.console = console
        self.renderer = renderer
        self._pending_header: Any = None

    def header(
        self, info: RoomInfo, state: Iterable[Mapping[str, Any]], *, defer: bool = False
    ) -> None:
        """`defer`: print it with the first event, so that a snapshot with nothing new writes
        nothing at all (cron mails any output)."""
        self.renderer.learn_state(state)
        banner = self.renderer.header(info)
        if defer:
            self._pending_header = banner
        else:
            self.console.print(banner)

    def write(self, event: dict[str, Any]) -> None:
        if self._pending_header is not None:
            banner, self._pending_header = self._pending_header, None
            self.console.print(banner)
        for line in self.renderer.render(event):
            self.console.print(line)

    def flush(self) -> None:
        self.console.file.flush()

    def reader_gone(self) -> bool:
        return reader_gone(self.console.file)
