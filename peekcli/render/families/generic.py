"""The one line for an event type nobody knows: who sent which type, and its first keys."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice

from rich.text import Text

from peekcli.render.context import DIM, LIST_LIMIT, TAG, Ev, Room, more, snippet
from peekcli.render.sanitize import one_line


def _value(value: object) -> str:
    """A content value, compactly, for summaries of unknown events."""
    if isinstance(value, str):
        return f"“{snippet(value, 30)}”"
    if isinstance(value, Mapping):
        return f"{{{len(value)} keys}}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    return one_line(value, 30)


def unknown(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    out.append(" set " if ev.state_key is not None else " sent ")
    out.append(one_line(ev.type, 100) if ev.type else "an event without a type", TAG)
    if ev.state_key:
        out.append(f" [{one_line(ev.state_key, 100)}]")
    head = islice(ev.content.items(), LIST_LIMIT)
    items = [f"{one_line(k, 40)}={_value(v)}" for k, v in head]
    if items:
        out.append(f": {more(items, total=len(ev.content))}", DIM)
    elif ev.raw.get("content") is not None and not isinstance(ev.raw.get("content"), Mapping):
        out.append(f": content is {type(ev.raw.get('content')).__name__}", DIM)
    return out
