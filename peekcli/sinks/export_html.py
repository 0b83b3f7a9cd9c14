"""`peek export --format html`: the page `render.htmlpage` builds, written to the export's file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, BinaryIO

from peekcli.render.htmlpage import HtmlPage, PageInfo
from peekcli.sinks.export_writer import ExportSummary, event_of


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
        self.out = out
        self.page = HtmlPage(media=media, tz=tz)

    def begin(self, room_id: str, state: list[dict[str, Any]], summary: ExportSummary) -> None:
        info = PageInfo(
            homeserver=summary.homeserver,
            since_ms=summary.since_ms,
            until_ms=summary.until_ms,
            oldest_ms=summary.oldest_ms,
            newest_ms=summary.newest_ms,
            count=summary.count,
        )
        self.out.write(self.page.begin(room_id, state, info).encode("utf-8", "replace"))

    def write(self, line: bytes) -> None:
        text = self.page.write(event_of(line))
        if text:
            self.out.write(text.encode("utf-8", "replace"))

    def finish(self) -> None:
        self.out.write(self.page.finish().encode("utf-8", "replace"))
        self.out.flush()
