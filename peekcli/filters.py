"""Event filters shared by `watch` and `snapshot`: which delivered events reach the output.

A filter only decides what is shown; the stream loop still advances the position past every
event it drops, so a filtered run never re-fetches what it skipped.

Options of the same kind are alternatives (`--type a --type b`: either type); different kinds
must all hold (`--type m.room.message --sender @a:x`: messages from @a:x).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from peekcli.errors import UsageError
from peekcli.render.polldata import searchable

#: Event types a person reads as "messages": text and media, stickers, encrypted messages, polls.
MESSAGE_TYPES = frozenset(
    {
        "m.room.message",
        "m.sticker",
        "m.room.encrypted",
        "m.poll.start",
        "org.matrix.msc3381.poll.start",
    }
)


@dataclass(frozen=True)
class EventFilter:
    types: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    grep: re.Pattern[str] | None = None
    messages_only: bool = False

    def __call__(self, event: dict[str, Any]) -> bool:
        etype = event.get("type")
        etype = etype if isinstance(etype, str) else ""
        if self.messages_only and etype not in MESSAGE_TYPES:
            return False
        if self.types and not any(fnmatchcase(etype, glob) for glob in self.types):
            return False
        if self.senders:
            sender = event.get("sender")
            sender = sender if isinstance(sender, str) else ""
            if not any(fnmatchcase(sender, glob) for glob in self.senders):
                return False
        if self.grep is not None:
            content = event.get("content")
            body = content.get("body") if isinstance(content, dict) else None
            if not isinstance(body, str):
                body = searchable(event)  # a poll: its question and answers
            if not isinstance(body, str) or self.grep.search(body) is None:
                return False
        return True


def build_filter(
    *,
    types: Iterable[str] = (),
    senders: Iterable[str] = (),
    grep: str | None = None,
    messages_only: bool = False,
) -> Callable[[dict[str, Any]], bool] | None:
    """The predicate for the given options, or None when nothing is filtered.

    Raises `UsageError` (exit 2) for a regular expression that does not compile or a sender that
    is not a user id (pattern).
    """
    types, senders = tuple(types), tuple(senders)
    for sender in senders:
        if not sender.startswith("@"):
            raise UsageError(f"--sender {sender!r}: expected a user id like @alice:example.org")
    pattern = None
    if grep is not None:
        try:
            pattern = re.compile(grep)
        except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999}, ((((…
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            shown = grep if len(grep) <= 60 else grep[:59] + "…"
            raise UsageError(f"--grep {shown!r} is not a valid regular expression: {why}") from None
    if not (types or senders or pattern is not None or messages_only):
        return None
    return EventFilter(types, senders, pattern, messages_only)
