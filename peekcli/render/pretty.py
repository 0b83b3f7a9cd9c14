"""Matrix events as chat-client lines for a terminal (`peek watch` without `--json`).

The renderer is pure: it turns event dicts into rich `Text` lines and remembers just enough
(display names, first words of recent messages) to say who reacted to what, in bounded caches.
Every server string passes through `sanitize.clean`/`one_line` and is appended as plain text;
nothing from the server is ever parsed as rich markup. `render` is total: malformed events
produce a line, never an exception.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from peekcli.render.html import html_to_text
from peekcli.render.sanitize import clean, one_line

__all__ = ["Line", "PrettyRenderer", "RoomInfo"]

BODY_LIMIT = 4000  # characters of a message body shown before the "… [+N chars]" marker
BODY_LINES = 40  # lines of a message body shown before the "… [+N lines]" marker
NAME_LIMIT = 48
ID_LIMIT = 100
SNIPPET_WIDTH = 40
LIST_LIMIT = 6  # items named in summaries before "+N more"
_MIN_BODY_WIDTH = 16  # below this, hanging indentation wastes more than it helps

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_DIM = Style(dim=True)
_TIME = Style(dim=True)
_NOTICE = Style(dim=True)
_META = Style(dim=True, italic=True)
_TAG = Style(bold=True)
_EDIT = Style(color="yellow")
_DELETE = Style(color="red")
_WARN = Style(color="red", bold=True)
# Mid-tone xterm-256 colours: readable on dark and light backgrounds alike.
_PALETTE = tuple(
    Style(color=c, bold=True)
    for c in (
        "#d75f5f",
        "#5faf5f",
        "#d7875f",
        "#5f87d7",
        "#af5fd7",
        "#00afaf",
        "#af8700",
        "#d75f87",
        "#5f8700",
        "#8787d7",
        "#d78700",
        "#0087af",
    )
)
_MEDIA = {
    "m.image": "image",
    "m.file": "file",
    "m.audio": "audio",
    "m.video": "video",
    "m.sticker": "sticker",
}
_MXC = re.compile(
    r"mxc://([A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?)/([A-Za-z0-9_\-]+)"
)
#: Only ids servers generate (letters, digits, `._~+=-`): one is suggested as a command to paste.
_ROOM_ID = re.compile(r"![A-Za-z0-9._~+=\-]{1,255}(?::[A-Za-z0-9.\-:\[\]]{1,255})?")
_MXID = re.compile(r"@[^:\s]+:\S+")
_HISTORY = {
    "world_readable": "anyone (world_readable)",
    "shared": "members, including history from before they joined (shared)",
    "invited": "members, from when they were invited (invited)",
    "joined": "members, from when they joined (joined)",
}
_PL_DEFAULTS: dict[str, int] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}

V = TypeVar("V")


# -- small total helpers ------------------------------------------------------------------------


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) < 1e18 else None


def _strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _colour(key: str) -> Style:
    """A stable colour per id: crc32 (unlike hash()) is the same in every process."""
    return _PALETTE[zlib.crc32(key.encode("utf-8", "surrogatepass")) % len(_PALETTE)]


def _snippet(text: str, width: int = SNIPPET_WIDTH) -> str:
    """First words of a body, on one line, for "replying to alice: first words…"."""
    collapsed = " ".join(text[: width * 4].split())
    shown = one_line(collapsed, 0)
    if len(shown) <= width:
        return shown
    cut = shown.rfind(" ", 0, width)
    if cut < width // 2:
        cut = width
    return shown[:cut].rstrip() + "…"


def _strip_reply_fallback(body: str) -> str:
    """Drop the "> <@alice:hs> quoted" lines + blank line that old clients put atop a reply."""
    if not body.startswith(">"):
        return body
    lines = body.split("\n", 200)
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and lines[index] == "":
        return "\n".join(lines[index + 1 :])
    return body


def _human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _duration(ms: float) -> str:
    seconds = int(ms // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _value(value: object) -> str:
    """A content value, compactly, for summaries of unknown events."""
    if isinstance(value, str):
        return f"“{_snippet(value, 30)}”"
    if isinstance(value, Mapping):
        return f"{{{len(value)} keys}}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    return one_line(value, 30)


def _more(items: list[str], limit: int = LIST_LIMIT, total: int | None = None) -> str:
    """ "a, b, c (+N more)": `total` is the full count when only the head was formatted."""
    count = len(items) if total is None else total
    shown = ", ".join(items[:limit])
    return f"{shown} (+{count - limit} more)" if count > limit else shown


def _reason(content: Mapping[str, Any]) -> str:
    reason = content.get("reason")
    if reason is None or reason == "":
        return ""
    return f" (reason: {one_line(reason, 200)})"


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


# -- bounded memory -----------------------------------------------------------------------------


class _LRU(Generic[V]):
    """A mapping that forgets its least recently used entries: a watcher may run for weeks."""

    def __init__(self, size: int, on_evict: Callable[[str, V], None] | None = None) -> None:
        self._data: OrderedDict[str, V] = OrderedDict()
        self._size = size
        self._on_evict = on_evict

    def get(self, key: object) -> V | None:
        if not isinstance(key, str):
            return None
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            old_key, old_value = self._data.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(slots=True)
class _Seen:
    """What later events may need to say about an earlier one."""

    sender: str
    kind: str  # "message" or "reaction"
    snippet: str


class _Members:
    """Current display names, and which names are shared (so they get disambiguated)."""

    def __init__(self, size: int) -> None:
        self.names: _LRU[tuple[str | None, bool]] = _LRU(size, self._evicted)
        self._holders: dict[str, set[str]] = {}

    def _drop(self, name: str, user_id: str) -> None:
        holders = self._holders.get(name)
        if holders is not None:
            holders.discard(user_id)
            if not holders:
                del self._holders[name]

    def _evicted(self, user_id: str, entry: tuple[str | None, bool]) -> None:
        if entry[0] and entry[1]:
            self._drop(entry[0], user_id)

    def name(self, user_id: str) -> str | None:
        entry = self.names.get(user_id)
        return entry[0] if entry else None

    def update(self, user_id: str, name: str | None, current: bool) -> None:
        old = self.names.get(user_id)
        if old and old[0] and old[1]:
            self._drop(old[0], user_id)
        if name is not None and not name.strip():
            name = None
        self.names.put(user_id, (name, current))
        if name and current:
            self._holders.setdefault(name, set()).add(user_id)

    def label(self, user_id: str) -> str:
        name = self.name(user_id)
        uid = one_line(user_id, ID_LIMIT)
        if not name:
            return uid
        shown = one_line(name, NAME_LIMIT)
        if len(self._holders.get(name, ())) > 1 or (name != user_id and _MXID.fullmatch(name)):
            return f"{shown} ({uid})"
        return shown


# -- public API ---------------------------------------------------------------------------------


def _cap_lines(text: Text, limit: int = BODY_LINES) -> Text:
    """Cut a body to `limit` lines, so a message of blank lines cannot scroll the screen away."""
    plain = text.plain
    if plain.count("\n") < limit:
        return text
    cut = -1
    for _ in range(limit):
        cut = plain.index("\n", cut + 1)
    hidden = plain.count("\n", cut) or 1
    out = text[:cut]
    out.append(f"\n… [+{hidden} lines]", _META)
    return out


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


@dataclass(slots=True)
class _Ev:
    """One event with its fields checked for type once, so handlers need no guards."""

    type: str
    content: Mapping[str, Any]
    sender: str
    event_id: str | None
    state_key: str | None
    unsigned: Mapping[str, Any]
    raw: Mapping[str, Any]
    before: list[Text] = field(default_factory=list)

    @property
    def prev(self) -> Mapping[str, Any]:
        return _map(self.unsigned.get("prev_content") or self.raw.get("prev_content"))


class PrettyRenderer:
    """Formats events as `HH:MM sender: body` lines and keeps the context to explain them."""

    def __init__(
        self,
        *,
        seconds: bool = False,
        room_label: str | None = None,
        tz: dt.tzinfo | None = None,
        max_cache: int = 2000,
        homeserver: str | None = None,
    ) -> None:
        self._seconds = seconds
        self._tz = tz
        size = max(1, max_cache)
        self._members = _Members(size)
        self._events: _LRU[_Seen] = _LRU(size)
        self._homeserver = one_line(homeserver.rstrip("/"), 300) if homeserver else ""
        self._last_day: dt.date | None = None
        self._label = Text()
        if room_label:
            self._label.append(one_line(room_label, 20), _colour(room_label))
            self._label.append(" ")
        time_width = 8 if seconds else 5
        self._no_time = " " * time_width
        self._unknown_time = "--:--:--" if seconds else "--:--"
        self._handlers: dict[str, Callable[[_Ev], Text]] = {
            "m.room.message": self._message,
            "m.sticker": self._sticker,
            "m.room.encrypted": self._encrypted,
            "m.reaction": self._reaction,
            "m.room.redaction": self._redaction,
            "m.room.member": self._member,
            "m.room.name": self._room_name,
            "m.room.topic": self._topic,
            "m.room.avatar": self._room_avatar,
            "m.room.canonical_alias": self._canonical_alias,
            "m.room.history_visibility": self._history_visibility,
            "m.room.guest_access": self._guest_access,
            "m.room.join_rules": self._join_rules,
            "m.room.power_levels": self._power_levels,
            "m.room.pinned_events": self._pinned,
            "m.room.encryption": self._encryption,
            "m.room.tombstone": self._tombstone,
            "m.room.create": self._create,
            "m.room.server_acl": self._server_acl,
            "m.room.third_party_invite": self._third_party_invite,
            "m.space.child": self._space_child,
            "m.space.parent": self._space_parent,
            "m.typing": self._typing,
            "m.receipt": self._receipt,
            "m.presence": self._presence,
        }

    # -- public --------------------------------------------------------------------------------

    def learn_state(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Remember names (and message first words) from events without printing them."""
        try:
            for event in events:
                if isinstance(event, Mapping):
                    self._learn(self._ev(event))
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
            out.append(one_line(info.room_id, 120), _DIM)
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
        out.append(" · ".join(facts), _DIM)
        return out

    def render(self, event: Mapping[str, Any]) -> list[Text]:
        """The lines to print for one event (a date line first when the local day changes)."""
        try:
            return self._render(event)
        except Exception as exc:  # last resort: never let one event stop the watcher
            try:
                etype = one_line(event.get("type"), 80) if isinstance(event, Mapping) else "?"
            except Exception:
                etype = "?"
            body = Text(f"⚠ could not render {etype} event ({type(exc).__name__})", _WARN)
            return [Line(self._gutter(None, timed=False), body)]

    # -- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def _ev(event: Mapping[str, Any]) -> _Ev:
        etype = event.get("type")
        state_key = event.get("state_key")
        return _Ev(
            type=etype if isinstance(etype, str) else "",
            content=_map(event.get("content")),
            sender=_str(event.get("sender")) or "",
            event_id=_str(event.get("event_id")),
            state_key=state_key if isinstance(state_key, str) else None,
            unsigned=_map(event.get("unsigned")),
            raw=event,
        )

    def _when(self, ts: object) -> dt.datetime | None:
        seconds = _num(ts)
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
        gutter.append(stamp, _TIME)
        gutter.append(" ")
        return gutter

    def _render(self, event: Mapping[str, Any]) -> list[Text]:
        if not isinstance(event, Mapping):
            body = Text(f"malformed event (a {type(event).__name__}, not an object)", _WARN)
            return [Line(self._gutter(None, timed=False), body)]
        ev = self._ev(event)
        when = self._when(event.get("origin_server_ts"))
        redacted = _map(ev.unsigned.get("redacted_because"))
        if redacted and not ev.content and ev.state_key is None:
            body = self._already_deleted(ev, redacted)
        else:
            handler = self._handlers.get(ev.type, self._unknown)
            body = handler(ev)
        out: list[Text] = []
        if when is not None and when.date() != self._last_day:
            self._last_day = when.date()
            stamp = f"── {when:%A} {when.day} {when:%B %Y} ──"
            out.append(Line(self._label.copy(), Text(stamp, _DIM)))
        timed = ev.event_id is not None or "origin_server_ts" in event
        blank = self._gutter(None, timed=False) if ev.before else None
        for context in ev.before:
            out.append(Line(blank.copy() if blank else Text(), context))
        out.append(Line(self._gutter(when, timed=timed), body))
        return out

    def _who(self, user_id: str) -> Text:
        if not user_id:
            return Text("(unknown sender)", _DIM)
        return Text(self._members.label(user_id), _colour(user_id))

    def _whose(self, user_id: str, actor: str) -> Text:
        if user_id == actor:
            return Text("their")
        who = self._who(user_id)
        who.append("'s")
        return who

    def _lead(self, symbol: str, ev: _Ev, style: Style | None = None) -> Text:
        """`symbol sender` — the start of every non-message line."""
        out = Text(f"{symbol} ", style or _DIM)
        out.append_text(self._who(ev.sender))
        return out

    def _describe(self, event_id: object, actor: str) -> Text:
        """ "alice's message “first words…”" when known, else "a message"."""
        seen = self._events.get(event_id)
        if seen is None:
            return Text("a message")
        out = self._whose(seen.sender, actor)
        out.append(" reaction " if seen.kind == "reaction" else " message ")
        out.append(f"“{seen.snippet}”" if seen.kind != "reaction" else seen.snippet, _DIM)
        return out

    def _remember(self, ev: _Ev, kind: str, snippet: str) -> None:
        if ev.event_id:
            self._events.put(ev.event_id, _Seen(ev.sender, kind, snippet))

    def _learn(self, ev: _Ev) -> None:
        if ev.type == "m.room.member" and ev.state_key is not None:
            self._update_member(ev)
        elif ev.type == "m.room.message":
            rel = _map(ev.content.get("m.relates_to"))
            if rel.get("rel_type") != "m.replace":
                self._remember(ev, "message", self._message_snippet(ev.content))
        elif ev.type == "m.reaction":
            key = _map(ev.content.get("m.relates_to")).get("key")
            self._remember(ev, "reaction", one_line(key, 32))

    # -- messages ------------------------------------------------------------------------------

    def _message_snippet(self, content: Mapping[str, Any]) -> str:
        msgtype = _str(content.get("msgtype"))
        body = content.get("body")
        text = body if isinstance(body, str) else clean(body, 200)
        if msgtype in _MEDIA:
            name = _str(content.get("filename")) or text
            return f"[{_MEDIA[msgtype]}] {_snippet(name)}"
        if msgtype == "m.location":
            return f"[location] {_snippet(text)}"
        if "m.in_reply_to" in _map(content.get("m.relates_to")):
            text = _strip_reply_fallback(text)
        return _snippet(text) or "(empty message)"

    def _content(self, content: Mapping[str, Any], *, reply: bool) -> Text:
        """The body of a message (text, notice, emote, media, location) as styled Text."""
        msgtype = _str(content.get("msgtype"))
        if msgtype in _MEDIA:
            return self._media(content, _MEDIA[msgtype])
        body = content.get("body")
        if msgtype == "m.location":
            out = Text("[location] ", _TAG)
            out.append(one_line(body, 300))
            geo = content.get("geo_uri")
            if geo:
                out.append(f" ({one_line(geo, 200)})", _DIM)
            return out
        text: Text | None = None
        formatted = content.get("formatted_body")
        if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
            html = html_to_text(formatted, limit=BODY_LIMIT)
            if html.plain.strip():
                text = html
        if text is None:
            plain = body if isinstance(body, str) else ("" if body is None else clean(body, 0))
            if reply:
                plain = _strip_reply_fallback(plain)
            text = Text(clean(plain, BODY_LIMIT)) if plain.strip() else None
        if text is None:
            return Text("(empty message)", _META)
        text = _cap_lines(text)
        if msgtype == "m.notice":
            text.stylize(_NOTICE)
        elif msgtype not in (None, "m.text", "m.emote", "m.notice"):
            text.append(f" [{one_line(msgtype, 60)}]", _DIM)
        return text

    def _media(self, content: Mapping[str, Any], kind: str) -> Text:
        body = content.get("body")
        filename = _str(content.get("filename"))
        name = filename or body
        out = Text(f"[{kind}] ", _TAG)
        out.append(one_line(name, 200) if name else "(unnamed)")
        info = _map(content.get("info"))
        details: list[str] = []
        size = _num(info.get("size"))
        if size is not None and size >= 0:
            details.append(_human_size(size))
        width, height = _num(info.get("w")), _num(info.get("h"))
        if width is not None and height is not None:
            details.append(f"{width:.0f}×{height:.0f}")
        duration = _num(info.get("duration"))
        if duration is not None and duration >= 0:
            details.append(_duration(duration))
        if details:
            out.append(f" ({', '.join(details)})", _DIM)
        if filename and isinstance(body, str) and body and body != filename:
            out.append("\n")
            out.append(clean(body, BODY_LIMIT))  # MSC2530: body is a caption when filename is set
        url = content.get("url")
        encrypted = False
        if not isinstance(url, str):
            url = _map(content.get("file")).get("url")
            encrypted = isinstance(url, str)
        if isinstance(url, str) and url:
            match = _MXC.fullmatch(url)
            out.append("\n")
            if match is None:
                out.append(one_line(url, 300), _DIM)
            else:
                server, media_id = match.groups()
                out.append(url + (" (encrypted)" if encrypted else ""), _DIM)
                out.append("\n")
                download = f"/_matrix/client/v1/media/download/{server}/{media_id}"
                out.append(self._homeserver + download, _DIM)
        return out

    def _reply_context(self, event_id: object) -> Text:
        seen = self._events.get(event_id)
        out = Text("↳ replying to ", _DIM)
        if seen is None:
            out.append("an earlier message", _DIM)
            return out
        out.append_text(self._who(seen.sender))
        if seen.kind == "reaction":
            out.append(f"'s reaction {seen.snippet}", _DIM)
        else:
            out.append(f": {seen.snippet}", _DIM)
        return out

    def _message(self, ev: _Ev) -> Text:
        content = ev.content
        rel = _map(content.get("m.relates_to"))
        rel_type = rel.get("rel_type")
        if rel_type == "m.replace":
            return self._edit(ev, rel)
        reply_to = _map(rel.get("m.in_reply_to")).get("event_id")
        if rel_type == "m.thread" and rel.get("is_falling_back") is True:
            reply_to = None  # a thread's fallback reply for old clients, not a real reply
        if reply_to is not None:
            ev.before.append(self._reply_context(reply_to))
        body = self._content(content, reply=reply_to is not None or "m.in_reply_to" in rel)
        msgtype = content.get("msgtype")
        if msgtype in ("m.text", "m.notice", "m.emote") and body.plain.strip():
            snippet = _snippet(body.plain)  # the rendered text: no markdown or fallback quotes
        else:
            snippet = self._message_snippet(content)
        self._remember(ev, "message", snippet)
        out = Text("🧵 ", _DIM) if rel_type == "m.thread" else Text()
        if content.get("msgtype") == "m.emote":
            out.append("* ")
            out.append_text(self._who(ev.sender))
            out.append(" ")
        else:
            out.append_text(self._who(ev.sender))
            out.append(": ")
        out.append_text(body)
        return out

    def _edit(self, ev: _Ev, rel: Mapping[str, Any]) -> Text:
        content = ev.content
        new = _map(content.get("m.new_content"))
        if not new:  # no m.new_content: the fallback body is "* new text"
            body = content.get("body")
            stripped = body[2:] if isinstance(body, str) and body.startswith("* ") else body
            new = {"msgtype": content.get("msgtype"), "body": stripped}
        target = rel.get("event_id")
        seen = self._events.get(target)
        out = self._lead("✎", ev, _EDIT)
        if seen is not None and seen.sender and ev.sender and seen.sender != ev.sender:
            out.append(" edited ")
            out.append_text(self._whose(seen.sender, ev.sender))
            out.append(" message (not valid: only the author can edit)", _WARN)
        else:
            out.append(" edited")
            if seen is not None:
                out.append(f" “{seen.snippet}”", _DIM)
            if isinstance(target, str):
                self._events.put(target, _Seen(ev.sender, "message", self._message_snippet(new)))
        out.append(": ")
        out.append_text(self._content(new, reply=False))
        return out

    def _sticker(self, ev: _Ev) -> Text:
        self._remember(ev, "message", f"[sticker] {_snippet(clean(ev.content.get('body'), 200))}")
        out = self._who(ev.sender)
        out.append(": ")
        out.append_text(self._media(ev.content, "sticker"))
        return out

    def _encrypted(self, ev: _Ev) -> Text:
        self._remember(ev, "message", "🔒 encrypted message")
        out = self._who(ev.sender)
        out.append(": ")
        out.append("🔒 encrypted message (cannot be read without joining and keys)", _META)
        return out

    def _already_deleted(self, ev: _Ev, because: Mapping[str, Any]) -> Text:
        self._remember(ev, "message", "[deleted]")
        out = self._who(ev.sender)
        out.append(": ")
        out.append("(message deleted", _META)
        redactor = _str(because.get("sender"))
        if redactor and redactor != ev.sender:
            out.append(" by ", _META)
            out.append_text(self._who(redactor))
        out.append(")", _META)
        out.append(_reason(_map(because.get("content"))), _DIM)
        return out

    def _reaction(self, ev: _Ev) -> Text:
        rel = _map(ev.content.get("m.relates_to"))
        key = one_line(rel.get("key"), 32) or "(no key)"
        target = rel.get("event_id")
        seen = self._events.get(target)
        out = self._who(ev.sender)
        out.append(" reacted ")
        out.append(key)
        out.append(" to ")
        if seen is None:
            out.append("a message")
        else:
            out.append_text(self._who(seen.sender))
            out.append(f"'s reaction {seen.snippet}" if seen.kind == "reaction" else ": ")
            if seen.kind != "reaction":
                out.append(seen.snippet, _DIM)
        self._remember(ev, "reaction", key)
        return out

    def _redaction(self, ev: _Ev) -> Text:
        target = _str(ev.raw.get("redacts")) or _str(ev.content.get("redacts"))
        seen = self._events.get(target)
        out = self._lead("✗", ev, _DELETE)
        if seen is None:
            out.append(" deleted a message")
        elif seen.kind == "reaction":
            out.append(" removed ")
            out.append_text(self._whose(seen.sender, ev.sender))
            out.append(f" reaction {seen.snippet}")
        else:
            out.append(" deleted ")
            out.append_text(self._whose(seen.sender, ev.sender))
            out.append(" message ")
            out.append(f"“{seen.snippet}”", _DIM)
        if seen is not None and target is not None:
            self._events.put(target, _Seen(seen.sender, seen.kind, "[deleted]"))
        out.append(_reason(ev.content), _DIM)
        return out

    # -- membership ----------------------------------------------------------------------------

    def _update_member(self, ev: _Ev) -> None:
        user_id = ev.state_key or ev.sender
        if not user_id:
            return
        membership = ev.content.get("membership")
        name = _str(ev.content.get("displayname"))
        current = membership in ("join", "invite")
        if name is None and not current:
            name = self._members.name(user_id)  # leave/ban events rarely carry the name
        self._members.update(user_id, name, current)

    def _member(self, ev: _Ev) -> Text:
        content, prev = ev.content, ev.prev
        target = ev.state_key or ev.sender
        membership = content.get("membership")
        before = prev.get("membership")
        by_other = bool(ev.sender) and ev.sender != target
        if membership == "join" and before == "join":
            return self._profile_change(ev, target)
        old_label = self._who(target)
        self._update_member(ev)
        subject = self._who(target) if membership in ("join", "invite", "knock") else old_label
        if membership == "join":
            out = Text("→ ", _DIM)
            out.append_text(subject)
            out.append(" joined")
        elif membership == "invite":
            out = self._lead("→", ev)
            out.append(" invited ")
            out.append_text(subject)
        elif membership == "knock":
            out = Text("→ ", _DIM)
            out.append_text(subject)
            out.append(" knocked")
        elif membership == "ban":
            out = self._lead("←", ev)
            out.append(" banned ")
            out.append_text(subject)
        elif membership == "leave" and not by_other:
            out = Text("← ", _DIM)
            out.append_text(subject)
            if before == "invite":
                out.append(" rejected the invite")
            elif before == "knock":
                out.append(" withdrew their knock")
            else:
                out.append(" left")
        elif membership == "leave":
            out = self._lead("←", ev)
            if before == "ban":
                out.append(" unbanned ")
                out.append_text(subject)
            elif before == "invite":
                out.append(" withdrew the invite for ")
                out.append_text(subject)
            elif before == "knock":
                out.append(" rejected the knock of ")
                out.append_text(subject)
            else:
                out.append(" kicked ")
                out.append_text(subject)
        else:
            out = self._lead("•", ev)
            out.append(" set the membership of ")
            out.append_text(subject)
            out.append(f" to {one_line(membership, 40)}")
        out.append(_reason(content), _DIM)
        return out

    def _profile_change(self, ev: _Ev, target: str) -> Text:
        content, prev = ev.content, ev.prev
        old = _str(prev.get("displayname")) if "displayname" in prev else self._members.name(target)
        new = _str(content.get("displayname"))
        self._update_member(ev)
        out = Text("• ", _DIM)
        out.append(one_line(target, ID_LIMIT), _colour(target))
        changes: list[Text] = []
        if old != new:
            change = Text()
            if old and new:
                change.append(f"changed display name from {one_line(old, NAME_LIMIT)} to ")
                change.append(one_line(new, NAME_LIMIT), _colour(target))
            elif new:
                change.append("set display name to ")
                change.append(one_line(new, NAME_LIMIT), _colour(target))
            else:
                change.append(f"removed display name {one_line(old, NAME_LIMIT)}")
            changes.append(change)
        avatar = content.get("avatar_url")
        if prev and avatar != prev.get("avatar_url"):
            changes.append(Text("changed avatar" if avatar else "removed avatar"))
        if not changes:
            changes.append(Text("updated their profile"))
        out.append(" ")
        out.append_text(Text(" and ").join(changes))
        return out

    # -- room state ----------------------------------------------------------------------------

    def _room_name(self, ev: _Ev) -> Text:
        out = self._lead("•", ev)
        name = ev.content.get("name")
        if name:
            out.append(" renamed the room to ")
            out.append(f"“{one_line(name, 200)}”", _TAG)
        else:
            out.append(" removed the room name")
        return out

    def _topic(self, ev: _Ev) -> Text:
        out = self._lead("•", ev)
        topic = ev.content.get("topic")
        if topic:
            out.append(" changed the topic to: ")
            out.append(clean(topic, 1000))
        else:
            out.append(" removed the topic")
        return out

    def _room_avatar(self, ev: _Ev) -> Text:
        out = self._lead("•", ev)
        url = ev.content.get("url")
        out.append(" changed the room avatar" if url else " removed the room avatar")
        if isinstance(url, str) and url:
            out.append(f" ({one_line(url, 200)})", _DIM)
        return out

    def _canonical_alias(self, ev: _Ev) -> Text:
        content, prev = ev.content, ev.prev
        alias = _str(content.get("alias"))
        alts = _strs(content.get("alt_aliases"))
        out = self._lead("•", ev)
        if alias and (alias != prev.get("alias") or not alts):
            out.append(" set the main address to ")
            out.append(one_line(alias, 200), _TAG)
            if alts:
                out.append(f" (also {_more([one_line(a, 200) for a in alts])})", _DIM)
        elif not alias and prev.get("alias"):
            out.append(" removed the main address")
        elif alts:
            out.append(" set the alternative addresses to ")
            out.append(_more([one_line(a, 200) for a in alts]))
        else:
            out.append(" removed the room's published addresses")
        return out

    def _history_visibility(self, ev: _Ev) -> Text:
        value = ev.content.get("history_visibility")
        out = self._lead("•", ev)
        out.append(" made future history visible to ")
        out.append(_HISTORY.get(value, one_line(value, 60)) if isinstance(value, str) else "?")
        return out

    def _guest_access(self, ev: _Ev) -> Text:
        value = ev.content.get("guest_access")
        out = self._lead("•", ev)
        if value == "can_join":
            out.append(" allowed guests to join the room")
        elif value == "forbidden":
            out.append(" forbade guests from joining the room")
        else:
            out.append(f" set guest access to {one_line(value, 60)}")
        return out

    def _join_rules(self, ev: _Ev) -> Text:
        value = ev.content.get("join_rule")
        out = self._lead("•", ev)
        if value == "public":
            out.append(" made the room public: anyone can join")
        elif value == "invite":
            out.append(" made the room invite-only")
        else:
            out.append(f" set the join rule to {one_line(value, 60)}")
        return out

    def _power_levels(self, ev: _Ev) -> Text:
        content, prev = ev.content, ev.prev
        out = self._lead("•", ev)
        label = self._members.label
        if not prev:
            users = _map(content.get("users"))
            out.append(" set the power levels")
            if users:
                head = islice(users.items(), LIST_LIMIT)
                levels = [f"{label(str(u))} {one_line(v, 20)}" for u, v in head]
                out.append(f": {_more(levels, total=len(users))}", _DIM)
            return out
        changes: list[str] = []
        new_default = content.get("users_default", 0)
        old_default = prev.get("users_default", 0)
        new_users, old_users = _map(content.get("users")), _map(prev.get("users"))
        for user in dict.fromkeys([*old_users, *new_users]):
            old, new = old_users.get(user, old_default), new_users.get(user, new_default)
            if old != new:
                changes.append(f"{label(str(user))} {one_line(old, 20)}→{one_line(new, 20)}")
        for key, default in _PL_DEFAULTS.items():
            old, new = prev.get(key, default), content.get(key, default)
            if old != new:
                changes.append(f"{key} {one_line(old, 20)}→{one_line(new, 20)}")
        new_events, old_events = _map(content.get("events")), _map(prev.get("events"))
        for etype in dict.fromkeys([*old_events, *new_events]):
            old, new = old_events.get(etype), new_events.get(etype)
            if old != new:
                old_s = "default" if old is None else one_line(old, 20)
                new_s = "default" if new is None else one_line(new, 20)
                changes.append(f"{one_line(etype, 60)} {old_s}→{new_s}")
        out.append(" changed the power levels")
        if changes:
            out.append(f": {_more(changes)}", _DIM)
        return out

    def _pinned(self, ev: _Ev) -> Text:
        content, prev = ev.content, ev.prev
        pinned = _strs(content.get("pinned"))
        out = self._lead("•", ev)
        if "pinned" not in prev:
            out.append(f" set the pinned messages ({len(pinned)} pinned)")
            return out
        before = _strs(prev.get("pinned"))
        added = [e for e in pinned if e not in set(before)]
        removed = [e for e in before if e not in set(pinned)]
        if len(added) == 1 and not removed:
            out.append(" pinned ")
            out.append_text(self._describe(added[0], ev.sender))
        elif len(removed) == 1 and not added:
            out.append(" unpinned ")
            out.append_text(self._describe(removed[0], ev.sender))
        elif added or removed:
            out.append(f" pinned {len(added)} and unpinned {len(removed)} messages")
        else:
            out.append(" reordered the pinned messages")
        return out

    def _encryption(self, ev: _Ev) -> Text:
        out = self._lead("🔒", ev)
        out.append(" enabled end-to-end encryption")
        algorithm = ev.content.get("algorithm")
        if algorithm:
            out.append(f" ({one_line(algorithm, 60)})", _DIM)
        out.append(": new messages cannot be read by peek", _META)
        return out

    def _tombstone(self, ev: _Ev) -> Text:
        out = self._lead("•", ev)
        out.append(" replaced this room")
        body = ev.content.get("body")
        if body:
            out.append(f": {one_line(body, 300)}")
        replacement = ev.content.get("replacement_room")
        out.append("\n")
        if isinstance(replacement, str) and _ROOM_ID.fullmatch(replacement):
            out.append(f"room replaced by {replacement}", _TAG)
            out.append(f" — watch it with: {shlex.join(['peek', 'watch', replacement])}")
        else:
            out.append(f"room replaced by {one_line(replacement, 300) or '(unknown room)'}", _TAG)
        return out

    def _create(self, ev: _Ev) -> Text:
        content = ev.content
        out = self._lead("•", ev)
        kind = "space" if content.get("type") == "m.space" else "room"
        version = content.get("room_version", "1")
        out.append(f" created the {kind} (version {one_line(version, 40)})")
        predecessor = _map(content.get("predecessor")).get("room_id")
        if predecessor:
            out.append(f", replacing {one_line(predecessor, 300)}", _DIM)
        return out

    def _server_acl(self, ev: _Ev) -> Text:
        content = ev.content
        allow = [one_line(s, 100) for s in _strs(content.get("allow"))]
        deny = [one_line(s, 100) for s in _strs(content.get("deny"))]
        out = self._lead("•", ev)
        out.append(" changed the server ACL: ")
        parts = [f"allow {_more(allow, 3) or 'none'}", f"deny {_more(deny, 3) or 'none'}"]
        if content.get("allow_ip_literals") is False:
            parts.append("IP literals denied")
        out.append("; ".join(parts), _DIM)
        return out

    def _third_party_invite(self, ev: _Ev) -> Text:
        out = self._lead("→", ev)
        name = ev.content.get("display_name")
        out.append(f" invited {one_line(name, NAME_LIMIT) if name else 'someone'} by 3pid invite")
        return out

    def _space_child(self, ev: _Ev) -> Text:
        out = self._lead("•", ev)
        child = one_line(ev.state_key, 300)
        if "via" in ev.content:
            out.append(f" added {child} to this space")
        else:
            out.append(f" removed {child} from this space")
        return out

    def _space_parent(self, ev: _Ev) -> Text:
        out = self._lead("•", ev)
        parent = one_line(ev.state_key, 300)
        if "via" in ev.content:
            out.append(f" set {parent} as a parent space")
        else:
            out.append(f" removed the parent space {parent}")
        return out

    # -- ephemeral -----------------------------------------------------------------------------

    def _names(self, user_ids: list[str]) -> str:
        head = [self._members.label(u) for u in user_ids[:5]]
        return _more(head, 5, total=len(user_ids))

    def _typing(self, ev: _Ev) -> Text:
        users = _strs(ev.content.get("user_ids"))
        if not users:
            return Text("… nobody is typing", _DIM)
        verb = "is" if len(users) == 1 else "are"
        return Text(f"… {self._names(users)} {verb} typing", _DIM)

    def _receipt(self, ev: _Ev) -> Text:
        readers: dict[str, None] = {}
        events: list[str] = []
        for event_id, kinds in islice(ev.content.items(), 100):
            events.append(str(event_id))
            for users in _map(kinds).values():
                readers.update(dict.fromkeys(str(u) for u in _map(users)))
        out = Text(f"✓ read by {self._names(list(readers)) or 'nobody'}", _DIM)
        if len(events) == 1:
            seen = self._events.get(events[0])
            if seen is not None and seen.kind == "message":
                out.append(f" up to “{seen.snippet}”", _DIM)
        return out

    def _presence(self, ev: _Ev) -> Text:
        state = ev.content.get("presence")
        out = Text("● ", _DIM)
        out.append(self._members.label(ev.sender) if ev.sender else "(someone)", _DIM)
        out.append(f" is {one_line(state, 30) if state else 'present'}", _DIM)
        status = ev.content.get("status_msg")
        if status:
            out.append(f": {one_line(status, 200)}", _DIM)
        return out

    # -- anything else -------------------------------------------------------------------------

    def _unknown(self, ev: _Ev) -> Text:
        out = self._lead("•", ev)
        out.append(" set " if ev.state_key is not None else " sent ")
        out.append(one_line(ev.type, 100) if ev.type else "an event without a type", _TAG)
        if ev.state_key:
            out.append(f" [{one_line(ev.state_key, 100)}]")
        head = islice(ev.content.items(), LIST_LIMIT)
        items = [f"{one_line(k, 40)}={_value(v)}" for k, v in head]
        if items:
            out.append(f": {_more(items, total=len(ev.content))}", _DIM)
        elif ev.raw.get("content") is not None and not isinstance(ev.raw.get("content"), Mapping):
            out.append(f": content is {type(ev.raw.get('content')).__name__}", _DIM)
        return out
