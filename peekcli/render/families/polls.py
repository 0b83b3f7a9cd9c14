"""Polls, stable and unstable: the question with numbered answers, votes by name, the tally."""

from __future__ import annotations

from rich.text import Text

from peekcli.render.context import DIM, TAG, Ev, Poll, Room, as_map, as_str, snippet
from peekcli.render.polldata import poll_start, results, selections, text
from peekcli.render.sanitize import one_line

ANSWER_LIMIT = 200


def start(ev: Ev, room: Room) -> Text:
    poll = poll_start(ev.content)
    out = room.who(ev.sender)
    out.append(": ")
    out.append("📊 ", DIM)
    if poll is None:
        fallback = text(ev.content) or "(a poll peek cannot read)"
        out.append(one_line(fallback, 500))
        room.remember(ev, "poll", snippet(fallback))
        return out
    out.append(one_line(poll.question, 500) or "(no question)", TAG)
    for number, (_, answer) in enumerate(poll.answers, start=1):
        out.append(f"\n{number}. ")
        out.append(one_line(answer, ANSWER_LIMIT))
    notes: list[str] = []
    if poll.max_selections > 1:
        notes.append(f"choose up to {poll.max_selections}")
    if not poll.disclosed:
        notes.append("results shown when the poll ends")
    if notes:
        out.append(f"\n({' · '.join(notes)})", DIM)
    room.remember(ev, "poll", snippet(poll.question) or "poll")
    if ev.event_id:
        room.polls.put(
            ev.event_id,
            Poll(poll.question, list(poll.answers), poll.disclosed, poll.max_selections),
        )
    return out


def response(ev: Ev, room: Room) -> Text:
    target = as_map(ev.content.get("m.relates_to")).get("event_id")
    poll = room.polls.get(target)
    picked = selections(ev.content) or []
    out = Text()
    out.append("🗳 ", DIM)
    out.append_text(room.who(ev.sender))
    if poll is None:
        out.append(" voted in a poll")
        return out
    valid = [p for p in dict.fromkeys(picked) if poll.answer(p) is not None]
    valid = valid[: poll.max_selections]
    if not poll.ended:
        old = poll.votes.get(ev.sender)
        if old is None or old[0] <= ev.ts:
            poll.votes[ev.sender] = (ev.ts, valid)
    if not valid:
        out.append(" withdrew their vote" if not picked else " spoiled their vote")
        return out
    out.append(" voted")
    if poll.disclosed:
        answers = " ".join(f"«{one_line(poll.answer(p), ANSWER_LIMIT)}»" for p in valid)
        out.append(f" {answers}")
    return out


def end(ev: Ev, room: Room) -> Text:
    target = as_map(ev.content.get("m.relates_to")).get("event_id")
    poll = room.polls.get(target)
    out = Text()
    out.append("📊 ", DIM)
    out.append_text(room.who(ev.sender))
    if poll is None:
        out.append(" ended a poll")
        fallback = text(ev.content)
        if fallback:
            out.append(f": {one_line(fallback, 300)}", DIM)
        return out
    poll.ended = True
    out.append(" ended the poll ")
    out.append(f"“{one_line(poll.question, 300)}”", TAG)
    tally = results(ev.content)
    counted = tally is None
    if tally is None:
        tally = {}
        for _, picked in poll.votes.values():
            for answer_id in picked:
                tally[answer_id] = tally.get(answer_id, 0) + 1
    parts = [
        f"{one_line(answer, ANSWER_LIMIT)} {tally.get(aid, 0)}" for aid, answer in poll.answers
    ]
    out.append(": ")
    out.append(" · ".join(parts) if parts else "no answers")
    if counted:
        voters = sum(1 for _, picked in poll.votes.values() if picked)
        out.append(
            f" (counted from the {voters} vote{'' if voters == 1 else 's'} peek saw)",
            DIM,
        )
    return out


def title(ev: Ev) -> str | None:
    """For other lines that mention a poll (its question), without rendering it."""
    poll = poll_start(ev.content)
    return poll.question if poll else as_str(text(ev.content))
