"""Pure helpers on events as the server sends them: no I/O, every field untrusted.

Tombstones (which room replaced this one), predecessors (which room this one replaced) and
ephemeral events (presence, typing, receipts) are read in one place, so the loop, the upgrade
walk, the exporter and the renderer agree on what counts.
"""

from __future__ import annotations

from typing import Any

from peekcli.matrix.ids import is_room_id

JSON = dict[str, Any]


def is_ephemeral(event: JSON) -> bool:
    """Presence, typing and receipts: no `event_id`, not part of the timeline."""
    return not isinstance(event.get("event_id"), str)


def replacement_of(event: JSON, room_id: str) -> str | None:
    """The room an `m.room.tombstone` state event hands over to (None for any other event)."""
    if event.get("type") != "m.room.tombstone" or event.get("state_key") != "":
        return None
    content = event.get("content")
    new = content.get("replacement_room") if isinstance(content, dict) else None
    return new if is_room_id(new) and new != room_id else None


def predecessor_of(create_content: object) -> str | None:
    """The room an `m.room.create` content says this room replaced (None: none or unreadable)."""
    predecessor = create_content.get("predecessor") if isinstance(create_content, dict) else None
    old = predecessor.get("room_id") if isinstance(predecessor, dict) else None
    return old if is_room_id(old) else None


def room_events(chunk: object, room_id: str) -> list[JSON] | None:
    """The events of a reply's `chunk` (/events, /messages, initialSync) that belong to
    `room_id`; None when `chunk` is not a list (the caller says the reply is unreadable)."""
    if not isinstance(chunk, list):
        return None
    return [ev for ev in chunk if isinstance(ev, dict) and ev.get("room_id") in (None, room_id)]


def tombstone_in(initial: JSON | None, room_id: str, history: int) -> str | None:
    """The replacement named by initialSync's state when the tombstone is not in the history
    shown (the last `history` events): a fresh start on a room that was already replaced."""
    if not isinstance(initial, dict) or not isinstance(initial.get("state"), list):
        return None
    for event in initial["state"]:
        if not isinstance(event, dict):
            continue
        new = replacement_of(event, room_id)
        if new is None:
            continue
        messages = initial.get("messages")
        chunk = messages.get("chunk") if isinstance(messages, dict) else None
        shown = chunk[-history:] if isinstance(chunk, list) and history > 0 else []
        ids = {ev.get("event_id") for ev in shown if isinstance(ev, dict)}
        return None if event.get("event_id") in ids else new
    return None


class RecentIds:
    """The ids of the last `size` events seen, to drop an event a server sends again.

    A server that answers with the same events (with the same `end` or a new one) would have
    them printed again and again; a bounded window catches that without growing with a room.
    """

    def __init__(self, size: int = 10_000) -> None:
        from collections import deque

        self.size = size
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def seen(self, event: JSON) -> bool:
        """True when `event`'s id was seen already; else remembers it. No id: never seen."""
        event_id = event.get("event_id")
        if not isinstance(event_id, str):
            return False
        if event_id in self._ids:
            return True
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.size:
            self._ids.discard(self._order.popleft())
        return False
