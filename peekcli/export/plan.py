"""What an export asks for (`--since`, `--until`, `--limit`, `--follow-predecessors`) and how far
its walk got: the state written to the sidecar after every page, so `--resume` can go on."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from peekcli.errors import StateFileError, UsageError
from peekcli.matrix.client import JSON

SIDECAR_VERSION = 1

_RELATIVE = re.compile(r"(\d+)\s*(s|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# -- dates ---------------------------------------------------------------------------------------


def parse_when(text: str, *, end_of_day: bool = False, now: datetime | None = None) -> int:
    """`--since` / `--until` → milliseconds since the epoch (what `origin_server_ts` counts).

    Accepts an ISO date (`2024-05-01`: local midnight; with `end_of_day`, the last millisecond
    of that day, so `--until 2024-05-01` includes the whole day), an ISO date and time (without
    a zone: local time; `Z` or `+02:00` honoured) or a duration back from now (`90s`, `15m`,
    `12h`, `7d`, `2w`).
    """
    value = text.strip()
    now = now or datetime.now(UTC)
    relative = _RELATIVE.fullmatch(value)
    if relative:
        seconds = int(relative.group(1)) * _UNITS[relative.group(2).lower()]
        try:
            return _ms(now - timedelta(seconds=seconds))
        except OverflowError:
            raise UsageError(f"{text!r} reaches back too far") from None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"cannot read {text!r} as a date: give 2024-05-01, 2024-05-01T14:30, "
            "2024-05-01T14:30:00Z or a duration like 7d, 12h, 30m"
        ) from None
    date_only = "T" not in value.upper() and " " not in value and ":" not in value
    try:  # year 1 or 9999 can leave datetime's range once made local or moved a day
        if when.tzinfo is None:
            when = when.astimezone()  # naive: the user's local time
        if date_only and end_of_day:
            return _ms(when + timedelta(days=1)) - 1
        return _ms(when)
    except (OverflowError, ValueError, OSError):
        raise UsageError(f"{text!r} is out of the range of dates") from None


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def event_ts(event: JSON) -> int | None:
    """The event's `origin_server_ts`, when it is an int (the server's word: anything else is
    no time at all)."""
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


# -- what is asked, and how far the walk got ----------------------------------------------------


@dataclass
class ExportRange:
    """Which events: by server timestamp (inclusive), the newest `limit` of them, which rooms."""

    since_ms: int | None = None
    until_ms: int | None = None
    limit: int | None = None
    follow_predecessors: bool = False


@dataclass
class RoomWalk:
    """One room's backwards walk: `token` is the next page's `from` (None: the live end)."""

    room_id: str
    token: str | None = None
    done: bool = False
    #: `--until` was looked up with timestamp_to_event (whatever the answer): never again.
    jumped: bool = False


@dataclass
class ExportState:
    """Everything needed to go on with an export: written to the sidecar after each page."""

    homeserver: str
    room_id: str
    range: ExportRange
    rooms: list[RoomWalk] = field(default_factory=list)
    #: [offset, length] of each page in the spill, in the order fetched (newest first).
    segments: list[list[int]] = field(default_factory=list)
    count: int = 0
    oldest_ts: int | None = None
    #: The walk is over (start reached, --since/--limit satisfied): only the writing is left.
    finished: bool = False

    @property
    def committed(self) -> int:
        return sum(length for _, length in self.segments)

    def to_doc(self) -> JSON:
        return {"version": SIDECAR_VERSION, **asdict(self)}

    @classmethod
    def from_doc(cls, doc: Any) -> ExportState:
        try:
            if doc["version"] != SIDECAR_VERSION:
                raise ValueError("unknown version")
            rng = ExportRange(**doc["range"])
            rooms = [RoomWalk(**room) for room in doc["rooms"]]
            segments = [[int(off), int(length)] for off, length in doc["segments"]]
            return cls(
                homeserver=str(doc["homeserver"]),
                room_id=str(doc["room_id"]),
                range=rng,
                rooms=rooms,
                segments=segments,
                count=int(doc["count"]),
                oldest_ts=doc.get("oldest_ts"),
                finished=bool(doc["finished"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"the export's progress file is unreadable ({exc})") from None


@dataclass
class Progress:
    """What the progress line shows: events so far, the oldest date reached, the phase."""

    events: int
    oldest_ts: int | None
    room_id: str
    phase: Literal["fetching", "media", "writing"]


def ignore(*_: Any) -> None:
    """The default of every callback an export may be given (progress, warnings, commits)."""
    return None
