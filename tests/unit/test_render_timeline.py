"""Relation folding (peekcli.render.timeline): what a batch of events leaves to show.

This is the API the pretty sink, the text export and the HTML export share; how the folded entries
read on screen is tested in test_render_pretty.py.
"""

from __future__ import annotations

from typing import Any

from peekcli.render.timeline import Timeline, fold, relation_of

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
T0 = 1_795_512_600_000


def msg(
    event_id: str, body: str, sender: str = ALICE, ts: int = 0, *, extra: Any = None
) -> dict[str, Any]:
    content = dict(extra or {})
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": T0 + ts,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def edit(event_id: str, target: str, body: str, sender: str = ALICE, ts: int = 0) -> dict[str, Any]:
    return msg(
        event_id,
        f"* {body}",
        sender,
        ts,
        extra={
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )


def react(event_id: str, target: str, key: str, sender: str = BOB) -> dict[str, Any]:
    return {
        "type": "m.reaction",
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": T0,
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}},
    }


def redact(
    event_id: str, target: str, sender: str = ALICE, reason: str | None = None
) -> dict[str, Any]:
    content: dict[str, Any] = {"redacts": target}
    if reason:
        content["reason"] = reason
    return {
        "type": "m.room.redaction",
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": T0,
        "redacts": target,
        "content": content,
    }


def ids(entries: list[Any]) -> list[str | None]:
    return [e.event_id for e in entries]


def test_latest_valid_edit_applies_and_invalid_ones_are_ignored() -> None:
    entries = fold(
        [
            msg("$m", "helo"),
            edit("$e2", "$m", "hello again", ts=2000),
            edit("$e1", "$m", "hello", ts=1000),  # older, arrives later: not the latest
            edit("$bad", "$m", "pwned", sender=BOB, ts=3000),  # another sender: ignored
            edit("$ee", "$e2", "edit of an edit", ts=4000),  # ignored
        ]
    )
    assert ids(entries) == ["$m"]
    (entry,) = entries
    assert entry.edited and entry.content["body"] == "hello again"


def test_same_timestamp_edits_pick_the_highest_event_id() -> None:
    (entry,) = fold(
        [msg("$m", "a"), edit("$b", "$m", "from b", ts=5), edit("$a", "$m", "from a", ts=5)]
    )
    assert entry.content["body"] == "from b"


def test_edit_keeps_the_original_reply_relation() -> None:
    reply = msg("$r", "re", extra={"m.relates_to": {"m.in_reply_to": {"event_id": "$x"}}})
    (entry,) = fold([reply, edit("$e", "$r", "re!")])
    assert entry.content["body"] == "re!"
    assert entry.content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$x"}}


def test_bundled_edit_is_used_and_its_event_not_shown_twice() -> None:
    original = msg("$m", "old")
    bundled = edit("$e", "$m", "new", ts=10)
    original["unsigned"] = {"m.relations": {"m.replace": bundled}}
    timeline = Timeline(window=1)
    out = timeline.add(original)
    out += timeline.add(msg("$other", "x"))  # pushes "$m" out of the window
    out += timeline.add(bundled)  # the bundled edit arriving on its own later
    out += timeline.finish()
    assert ids(out) == ["$m", "$other"]
    assert out[0].content["body"] == "new" and out[0].edited


def test_bundled_edit_by_another_sender_is_ignored() -> None:
    original = msg("$m", "mine")
    original["unsigned"] = {"m.relations": {"m.replace": edit("$e", "$m", "theirs", sender=BOB)}}
    (entry,) = fold([original])
    assert not entry.edited and entry.content["body"] == "mine"


def test_reactions_are_counted_once_per_sender_and_redacted_ones_vanish() -> None:
    entries = fold(
        [
            msg("$m", "party"),
            react("$r1", "$m", "👍", BOB),
            react("$r2", "$m", "👍", "@carol:example.org"),
            react("$r3", "$m", "👍", BOB),  # duplicate
            react("$r4", "$m", "🎉", BOB),
            react("$r5", "$m", "😢", BOB),
            redact("$x", "$r5", sender=BOB),
        ]
    )
    assert ids(entries) == ["$m"]
    summary = [(r.key, r.count) for r in entries[0].reaction_list()]
    assert summary == [("👍", 2), ("🎉", 1)]


def test_redacted_message_is_one_entry_without_its_content() -> None:
    entries = fold([msg("$m", "my password is hunter2"), redact("$x", "$m", reason="oops")])
    assert ids(entries) == ["$m"]
    entry = entries[0]
    assert entry.deleted is not None and entry.deleted.reason == "oops"
    assert entry.content == {}


def test_server_redacted_message_and_its_redaction_make_one_entry() -> None:
    gone = {
        "type": "m.room.message",
        "event_id": "$m",
        "sender": ALICE,
        "content": {},
        "unsigned": {"redacted_because": redact("$x", "$m", sender=BOB)},
    }
    gone_reaction = {
        "type": "m.reaction",
        "event_id": "$r",
        "sender": BOB,
        "content": {},
        "unsigned": {"redacted_because": redact("$y", "$r", sender=BOB)},
    }
    entries = fold([gone, gone_reaction, redact("$y", "$r", sender=BOB), redact("$x", "$m", BOB)])
    assert ids(entries) == ["$m"]
    assert entries[0].deleted is not None and entries[0].deleted.sender == BOB


def test_thread_root_counts_replies_from_the_batch_or_the_bundle() -> None:
    root = msg("$root", "Lunch?")
    replies = [
        msg(
            f"$t{i}",
            f"reply {i}",
            extra={"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}},
        )
        for i in range(3)
    ]
    entries = fold([root, *replies])
    assert ids(entries) == ["$root", "$t0", "$t1", "$t2"]  # replies stay in order
    assert entries[0].thread is not None and entries[0].thread.count == 3
    bundled = msg("$root", "Lunch?")
    bundled["unsigned"] = {"m.relations": {"m.thread": {"count": 7, "latest_event": replies[2]}}}
    entries = fold([bundled, *replies])
    assert entries[0].thread is not None and entries[0].thread.count == 7


def test_relations_to_unknown_targets_come_out_as_notifications() -> None:
    entries = fold([edit("$e", "$old", "fixed"), react("$r", "$old", "👍"), redact("$x", "$old")])
    assert [e.relation.kind if e.relation else None for e in entries] == [
        "edit",
        "reaction",
        "redaction",
    ]


def test_window_releases_old_entries_and_later_relations_become_notifications() -> None:
    timeline = Timeline(window=2)
    out = []
    for event in [msg("$a", "a"), msg("$b", "b"), msg("$c", "c"), react("$r", "$a", "👍")]:
        out += timeline.add(event)
    out += timeline.finish()
    assert ids(out) == ["$a", "$b", "$c", "$r"]
    assert out[0].reaction_list() == [] and out[3].relation is not None


def test_relation_of_reads_fallback_thread_replies_as_thread_replies() -> None:
    rel = {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$last"},
    }
    relation = relation_of(msg("$t", "x", extra={"m.relates_to": rel}))
    assert relation is not None and (relation.kind, relation.target) == ("thread", "$root")


def test_malformed_events_never_raise() -> None:
    odd: list[Any] = [
        None,
        3,
        {"type": "m.reaction", "content": "x"},
        {"content": {"m.relates_to": 5}},
    ]
    assert len(fold(odd)) == 4
