"""Reading polls (MSC3381): the stable `m.poll.*` events and the unstable
`org.matrix.msc3381.poll.*` ones Element sends. Pure and rich-free, so `filters` (`--grep`) and the
renderer read a poll the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

START_TYPES = frozenset({"m.poll.start", "org.matrix.msc3381.poll.start"})
RESPONSE_TYPES = frozenset({"m.poll.response", "org.matrix.msc3381.poll.response"})
END_TYPES = frozenset({"m.poll.end", "org.matrix.msc3381.poll.end"})
_UNSTABLE_TEXT = "org.matrix.msc1767.text"


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def text(value: Mapping[str, Any]) -> str | None:
    """The text of an extensible-events block: stable `m.text` (a list of representations,
    plain text first) or unstable `org.matrix.msc1767.text` (a string), else `body`."""
    stable = value.get("m.text")
    if isinstance(stable, list):
        bodies = [v.get("body") for v in stable if isinstance(v, Mapping)]
        plain = [
            v.get("body")
            for v in stable
            if isinstance(v, Mapping) and v.get("mimetype") in (None, "text/plain")
        ]
        for body in [*plain, *bodies]:
            if isinstance(body, str):
                return body
    if isinstance(stable, str):
        return stable
    for key in (_UNSTABLE_TEXT, "body"):
        found = value.get(key)
        if isinstance(found, str):
            return found
    return None


@dataclass(frozen=True, slots=True)
class PollStart:
    question: str
    answers: tuple[tuple[str, str], ...]  # (answer id, text)
    disclosed: bool
    max_selections: int


def poll_start(content: Mapping[str, Any]) -> PollStart | None:
    """The poll a start event asks, or None if it is not one."""
    block = _map(content.get("m.poll")) or _map(content.get("org.matrix.msc3381.poll.start"))
    if not block:
        return None
    question = text(_map(block.get("question"))) or ""
    answers: list[tuple[str, str]] = []
    raw = block.get("answers")
    for answer in raw if isinstance(raw, list) else []:
        answer = _map(answer)
        answer_id = answer.get("m.id", answer.get("id"))
        if isinstance(answer_id, str):
            answers.append((answer_id, text(answer) or answer_id))
    kind = block.get("kind")
    disclosed = not (isinstance(kind, str) and kind.endswith("undisclosed"))
    limit = block.get("max_selections")
    max_selections = limit if isinstance(limit, int) and not isinstance(limit, bool) else 1
    return PollStart(question, tuple(answers[:20]), disclosed, max(1, max_selections))


def selections(content: Mapping[str, Any]) -> list[str] | None:
    """The answer ids a response picks ([] = a spoiled or withdrawn vote), None if not one."""
    stable = content.get("m.selections")
    if isinstance(stable, list):
        return [s for s in stable if isinstance(s, str)]
    unstable = _map(content.get("org.matrix.msc3381.poll.response")).get("answers")
    if isinstance(unstable, list):
        return [s for s in unstable if isinstance(s, str)]
    return None


def results(content: Mapping[str, Any]) -> dict[str, int] | None:
    """The tally an end event carries (`m.poll.results`), if any."""
    found = _map(content.get("m.poll.results") or content.get("org.matrix.msc3381.poll.results"))
    tally = {
        k: v for k, v in found.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0
    }
    return tally or None


def searchable(event: Mapping[str, Any]) -> str | None:
    """The text `--grep` searches in a poll start: question and answers, one per line."""
    if event.get("type") not in START_TYPES:
        return None
    poll = poll_start(_map(event.get("content")))
    if poll is None:
        return None
    return "\n".join([poll.question, *(answer for _, answer in poll.answers)])
