"""Ephemeral events (`--ephemeral` with pretty output is refused, but the renderer stays total):
typing, read receipts, presence."""

from __future__ import annotations

from itertools import islice

from rich.text import Text

from peekcli.render.context import DIM, Ev, Room, as_map, as_strs, more
from peekcli.render.sanitize import one_line


def _names(room: Room, user_ids: list[str]) -> str:
    head = [room.members.label(u) for u in user_ids[:5]]
    return more(head, 5, total=len(user_ids))


def typing(ev: Ev, room: Room) -> Text:
    users = as_strs(ev.content.get("user_ids"))
    if not users:
        return Text("… nobody is typing", DIM)
    verb = "is" if len(users) == 1 else "are"
    return Text(f"… {_names(room, users)} {verb} typing", DIM)


def receipt(ev: Ev, room: Room) -> Text:
    readers: dict[str, None] = {}
    events: list[str] = []
    for event_id, kinds in islice(ev.content.items(), 100):
        events.append(str(event_id))
        for users in as_map(kinds).values():
            readers.update(dict.fromkeys(str(u) for u in as_map(users)))
    out = Text(f"✓ read by {_names(room, list(readers)) or 'nobody'}", DIM)
    if len(events) == 1:
        seen = room.events.get(events[0])
        if seen is not None and seen.kind == "message":
            out.append(f" up to “{seen.snippet}”", DIM)
    return out


def presence(ev: Ev, room: Room) -> Text:
    state = ev.content.get("presence")
    out = Text("● ", DIM)
    out.append(room.members.label(ev.sender) if ev.sender else "(someone)", DIM)
    out.append(f" is {one_line(state, 30) if state else 'present'}", DIM)
    status = ev.content.get("status_msg")
    if status:
        out.append(f": {one_line(status, 200)}", DIM)
    return out
