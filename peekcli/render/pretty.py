"""Matrix events as chat-client lines for a terminal (`peek watch` without `--json`).

`PrettyRenderer` is the facade: it folds a batch's relations (`timeline.fold`: edits applied and
marked "(edited)", reactions summed under their message, thread roots with their reply count,
deleted messages as one line), asks the renderer of each event's family (`dispatch.HANDLERS`, a pure
function of the event and the room context) for the body, and lays out the line block: time gutter,
date lines when the day changes, the reply/thread context on the block's own first line, and
continuation lines hanging under the message column. `render` is total: malformed events produce a
line, never an exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from peekcli.render import dispatch
from peekcli.render.context import DIM, TIME, WARN, Ev, Room, as_map, as_num, colour
from peekcli.render.families import messages
from peekcli.render.sanitize import one_line
from peekcli.render.timeline import Entry, fold

__all__ = ["Line", "PrettyRenderer", "RoomInfo", "room_info"]

_MIN_BODY_WIDTH = 16  # below this, hanging indentation wastes more than it helps


# -- output lines -------------------------------------------------------------------------------


class Line(Text):
    """One rendered line block whose wrapped and continuation lines hang under the message column.

    It is an ordinary `Text` (gutter + body) for anything that reads `.plain` or copies it; when
    printed by a rich Console, `__rich__` swaps in a renderable that wraps the body to the width
    left after the gutter and indents every further line by the gutter's width.
    """

    __slots__ = ("body", "gutter", "hang")

    def __init__(self, gutter: Text, body: Text) -> None:
        super().__init__(end="\n")
        if body.style:  # Text.render ignores a base style on span-less lines: make it a span
            flat = Text(end="")
            flat.append_text(body)
            body = flat
        self.gutter = gutter
        self.body = body
        self.hang = gutter.cell_len
        self.append_text(gutter)
        self.append_text(body)

    def __rich__(self) -> _Hanging:
        return _Hanging(self)


class _Hanging:
    __slots__ = ("line",)

    def __init__(self, line: Line) -> None:
        self.line = line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line = self.line
        width = options.max_width - line.hang
        if options.no_wrap and "\n" in line.body.plain:
            # Piped: no wrapping, but the body's own further lines still hang under the message
            # column, so that no line of a message can pass for an event of its own.
            yield from line.gutter.render(console)
            for index, row in enumerate(line.body.split("\n", allow_blank=True)):
                if index and row.plain:
                    yield Segment(" " * line.hang)
                yield from row.render(console)
                yield Segment.line()
            return
        if options.no_wrap or width < _MIN_BODY_WIDTH:
            yield from Text.__rich_console__(line, console, options)
            return
        body = line.body
        text = body.plain
        newline = Segment.line()
        yield from line.gutter.render(console)
        if "\n" not in text and not text.endswith(" ") and body.cell_len <= width:
            yield from body.render(console)  # the common short message: nothing to wrap
            yield newline
            return
        pad = Segment(" " * line.hang)
        rows = body.wrap(console, width, justify="default", overflow="fold", tab_size=4)
        for index, row in enumerate(rows):
            if index:
                yield pad
            row.rstrip()
            yield from row.render(console)
            yield newline
        if not rows:
            yield newline

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Text.__rich_measure__(self.line, console, options)


@dataclass
class RoomInfo:
    """Header data, filled by the caller from the initialSync state or GET /rooms/{id}/state."""

    room_id: str
    name: str | None = None
    canonical_alias: str | None = None
    topic: str | None = None
    members: int | None = None
    resuming: bool = False
    from_token: bool = False  # resuming from a token given with --from, not the saved one
    identity: str | None = None  # e.g. "guest" or "@bob:example.org"


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


class PrettyRenderer:
    """Formats events as `HH:MM sender: body` line blocks and keeps the room context to explain
    them (names, what earlier messages said, polls)."""

    def __init__(
        self,
        *,
        seconds: bool = False,
        room_label: str | None = None,
        tz: dt.tzinfo | None = None,
        max_cache: int = 2000,
        homeserver: str | None = None,
        spoilers: bool = False,
    ) -> None:
        self._seconds = seconds
        self._tz = tz
        self.room = Room(
            max_cache=max_cache,
            homeserver=one_line(homeserver.rstrip("/"), 300) if homeserver else "",
            spoilers=spoilers,
        )
        self._last_day: dt.date | None = None
        self._label = Text()
        if room_label:
            self._label.append(one_line(room_label, 20), colour(room_label))
            self._label.append(" ")
        time_width = 8 if seconds else 5
        self._no_time = " " * time_width
        self._unknown_time = "--:--:--" if seconds else "--:--"

    # -- public --------------------------------------------------------------------------------

    def learn_state(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Remember names (and message first words) from events without printing them."""
        try:
            for event in events:
                if isinstance(event, Mapping):
                    self._learn(Ev.of(event))
        except Exception:  # a broken state list must not stop the watcher
            return

    def header(self, info: RoomInfo) -> RenderableType:
        """A compact banner: name, address, topic, member count, resume state, identity."""
        out = Text()
        title = info.name or info.canonical_alias or info.room_id
        out.append(one_line(title, 120), Style(bold=True))
        if info.canonical_alias and info.name:
            out.append("  ")
            out.append(one_line(info.canonical_alias, 120), Style(color="cyan"))
        if title != info.room_id:  # without a name or alias, the id is the title: once
            out.append("  ")
            out.append(one_line(info.room_id, 120), DIM)
        if info.topic:
            out.append("\n")
            out.append(one_line(info.topic, 300), Style(italic=True))
        facts: list[str] = []
        if isinstance(info.members, int):
            facts.append(f"{info.members} member{'' if info.members == 1 else 's'}")
        if info.from_token:
            facts.append("starting from the --from token")
        else:
            facts.append("resuming from saved position" if info.resuming else "starting fresh")
        if info.identity:
            facts.append(f"watching as {one_line(info.identity, 120)}")
        out.append("\n")
        out.append(" · ".join(facts), DIM)
        return out

    def render(self, event: Mapping[str, Any]) -> list[Text]:
        """The lines for one event on its own (nothing to fold it with): a live notification for
        an edit, reaction or redaction of an earlier message."""
        if not isinstance(event, Mapping):
            body = Text(f"malformed event (a {type(event).__name__}, not an object)", WARN)
            return [Line(self._gutter(None, timed=False), body)]
        try:
            entries = fold([event])
        except Exception:  # a mapping whose every read may raise: the guard names it
            entries = [Entry(event)]
        return [line for entry in entries for line in self.render_entry(entry)]

    def render_batch(self, events: Iterable[Mapping[str, Any]]) -> list[Text]:
        """The lines for a batch (oldest first), its relations folded into their targets."""
        out: list[Text] = []
        batch = list(events)
        bad = [e for e in batch if not isinstance(e, Mapping)]
        if bad:  # keep the order, but a non-object cannot be folded: render one by one
            for event in batch:
                out.extend(self.render(event) if event in bad else self.render_batch([event]))
            return out
        try:
            entries = fold(batch)
        except Exception:  # never let one odd event stop the batch: render them one by one
            return [line for event in batch for line in self.render(event)]
        for entry in entries:
            out.extend(self.render_entry(entry))
        return out

    def render_entry(self, entry: Entry) -> list[Text]:
        """The lines for one folded entry (see `peekcli.render.timeline`)."""
        try:
            return self._render(entry)
        except Exception as exc:  # last resort: never let one event stop the watcher
            try:
                etype = one_line(entry.event.get("type"), 80)
            except Exception:
                etype = "?"
            body = Text(f"⚠ could not render {etype} event ({type(exc).__name__})", WARN)
            return [Line(self._gutter(None, timed=False), body)]

    # -- plumbing ------------------------------------------------------------------------------

    def _when(self, ts: object) -> dt.datetime | None:
        seconds = as_num(ts)
        if seconds is None:
            return None
        try:
            return dt.datetime.fromtimestamp(seconds / 1000, tz=self._tz)
        except (OverflowError, OSError, ValueError):
            return None

    def _gutter(self, when: dt.datetime | None, *, timed: bool) -> Text:
        gutter = self._label.copy()
        if when is not None:
            stamp = f"{when.hour:02d}:{when.minute:02d}"
            if self._seconds:
                stamp = f"{stamp}:{when.second:02d}"
        else:
            stamp = self._unknown_time if timed else self._no_time
        gutter.append(stamp, TIME)
        gutter.append(" ")
        return gutter

    def _body(self, entry: Entry) -> Text | None:
        event = entry.event
        room = self.room
        deleted = entry.deleted
        ev = Ev.of(event, entry.content)
        if deleted is not None and ev.state_key is None:
            return messages.deleted(ev, room, deleted.sender, deleted.reason)
        handler = dispatch.HANDLERS.get(ev.type, dispatch.unknown)
        body = handler(ev, room)
        if body is None:
            return None
        if entry.edited:
            body.append(" (edited)", DIM)
        reactions = entry.reaction_list()
        if reactions:
            body.append("\n")
            body.append(" · ".join(f"{one_line(r.key, 32)} {r.count}" for r in reactions))
        thread = entry.thread
        if thread is not None and thread.count:
            body.append("\n")
            body.append(f"🧵 {thread.count} {'reply' if thread.count == 1 else 'replies'}", DIM)
        return body

    def _render(self, entry: Entry) -> list[Text]:
        event = entry.event
        body = self._body(entry)
        if body is None:
            return []
        when = self._when(event.get("origin_server_ts"))
        out: list[Text] = []
        if when is not None and when.date() != self._last_day:
            self._last_day = when.date()
            stamp = f"── {when:%A} {when.day} {when:%B %Y} ──"
            out.append(Line(self._label.copy(), Text(stamp, DIM)))
        timed = "event_id" in event or "origin_server_ts" in event
        out.append(Line(self._gutter(when, timed=timed), body))
        return out

    def _learn(self, ev: Ev) -> None:
        if ev.type == "m.room.member" and ev.state_key is not None:
            self.room.update_member(ev)
        elif ev.type == "m.room.message":
            messages.learn(ev, self.room)
        elif ev.type == "m.reaction":
            key = as_map(ev.content.get("m.relates_to")).get("key")
            self.room.remember(ev, "reaction", one_line(key, 32))
