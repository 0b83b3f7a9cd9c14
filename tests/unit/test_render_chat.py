"""A room that reads like a chat client (issue 14): what `peek snapshot` prints for a history with
edits, reactions, redactions, replies, threads, polls and spoilers, served by a fake homeserver;
what the live stream says for relations to something printed earlier; colours; `--grep` on polls;
the text and HTML exports of the same room."""

from __future__ import annotations

import colorsys
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from rich.color import Color
from rich.style import Style

from peekcli.render.context import PALETTE_HEX
from peekcli.render.pretty import PrettyRenderer
from peekcli.sinks.terminal import PrettySink, make_console
from tests.unit.timelinehs import HS, TimelineHS

ROOM = "!chat:hs.test"
ALICE, BOB, CAROL = "@alice:hs.test", "@bob:hs.test", "@carol:hs.test"
T0 = 1_795_512_600_000  # Tuesday 24 November 2026 09:30 UTC
SGR = re.compile(r"\x1b\[[0-9;]*m")


class Room:
    """Scripts a conversation: each event one minute after the previous one."""

    def __init__(self, server: TimelineHS) -> None:
        self.server = server

    def send(
        self, sender: str, etype: str, content: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        n = len(self.server.stream)
        event = {
            "type": etype,
            "room_id": ROOM,
            "sender": sender,
            "event_id": f"$e{n}",
            "origin_server_ts": T0 + n * 60_000,
            "content": content,
            **extra,
        }
        self.server.stream.append(event)
        return event

    def say(self, sender: str, body: str, **content: Any) -> str:
        event = self.send(sender, "m.room.message", {"msgtype": "m.text", "body": body, **content})
        return str(event["event_id"])

    def edit(self, sender: str, target: str, body: str) -> str:
        content = {
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        }
        return str(self.send(sender, "m.room.message", content)["event_id"])

    def react(self, sender: str, target: str, key: str) -> str:
        relation = {"rel_type": "m.annotation", "event_id": target, "key": key}
        return str(self.send(sender, "m.reaction", {"m.relates_to": relation})["event_id"])

    def redact(self, sender: str, target: str, reason: str | None = None) -> None:
        content: dict[str, Any] = {"redacts": target}
        if reason:
            content["reason"] = reason
        self.send(sender, "m.room.redaction", content, redacts=target)


@pytest.fixture
def server() -> Iterator[TimelineHS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server = TimelineHS(rsps).install()
        yield server


@pytest.fixture
def room(server: TimelineHS) -> Room:
    room = Room(server)
    for user, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
        room.send(
            user, "m.room.member", {"membership": "join", "displayname": name}, state_key=user
        )
    return room


def snapshot(peek: Any, *args: str) -> list[str]:
    result = peek("snapshot", ROOM, "-s", HS, "--history", "200", "--no-color", *args)
    assert result.exit_code == 0, result.stderr
    lines: list[str] = result.stdout.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("── ")) + 1 :]
    lines = [re.sub(r"^\d\d:\d\d ", "", line) for line in lines]
    return [line for line in lines if not re.fullmatch(r"→ \w+ joined", line)]


def poll_start(room: Room, *, stable: bool, disclosed: bool = True) -> str:
    answers = [("a1", "Café"), ("a2", "Pizza"), ("a3", "Salad")]
    if stable:
        kind = "m.poll.disclosed" if disclosed else "m.poll.undisclosed"
        content: dict[str, Any] = {
            "m.text": [{"body": "Where for lunch?\n1. Café\n2. Pizza\n3. Salad"}],
            "m.poll": {
                "kind": kind,
                "max_selections": 1,
                "question": {"m.text": [{"body": "Where for lunch?"}]},
                "answers": [{"m.id": i, "m.text": [{"body": t}]} for i, t in answers],
            },
        }
        return str(room.send(ALICE, "m.poll.start", content)["event_id"])
    kind = "org.matrix.msc3381.poll." + ("disclosed" if disclosed else "undisclosed")
    content = {
        "org.matrix.msc1767.text": "Where for lunch?\n1. Café\n2. Pizza\n3. Salad",
        "org.matrix.msc3381.poll.start": {
            "kind": kind,
            "max_selections": 1,
            "question": {"org.matrix.msc1767.text": "Where for lunch?"},
            "answers": [{"id": i, "org.matrix.msc1767.text": t} for i, t in answers],
        },
    }
    return str(room.send(ALICE, "org.matrix.msc3381.poll.start", content)["event_id"])


def vote(room: Room, sender: str, poll: str, answer: str, *, stable: bool) -> None:
    relation = {"rel_type": "m.reference", "event_id": poll}
    if stable:
        content = {"m.selections": [answer], "m.relates_to": relation}
        room.send(sender, "m.poll.response", content)
    else:
        content = {
            "org.matrix.msc3381.poll.response": {"answers": [answer]},
            "m.relates_to": relation,
        }
        room.send(sender, "org.matrix.msc3381.poll.response", content)


# -- history: relations folded into their targets --------------------------------------------------


def test_history_folds_edits_reactions_and_redactions(room: Room, peek: Any) -> None:
    hello = room.say(ALICE, "helo everyone")
    room.edit(ALICE, hello, "hello everyone")
    room.edit(BOB, hello, "Bob was here")  # another sender: ignored
    first = room.edit(ALICE, hello, "hello everyone!")
    room.edit(ALICE, first, "edit of an edit")  # ignored
    room.react(BOB, hello, "👍")
    room.react(CAROL, hello, "👍")
    room.react(BOB, hello, "🎉")
    oops = room.react(CAROL, hello, "😢")
    room.redact(CAROL, oops)
    secret = room.say(BOB, "oops, my password is hunter2")
    room.redact(BOB, secret, reason="wrong room")
    lines = snapshot(peek)
    assert lines == [
        "Alice: hello everyone! (edited)",
        "      👍 2 · 🎉 1",
        "Bob: (message deleted) (reason: wrong room)",
    ]


def test_reply_quotes_its_target_on_its_own_block(room: Room, peek: Any) -> None:
    question = room.say(ALICE, "Anyone up for lunch at noon?")
    room.say(CAROL, "I am in a meeting")
    fallback = "> <@alice:hs.test> Anyone up for lunch at noon?\n\nyes, count me in"
    room.say(BOB, fallback, **{"m.relates_to": {"m.in_reply_to": {"event_id": question}}})
    lines = snapshot(peek)
    assert lines == [
        "Alice: Anyone up for lunch at noon?",
        "Carol: I am in a meeting",
        "Bob ↳ replying to Alice: “Anyone up for lunch at noon?”",
        "      yes, count me in",
    ]


def test_thread_root_counts_its_replies_and_replies_name_their_thread(
    room: Room, peek: Any
) -> None:
    root = room.say(ALICE, "Release notes thread")
    thread = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    thread["m.in_reply_to"] = {"event_id": root}
    room.say(BOB, "looks good", **{"m.relates_to": thread})
    room.say(CAROL, "ship it", **{"m.relates_to": thread})
    lines = snapshot(peek)
    assert lines == [
        "Alice: Release notes thread",
        "      🧵 2 replies",
        "Bob 🧵 in thread “Release notes thread”",
        "      looks good",
        "Carol 🧵 in thread “Release notes thread”",
        "      ship it",
    ]


@pytest.mark.parametrize("stable", [True, False], ids=["m.poll", "msc3381"])
def test_polls_read_as_question_answers_votes_and_a_counted_tally(
    room: Room, peek: Any, stable: bool
) -> None:
    poll = poll_start(room, stable=stable)
    vote(room, BOB, poll, "a1", stable=stable)
    vote(room, CAROL, poll, "a2", stable=stable)
    vote(room, CAROL, poll, "a1", stable=stable)  # changed their mind: the latest vote counts
    end_type = "m.poll.end" if stable else "org.matrix.msc3381.poll.end"
    relation = {"rel_type": "m.reference", "event_id": poll}
    room.send(ALICE, end_type, {"m.relates_to": relation, "body": "Ended poll"})
    assert snapshot(peek) == [
        "Alice: 📊 Where for lunch?",
        "      1. Café",
        "      2. Pizza",
        "      3. Salad",
        "🗳 Bob voted «Café»",
        "🗳 Carol voted «Pizza»",
        "🗳 Carol voted «Café»",
        "📊 Alice ended the poll “Where for lunch?”: Café 2 · Pizza 0 · Salad 0 (counted from "
        "the 2 votes peek saw)",
    ]


def test_undisclosed_poll_hides_the_vote_and_results_come_from_the_end(
    room: Room, peek: Any
) -> None:
    poll = poll_start(room, stable=True, disclosed=False)
    vote(room, BOB, poll, "a3", stable=True)
    content = {
        "m.relates_to": {"rel_type": "m.reference", "event_id": poll},
        "m.text": [{"body": "The poll has ended. Top answer: Salad"}],
        "m.poll.results": {"a1": 0, "a2": 4, "a3": 7},
    }
    room.send(ALICE, "m.poll.end", content)
    lines = snapshot(peek)
    assert lines[4:] == [
        "      (results shown when the poll ends)",
        "🗳 Bob voted",
        "📊 Alice ended the poll “Where for lunch?”: Café 0 · Pizza 4 · Salad 7",
    ]


@pytest.mark.parametrize("stable", [True, False], ids=["m.poll", "msc3381"])
def test_grep_matches_poll_questions_and_answers(room: Room, peek: Any, stable: bool) -> None:
    poll_start(room, stable=stable)
    room.say(BOB, "unrelated")
    for pattern in ("lunch", "Pizza"):
        lines = snapshot(peek, "--grep", pattern, "--reset")
        assert lines[0] == "Alice: 📊 Where for lunch?", pattern
        assert "unrelated" not in "\n".join(lines)


def spoiler(room: Room) -> None:
    room.say(
        BOB,
        "the butler did it",
        format="org.matrix.custom.html",
        formatted_body='It was <span data-mx-spoiler="the ending">the butler</span> all along',
    )


def test_spoilers_are_hidden_unless_asked(room: Room, peek: Any) -> None:
    spoiler(room)
    assert snapshot(peek) == ["Bob: It was [spoiler: the ending] all along"]
    shown = snapshot(peek, "--spoilers", "--reset")
    assert shown == ["Bob: It was [spoiler: the ending] the butler all along"]


# -- live stream: notifications for what was printed in an earlier batch --------------------------


def sink_output(*batches: list[dict[str, Any]]) -> list[str]:
    out = io.StringIO()
    sink = PrettySink(make_console(out, False), PrettyRenderer())
    for batch in batches:
        for event in batch:
            sink.write(event)
        sink.flush()
    return [re.sub(r"^\d\d:\d\d ", "", line) for line in out.getvalue().splitlines()[1:]]


def test_live_relations_to_earlier_batches_read_like_notifications(
    room: Room, server: TimelineHS
) -> None:
    hello = room.say(ALICE, "see you at 10")
    early = list(server.stream)
    del server.stream[:]
    room.edit(ALICE, hello, "see you at 11")
    room.react(BOB, hello, "👍")
    room.redact(ALICE, hello)
    assert sink_output(early, list(server.stream))[-4:] == [
        "Alice: see you at 10",
        "✎ Alice edited their message “see you at 10”: see you at 11",
        "Bob reacted 👍 to Alice's message “see you at 11”",
        "✗ Alice deleted their message",
    ]


# -- colours -------------------------------------------------------------------------------------


def test_palette_hues_are_distinct_and_mid_tone() -> None:
    hues = []
    for hex_colour in PALETTE_HEX:
        triplet = Color.parse(hex_colour).get_truecolor()
        r, g, b = (c / 255 for c in triplet)
        hue, lightness, _ = colorsys.rgb_to_hls(r, g, b)
        hues.append(hue * 360)
        assert 0.25 <= lightness <= 0.7, hex_colour  # readable on dark and light backgrounds
        # an exact xterm-256 colour: a 256-colour terminal shows the same hue, not a neighbour
        assert Color.parse(hex_colour).downgrade(2).get_truecolor() == triplet
    for i, a in enumerate(hues):
        for b in hues[i + 1 :]:
            assert min(abs(a - b), 360 - abs(a - b)) >= 30


@pytest.fixture
def fresh_rich_styles() -> None:
    """rich caches combined styles with the escape codes of the first colour system they were
    printed with; other tests of this process print with 8 colours."""
    for name in dir(Style):
        cached = getattr(Style, name, None)
        if callable(getattr(cached, "cache_clear", None)):
            cached.cache_clear()


@pytest.mark.usefixtures("fresh_rich_styles")
def test_only_the_sender_name_is_coloured(room: Room, peek: Any) -> None:
    hello = room.say(ALICE, "hello")
    room.say(BOB, "hi")
    room.send(CAROL, "m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2"})
    room.send(BOB, "m.sticker", {"body": "wave", "url": "mxc://hs.test/wave", "info": {}})
    room.redact(ALICE, hello)
    room.react(CAROL, "$unknown", "👍")
    env = {"TERM": "xterm-256color"}  # the issue: shades 167 and 168 could not be told apart
    result = peek("snapshot", ROOM, "-s", HS, "--history", "200", "--color", env=env)
    lines = result.stdout.splitlines()[4:]
    lines = [line for line in lines if "joined" not in line and not line.startswith(" ")]
    for name, line in zip(["Alice", "Bob", "Carol", "Bob", "Carol"], lines, strict=False):
        # the name is one bold coloured span, and the style is reset right after it
        match = re.search(r"\x1b\[1;(?:3\d|38;5;\d+|38;2;\d+;\d+;\d+)m" + name + r"\x1b\[0m", line)
        assert match, repr(line)
        rest = line[match.end() :]
        assert not re.search(r"\x1b\[[0-9;]*3[0-8]", rest), repr(line)  # nothing else coloured
    # Each name in one of the palette's eight xterm-256 colours, never a neighbouring shade.
    palette = {"38;5;167", "38;5;172", "38;5;106", "38;5;34", "38;5;37", "38;5;69", "38;5;135"}
    palette.add("38;5;169")
    used = {m.group(1) for m in (re.search(r"\x1b\[1;([0-9;]+)m", line) for line in lines) if m}
    assert used and used <= palette, (used, lines)


# -- exports --------------------------------------------------------------------------------------


def test_text_and_html_exports_fold_and_hide_spoilers_without_script(
    room: Room, peek: Any, tmp_path: Path
) -> None:
    hello = room.say(ALICE, "helo")
    room.edit(ALICE, hello, "hello")
    room.react(BOB, hello, "👍")
    spoiler(room)
    text_file, html_file = tmp_path / "room.txt", tmp_path / "room.html"
    for fmt, target in (("text", text_file), ("html", html_file)):
        result = peek("export", ROOM, "-s", HS, "--format", fmt, "-o", str(target))
        assert result.exit_code == 0, result.stderr
    text = text_file.read_text(encoding="utf-8")
    assert re.search(r"\d\d:\d\d:\d\d Alice: hello \(edited\)\n +👍 1\n", text), text
    assert "* hello" not in text and "reacted" not in text
    assert "[spoiler: the ending] all along" in text and "butler" not in text
    page = html_file.read_text(encoding="utf-8")
    assert "<script" not in page
    # The spoiler is on the page, hidden by CSS until hovered or focused (no script needed).
    assert re.search(r'<span class="spoiler" tabindex="0"[^>]*>the butler</span>', page)
    assert ".spoiler:hover, .spoiler:focus" in page
