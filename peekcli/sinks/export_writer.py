"""What an export hands its format's writer: the room's state and a summary of the range first,
then each event's JSON line, oldest first (`peekcli.export.job` reads them back from its spill).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class ExportSummary:
    """What a writer is told before the first event: the range asked and the one found."""

    homeserver: str
    since_ms: int | None
    until_ms: int | None
    oldest_ms: int | None
    newest_ms: int | None
    count: int


class ExportWriter(Protocol):
    """Formats the events, oldest first. `begin` gets the newest room's current state."""

    wants_state: bool

    def begin(self, room_id: str, state: list[dict[str, Any]], summary: ExportSummary) -> None: ...

    def write(self, line: bytes) -> None: ...

    def finish(self) -> None: ...


def event_of(line: bytes) -> Any:
    """A spilled line as an event again (a line that is not JSON reads as an unreadable event)."""
    try:
        return json.loads(line)
    except ValueError:
        return {"type": "(unreadable event)"}
