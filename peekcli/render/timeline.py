"""Relation folding: a batch of Matrix events as a chat client shows it.

A room's timeline holds events *about* other events: edits (`m.replace`), reactions
(`m.annotation`), thread replies (`m.thread`) and redactions. A chat client does not print them as
lines of their own when it has their target: it applies the latest valid edit and marks the message
"(edited)", sums reactions under the message, says "N replies" under a thread root, and shows a
deleted message as one "message deleted" line. This module does that folding, purely (no I/O, no
rendering, no rich), for every consumer of a batch: the pretty sink (per delivered chunk: history,
snapshot, live batches), the text export and the HTML export.

Use it one of two ways:

- `fold(events)` for a batch held in memory: returns one `Entry` per event left to show, oldest
  first, each carrying what was folded into it.
- `Timeline(window=N)` for a stream too long to hold (an export of years): `add(event)` returns the
  entries that can no longer receive relations (more than `window` events have passed since), and
  `finish()` returns the rest. Memory is bounded by the window.

An event whose target is not in the batch (or left the window) is not dropped: it comes out as its
own `Entry` (`relation` says what it is), and the renderer says it like a chat notification
("alice edited a message: …"), using what it remembers of the target.

Rules applied (Matrix spec, "Event replacements", "Reactions", "Threading", "Redactions"):

- An edit counts only if it has the same sender and type as the original, has `m.new_content`, and
  the original is neither a state event nor itself an edit ("edits of edits" are ignored). Among
  valid edits the latest wins: highest `origin_server_ts`, then lexicographically highest event id.
  A server-bundled edit (`unsigned["m.relations"]["m.replace"]`, the whole event since spec v1.7)
  is used too, so history shows edits whose event is outside the batch. Invalid edits are dropped.
- Reactions are counted once per (sender, key), in first-seen key order.
- A thread root counts its replies from the server's bundle (`m.thread.count`) when present, else
  from the thread replies in the batch. Thread replies stay in the timeline (in order).
- A redaction of an event in the batch is folded into it: a redacted reaction or edit simply
  disappears (the edit before it applies again), anything else becomes `Entry.deleted`. An event
  the server already redacted (empty content, `unsigned.redacted_because`) is `deleted` as well, and
  a redacted reaction is hidden. Deleted content is never carried: `Entry.content` is empty.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "Deletion",
    "Edit",
    "Entry",
    "Reaction",
    "Relation",
    "Thread",
    "Timeline",
    "fold",
    "relation_of",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: What an event is to another one. "reply" is not folded (a reply is a message of its own) but is
#: named so that renderers ask one function what an event relates to.
RelKind = Literal["edit", "reaction", "thread", "reply", "redaction"]

#: How many folded-away event ids a `Timeline` remembers, so that the same edit arriving later on
#: its own (after the server bundled it into its target) is not shown twice.
_FORGET_AFTER = 10_000


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ts(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class Relation:
    """What `event` says about another event: its kind and the target's event id."""

    kind: RelKind
    target: str
    key: str | None = None  # a reaction's key


def relation_of(event: Mapping[str, Any]) -> Relation | None:
    """The relation an event carries, or None: the one place that reads `m.relates_to`.

    A thread reply whose `m.in_reply_to` is only the fallback for old clients (`is_falling_back`)
    is a thread reply, not a reply.
    """
    etype = event.get("type")
    if etype == "m.room.redaction":
        target = _str(event.get("redacts")) or _str(_map(event.get("content")).get("redacts"))
        return Relation("redaction", target) if target else None
    rel = _map(_map(event.get("content")).get("m.relates_to"))
    if not rel:
        return None
    rel_type = rel.get("rel_type")
    target = _str(rel.get("event_id"))
    if rel_type == "m.annotation" and etype == "m.reaction" and target:
        return Relation("reaction", target, _str(rel.get("key")) or "")
    if rel_type == "m.replace" and target:
        return Relation("edit", target)
    if rel_type == "m.thread" and target:
        return Relation("thread", target)
    reply = _str(_map(rel.get("m.in_reply_to")).get("event_id"))
    if reply:
        return Relation("reply", reply)
    return None


@dataclass(frozen=True, slots=True)
class Edit:
    """The replacement shown for a message: `content` is its `m.new_content`.

    `content` is None when all that is known is that the message was edited (an old server's
    bundle names the edit without its content): show the original, marked "(edited)".
    """

    event_id: str | None
    sender: str
    ts: int
    content: Mapping[str, Any] | None


@dataclass(slots=True)
class Reaction:
    """One reaction key under a message, and who reacted with it (each sender once)."""

    key: str
    senders: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.senders)


@dataclass(slots=True)
class Thread:
    """A thread root's summary: replies counted by the server (`bundled`) or seen in the batch."""

    count: int = 0
    latest: Mapping[str, Any] | None = None
    bundled: bool = False


@dataclass(frozen=True, slots=True)
class Deletion:
    """Who deleted an event and why (the reason is the redactor's words, never the content)."""

    sender: str | None
    reason: str | None
    event_id: str | None = None


@dataclass(slots=True)
class Entry:
    """One event left to show, with everything folded into it.

    `relation` is set for a relation event whose target was not in the batch (an edit, reaction,
    redaction of something older): render it as a notification. A thread reply or a reply is an
    entry of its own with `relation` set too (it is shown either way).
    """

    event: Mapping[str, Any]
    relation: Relation | None = None
    edits: list[Edit] = field(default_factory=list)
    reactions: dict[str, Reaction] = field(default_factory=dict)
    thread: Thread | None = None
    deleted: Deletion | None = None
    #: A reaction or edit shown on its own whose redaction came later in the batch: not shown.
    hidden: bool = False

    @property
    def event_id(self) -> str | None:
        return _str(self.event.get("event_id"))

    @property
    def edit(self) -> Edit | None:
        """The latest valid edit, or None."""
        if not self.edits:
            return None
        return max(self.edits, key=lambda e: (e.ts, e.event_id or ""))

    @property
    def content(self) -> Mapping[str, Any]:
        """What to show: the latest edit's `m.new_content`, the original's content, or nothing
        for a deleted event. The original's `m.relates_to` (reply, thread) is kept on edits, as
        the spec says a replacement never changes the relation."""
        if self.deleted is not None:
            return _EMPTY
        original = _map(self.event.get("content"))
        edit = self.edit
        if edit is None or edit.content is None:
            return original
        if "m.relates_to" in original:
            return {**edit.content, "m.relates_to": original["m.relates_to"]}
        return edit.content

    @property
    def edited(self) -> bool:
        return bool(self.edits) and self.deleted is None

    def reaction_list(self) -> list[Reaction]:
        """Reactions with at least one sender, in the order their keys were first seen."""
        return [r for r in self.reactions.values() if r.senders]


def _deletion(event: Mapping[str, Any]) -> Deletion | None:
    """The server's own mark of a redacted event (`unsigned.redacted_because`), if any."""
    because = _map(_map(event.get("unsigned")).get("redacted_because"))
    if not because:
        return None
    return Deletion(
        _str(because.get("sender")),
        _str(_map(because.get("content")).get("reason")),
        _str(because.get("event_id")),
    )


def _is_edit(event: Mapping[str, Any]) -> bool:
    rel = _map(_map(event.get("content")).get("m.relates_to"))
    return rel.get("rel_type") == "m.replace"


def _valid_edit(original: Mapping[str, Any], edit: Mapping[str, Any]) -> bool:
    """The spec's validity rules for a replacement of `original`."""
    if "state_key" in original or _is_edit(original):
        return False
    if edit.get("type") != original.get("type") or "state_key" in edit:
        return False
    sender = _str(edit.get("sender"))
    if not sender or sender != original.get("sender"):
        return False
    new = edit.get("content")
    return isinstance(new, Mapping) and isinstance(new.get("m.new_content"), Mapping)


def _as_edit(event: Mapping[str, Any]) -> Edit:
    new = _map(_map(event.get("content")).get("m.new_content"))
    return Edit(
        _str(event.get("event_id")),
        _str(event.get("sender")) or "",
        _ts(event.get("origin_server_ts")),
        new,
    )


class Timeline:
    """Folds a stream of events (oldest first) with a bounded look-back.

    `window=None` keeps every entry until `finish()` (a batch in memory: see `fold`). With a
    window of N, an entry is released once N later entries have been added: relations arriving
    after that come out as entries of their own (notifications).
    """

    def __init__(self, window: int | None = None) -> None:
        self._window = window
        self._pending: OrderedDict[int, Entry] = OrderedDict()
        self._serial = 0
        self._targets: dict[str, Entry] = {}  # event id → pending entry
        # Folded-away relation event id → (its target entry, its relation, its sender): a later
        # redaction of a reaction or edit takes it back out of the entry it was folded into.
        self._folded: dict[str, tuple[Entry, Relation, str]] = {}
        self._folded_into: dict[int, list[str]] = {}  # id(entry) → relation ids folded into it
        self._seen_relations: OrderedDict[str, None] = OrderedDict()  # ids already folded

    # -- public ----------------------------------------------------------------------------------

    def add(self, event: Mapping[str, Any]) -> list[Entry]:
        """Take the next event; return the entries that can no longer change (oldest first)."""
        if isinstance(event, Mapping):
            self._add(event)
        else:  # not an object: the renderer says what it is
            self._push(Entry(_EMPTY if event is None else {"type": None, "content": event}))
        return self._release(self._window)

    def finish(self) -> list[Entry]:
        """Every entry still held, oldest first; the timeline is empty afterwards."""
        return self._release(0)

    # -- folding ---------------------------------------------------------------------------------

    def _add(self, event: Mapping[str, Any]) -> None:
        event_id = _str(event.get("event_id"))
        if event_id is not None and event_id in self._seen_relations:
            return  # already folded into its target (a bundled edit): nothing new to show
        deleted = _deletion(event)
        relation = relation_of(event)
        if deleted is not None and not _map(event.get("content")):
            if event.get("type") == "m.reaction":
                self._remember(event_id)  # so that its redaction, later, is not shown either
                return  # a removed reaction is simply not there
            self._push(Entry(event, deleted=deleted))
            return
        if relation is not None and relation.kind != "reply":
            target = self._targets.get(relation.target)
            if target is not None and self._fold(event, relation, target):
                return
            if relation.kind == "edit" and (target is not None or relation.target in self._folded):
                return  # an invalid edit (or an edit of an edit): ignored, as the spec says
            if relation.kind == "redaction" and relation.target in self._folded:
                self._unfold(relation.target)
                self._remember(event_id)
                return
            if relation.kind == "redaction" and relation.target in self._seen_relations:
                self._remember(event_id)
                return  # its target was already folded away or hidden
        entry = Entry(event, relation=relation, deleted=deleted)
        self._bundled(entry)
        self._push(entry)

    def _fold(self, event: Mapping[str, Any], relation: Relation, target: Entry) -> bool:
        """Fold `event` into `target`; False when it stays an entry of its own."""
        event_id = _str(event.get("event_id"))
        if target.deleted is not None and relation.kind in ("edit", "reaction", "redaction"):
            self._remember(event_id)
            return True  # nothing more to say about a deleted message
        if relation.kind == "edit":
            if not _valid_edit(target.event, event):
                return False
            edit = _as_edit(event)
            if not any(e.event_id == edit.event_id and e.event_id for e in target.edits):
                target.edits.append(edit)
            else:  # the bundled copy: same edit, now with certainly full content
                target.edits = [edit if e.event_id == edit.event_id else e for e in target.edits]
        elif relation.kind == "reaction":
            sender = _str(event.get("sender")) or ""
            key = relation.key or ""
            reaction = target.reactions.setdefault(key, Reaction(key))
            if sender in reaction.senders:
                return True  # a duplicate reaction: counted once
            reaction.senders.append(sender)
        elif relation.kind == "redaction":
            self._remember(event_id)
            if target.relation is not None and target.relation.kind in ("reaction", "edit"):
                target.hidden = True  # a reaction/edit shown on its own, now taken back
                return True
            because = _map(event.get("content"))
            target.deleted = Deletion(
                _str(event.get("sender")), _str(because.get("reason")), event_id
            )
            target.reactions.clear()
            target.edits.clear()
            return True
        elif relation.kind == "thread":
            thread = target.thread
            if thread is None:
                thread = target.thread = Thread()
            if not thread.bundled:
                thread.count += 1
                thread.latest = event
            return False  # a thread reply is shown where it was sent
        else:
            return False
        if event_id is not None:
            self._folded[event_id] = (target, relation, _str(event.get("sender")) or "")
            self._folded_into.setdefault(id(target), []).append(event_id)
        return True

    def _unfold(self, relation_id: str) -> None:
        """A folded reaction or edit was redacted: take it back out of its target."""
        target, relation, sender = self._folded.pop(relation_id)
        if relation.kind == "edit":
            target.edits = [e for e in target.edits if e.event_id != relation_id]
        elif relation.kind == "reaction":
            reaction = target.reactions.get(relation.key or "")
            if reaction is not None and sender in reaction.senders:
                reaction.senders.remove(sender)

    def _bundled(self, entry: Entry) -> None:
        """Use what the server aggregated into `unsigned["m.relations"]`."""
        relations = _map(_map(entry.event.get("unsigned")).get("m.relations"))
        if not relations or entry.deleted is not None:
            return
        replace = _map(relations.get("m.replace"))
        if replace:
            full = "content" in replace and "type" in replace
            if full and _valid_edit(entry.event, replace):
                entry.edits.append(_as_edit(replace))
                self._remember(_str(replace.get("event_id")))
            elif not full and replace.get("sender") in (None, entry.event.get("sender")):
                # An old-style bundle: the edit's id and time only. The edit event, if it comes,
                # supplies the content; until then the original shows, marked "(edited)".
                entry.edits.append(
                    Edit(
                        _str(replace.get("event_id")),
                        _str(entry.event.get("sender")) or "",
                        _ts(replace.get("origin_server_ts")),
                        None,
                    )
                )
        thread = _map(relations.get("m.thread"))
        count = thread.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            latest = thread.get("latest_event")
            entry.thread = Thread(count, latest if isinstance(latest, Mapping) else None, True)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _push(self, entry: Entry) -> None:
        self._serial += 1
        self._pending[self._serial] = entry
        event_id = entry.event_id
        if event_id is not None:
            self._targets[event_id] = entry

    def _remember(self, event_id: str | None) -> None:
        if event_id is None:
            return
        self._seen_relations[event_id] = None
        while len(self._seen_relations) > _FORGET_AFTER:
            self._seen_relations.popitem(last=False)

    def _release(self, keep: int | None) -> list[Entry]:
        if keep is None or len(self._pending) <= keep:
            return []
        out: list[Entry] = []
        while len(self._pending) > keep:
            _, entry = self._pending.popitem(last=False)
            event_id = entry.event_id
            if event_id is not None and self._targets.get(event_id) is entry:
                del self._targets[event_id]
            for relation_id in self._folded_into.pop(id(entry), ()):
                self._folded.pop(relation_id, None)
            if not entry.hidden:
                out.append(entry)
        return out


def fold(events: Iterable[Mapping[str, Any]]) -> list[Entry]:
    """Fold a whole batch (oldest first) at once: one `Entry` per event left to show."""
    timeline = Timeline()
    for event in events:
        timeline.add(event)
    return timeline.finish()
