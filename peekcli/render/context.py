"""What every event family's renderer shares: the room context, styles and small total helpers.

A renderer (`peekcli.render.families.*`) is a function of (event, room context) returning a rich
`Text` (or None: nothing to show in pretty output). The room context is the only memory: display
names, the first words of recent messages (to say what a reply, reaction or edit is about), the
polls seen (to name votes and count results), and the output options. Every cache is bounded: a
watcher may run for weeks.

Every server string passes through `sanitize.clean`/`one_line` and is appended as plain text;
nothing from the server is ever parsed as rich markup.
"""

from __future__ import annotations

import re
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

from rich.style import Style
from rich.text import Text

from peekcli.render.sanitize import one_line

BODY_LIMIT = 4000  # characters of a message body shown before the "… [+N chars]" marker
BODY_LINES = 40  # lines of a message body shown before the "… [+N lines]" marker
NAME_LIMIT = 48
ID_LIMIT = 100
SNIPPET_WIDTH = 40
LIST_LIMIT = 6  # items named in summaries before "+N more"

EMPTY: Mapping[str, Any] = MappingProxyType({})
DIM = Style(dim=True)
TIME = Style(dim=True)
NOTICE = Style(dim=True)
META = Style(dim=True, italic=True)
TAG = Style(bold=True)
EDIT = Style(color="yellow")
DELETE = Style(color="red")
WARN = Style(color="red", bold=True)
#: Sender colours: eight hues at least 30° apart on the colour wheel, each an exact xterm-256
#: colour (so a 256-colour terminal shows the same hue, not a neighbouring shade), mid-tone so that
#: they read on dark and light backgrounds alike. Only the name is coloured, never the line.
PALETTE_HEX = (
    "#d75f5f",  # red (167)
    "#d78700",  # orange (172)
    "#87af00",  # yellow-green (106)
    "#00af00",  # green (34)
    "#00afaf",  # cyan (37)
    "#5f87ff",  # blue (69)
    "#af5fff",  # violet (135)
    "#d75faf",  # magenta (169)
)
PALETTE = tuple(Style(color=c, bold=True) for c in PALETTE_HEX)
MXID = re.compile(r"@[^:\s]+:\S+")

V = TypeVar("V")


# -- small total helpers ------------------------------------------------------------------------


def as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else EMPTY


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) < 1e18 else None


def as_strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def colour(key: str, palette: tuple[Style, ...] = PALETTE) -> Style:
    """A stable colour per id: crc32 (unlike hash()) is the same in every process."""
    return palette[zlib.crc32(key.encode("utf-8", "surrogatepass")) % len(palette)]


def snippet(text: str, width: int = SNIPPET_WIDTH) -> str:
    """First words of a body, on one line, for "replying to alice: first words…"."""
    collapsed = " ".join(text[: width * 4].split())
    shown = one_line(collapsed, 0)
    if len(shown) <= width:
        return shown
    cut = shown.rfind(" ", 0, width)
    if cut < width // 2:
        cut = width
    return shown[:cut].rstrip() + "…"


def more(items: list[str], limit: int = LIST_LIMIT, total: int | None = None) -> str:
    """ "a, b, c (+N more)": `total` is the full count when only the head was formatted."""
    count = len(items) if total is None else total
    shown = ", ".join(items[:limit])
    return f"{shown} (+{count - limit} more)" if count > limit else shown


def reason_of(content: Mapping[str, Any]) -> str:
    reason = content.get("reason")
    if reason is None or reason == "":
        return ""
    return f" (reason: {one_line(reason, 200)})"


def text_of(value: object) -> str | None:
    """Extensible-events text (MSC1767): a string, or the first `body` of a list of
    representations (plain text preferred)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        bodies = [v for v in value if isinstance(v, Mapping) and isinstance(v.get("body"), str)]
        for item in bodies:
            if item.get("mimetype") in (None, "text/plain"):
                return str(item["body"])
        if bodies:
            return str(bodies[0]["body"])
    return None


def symbol(mark: str) -> Text:
    """A dim line mark ("→ ", "• "): a span, so the rest of the line keeps its own style."""
    out = Text()
    out.append(mark, DIM)
    return out


# -- bounded memory -----------------------------------------------------------------------------


class LRU(Generic[V]):
    """A mapping that forgets its least recently used entries."""

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


SeenKind = Literal["message", "reaction", "edit", "poll", "deleted"]


@dataclass(slots=True)
class Seen:
    """What later events may need to say about an earlier one."""

    sender: str
    kind: SeenKind
    snippet: str
    type: str = "m.room.message"


@dataclass(slots=True)
class Poll:
    """A poll seen in this run: its answers, and the latest vote of each voter (for a tally)."""

    question: str
    answers: list[tuple[str, str]]  # (answer id, text)
    disclosed: bool
    max_selections: int = 1
    votes: dict[str, tuple[int, list[str]]] = field(default_factory=dict)  # voter → (ts, ids)
    ended: bool = False

    def answer(self, answer_id: str) -> str | None:
        for known, text in self.answers:
            if known == answer_id:
                return text
        return None


class Members:
    """Current display names, and which names are shared (so they get disambiguated)."""

    def __init__(self, size: int) -> None:
        self.names: LRU[tuple[str | None, bool]] = LRU(size, self._evicted)
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
        if len(self._holders.get(name, ())) > 1 or (name != user_id and MXID.fullmatch(name)):
            return f"{shown} ({uid})"
        return shown


# -- the event and its room ---------------------------------------------------------------------


@dataclass(slots=True)
class Ev:
    """One event with its fields checked for type once, so renderers need no guards.

    `content` is what to show: for a folded entry, the latest edit's content already applied.
    """

    type: str
    content: Mapping[str, Any]
    sender: str
    event_id: str | None
    state_key: str | None
    unsigned: Mapping[str, Any]
    raw: Mapping[str, Any]

    @property
    def prev(self) -> Mapping[str, Any]:
        return as_map(self.unsigned.get("prev_content") or self.raw.get("prev_content"))

    @property
    def ts(self) -> int:
        ts = self.raw.get("origin_server_ts")
        return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0

    @staticmethod
    def of(event: Mapping[str, Any], content: Mapping[str, Any] | None = None) -> Ev:
        etype = event.get("type")
        state_key = event.get("state_key")
        return Ev(
            type=etype if isinstance(etype, str) else "",
            content=as_map(event.get("content")) if content is None else content,
            sender=as_str(event.get("sender")) or "",
            event_id=as_str(event.get("event_id")),
            state_key=state_key if isinstance(state_key, str) else None,
            unsigned=as_map(event.get("unsigned")),
            raw=event,
        )


class Room:
    """The room context a renderer reads (and, for names and seen events, updates).

    `spoilers`: show spoiler text (`--spoilers`) instead of `[spoiler: reason]`.
    `homeserver`: base URL for media download links.
    """

    def __init__(self, *, max_cache: int = 2000, homeserver: str = "", spoilers: bool = False):
        size = max(1, max_cache)
        self.members = Members(size)
        self.events: LRU[Seen] = LRU(size)
        self.polls: LRU[Poll] = LRU(max(1, size // 10))
        self.homeserver = homeserver
        self.spoilers = spoilers
        # Own Style objects: rich caches a style's escape codes for the first colour system it
        # was printed with, and two outputs (a terminal, an HTML export) may differ.
        self.palette = tuple(Style(color=c, bold=True) for c in PALETTE_HEX)

    def colour(self, user_id: str) -> Style:
        return colour(user_id, self.palette)

    def who(self, user_id: str) -> Text:
        """The sender's name, coloured: the only coloured part of a line."""
        out = Text()
        if not user_id:
            out.append("(unknown sender)", DIM)
        else:
            out.append(self.members.label(user_id), self.colour(user_id))
        return out

    def whose(self, user_id: str, actor: str) -> Text:
        if user_id == actor:
            return Text("their")
        who = self.who(user_id)
        who.append("'s")
        return who

    def lead(self, symbol: str, ev: Ev, style: Style | None = None) -> Text:
        """`symbol sender`: the start of every non-message line."""
        out = Text()
        out.append(f"{symbol} ", style or DIM)
        out.append_text(self.who(ev.sender))
        return out

    def describe(self, event_id: object, actor: str) -> Text:
        """ "alice's message “first words…”" when known, else "a message"."""
        seen = self.events.get(event_id)
        if seen is None:
            return Text("a message")
        out = self.whose(seen.sender, actor)
        if seen.kind == "reaction":
            out.append(" reaction ")
            out.append(seen.snippet, DIM)
        elif seen.kind == "deleted":
            out.append(" deleted message")
        else:
            out.append(" poll " if seen.kind == "poll" else " message ")
            out.append(f"“{seen.snippet}”", DIM)
        return out

    def remember(self, ev: Ev, kind: SeenKind, text: str) -> None:
        if ev.event_id:
            self.events.put(ev.event_id, Seen(ev.sender, kind, text, ev.type))

    def update_member(self, ev: Ev) -> None:
        user_id = ev.state_key or ev.sender
        if not user_id:
            return
        membership = ev.content.get("membership")
        name = as_str(ev.content.get("displayname"))
        current = membership in ("join", "invite")
        if name is None and not current:
            name = self.members.name(user_id)  # leave/ban events rarely carry the name
        self.members.update(user_id, name, current)


#: A renderer of one event family: the body of the event's line block, or None to show nothing
#: in pretty output (call signalling: still in --json).
Renderer = Callable[[Ev, Room], Text | None]
