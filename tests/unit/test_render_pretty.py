"""What a person watching a room sees: whole rendered output per event type, and hostile input."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Text

from peekcli.render.pretty import PrettyRenderer, RoomInfo

FIXTURES = Path(__file__).parent / "fixtures" / "events"
UTC = dt.UTC
T0 = 1_795_512_600_000  # Tuesday 24 November 2026 09:30 UTC
ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!peek:example.org"


def load(name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return events


def plain(*renderables: Any, width: int = 80) -> str:
    """Print like a pipe would: no colour, fixed width."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    for renderable in renderables:
        console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def coloured(*renderables: Any, width: int = 80) -> str:
    console = Console(
        file=io.StringIO(), width=width, color_system="truecolor", force_terminal=True
    )
    for renderable in renderables:
        console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def renderer(**kwargs: Any) -> PrettyRenderer:
    """A renderer that knows the room (state.json) and has printed today's date line already."""
    kwargs.setdefault("tz", UTC)
    kwargs.setdefault("homeserver", "https://matrix.example.org")
    r = PrettyRenderer(**kwargs)
    r.learn_state(load("state.json"))
    r.render(message("$prime", ALICE, "prime", ts=T0 - 60_000))
    return r


def message(
    event_id: str, sender: str, body: object, ts: object = T0, **content: Any
) -> dict[str, Any]:
    return {
        "content": {"msgtype": "m.text", "body": body, **content},
        "event_id": event_id,
        "origin_server_ts": ts,
        "room_id": ROOM,
        "sender": sender,
        "type": "m.room.message",
        "unsigned": {"age": 10},
    }


def event(etype: str, content: object, sender: str = ALICE, **extra: Any) -> dict[str, Any]:
    return {
        "content": content,
        "event_id": f"$ev_{etype}",
        "origin_server_ts": T0,
        "room_id": ROOM,
        "sender": sender,
        "type": etype,
        "unsigned": {"age": 10},
        **extra,
    }


def show(r: PrettyRenderer, *events: Any, width: int = 80) -> str:
    return plain(*[line for e in events for line in r.render(e)], width=width)


# -- the whole conversation ----------------------------------------------------------------------

TRANSCRIPT = """\
── Tuesday 24 November 2026 ──
09:30 Alice: Good morning! Has anyone tried the new release yet?
09:31 Bob: Yes — peek watch works great
      ▎ quoted line
09:32 Sam (@sam1:example.org): Three things:
      1. install
      2. run
      3. enjoy
09:33 Mod: Reminder: be nice.
09:34 * Alice waves at everyone
09:35 Bob ↳ replying to Alice: “Good morning! Has anyone tried the new…”
      I did, it is fast
09:36 ✎ Alice edited their message “Good morning! Has anyone tried the new…”:
      Good morning! Has anyone tried release 2.0 yet?
09:37 Sam (@sam2:example.org) reacted 👍 to Bob's message “I did, it is fast”
09:38 ✗ Sam (@sam2:example.org) removed their reaction 👍
09:39 ✗ Mod deleted Sam (@sam1:example.org)'s message (reason: off-topic)
09:40 Alice: [image] sunrise.jpg (240.0 KiB, 1920×1080)
      mxc://example.org/SunRise123
      https://matrix.example.org/_matrix/client/v1/media/download/example.org/Su
      nRise123
09:41 Bob: [file] report.pdf (1.0 MiB)
      Quarterly report, please read
      mxc://example.org/Report456
      https://matrix.example.org/_matrix/client/v1/media/download/example.org/Re
      port456
09:42 Sam (@sam1:example.org): [audio] Voice message.ogg (47.1 KiB, 0:14)
      mxc://example.org/Voice789
      https://matrix.example.org/_matrix/client/v1/media/download/example.org/Vo
      ice789
09:43 Alice: [video] demo.mp4 (7.0 MiB, 1280×720, 1:02:05)
      mxc://example.org/Demo000
      https://matrix.example.org/_matrix/client/v1/media/download/example.org/De
      mo000
09:44 Bob: [location] Office · 52.5200, 13.4050
      https://www.openstreetmap.org/?mlat=52.5200&mlon=13.4050#map=16/52.5200/13
      .4050
09:45 Sam (@sam1:example.org): [sticker] Thumbs up (256×256)
      mxc://example.org/Sticker1
      https://matrix.example.org/_matrix/client/v1/media/download/example.org/St
      icker1
09:46 Alice 🧵 in thread “Good morning! Has anyone tried release…”
      Replying in the thread
09:47 Bob: 🔒 encrypted message (cannot be read without joining and keys)
09:48 Sam (@sam2:example.org): (message deleted by Mod) (reason: spam)
09:49 → Carol joined
09:50 • @carol:example.org changed display name from Carol to Caroline
09:51 • @carol:example.org changed avatar
09:52 ← Mod kicked Caroline (reason: testing kicks)
09:53 ← Mod banned @spammer:evil.example (reason: spam)
09:54 ← Mod unbanned @spammer:evil.example
09:55 → Alice invited Dan
09:56 ← Dan rejected the invite
09:57 ← Bob left
09:58 • Alice renamed the room to “Peek release chat”
09:59 • Alice changed the topic to: Release 2.0 discussion
      Be kind
10:00 • Alice set the main address to #release:example.org (also
      #peek:example.org)
10:01 • Alice made future history visible to members, including history from
      before they joined (shared)
10:02 • Alice forbade guests from joining the room
10:03 • Alice made the room invite-only
10:04 • Alice changed the power levels: Sam (@sam1:example.org) 0→50, ban
      50→100, m.room.topic default→50
10:05 • Alice pinned Bob's message “Yes — peek watch works great ▎ quoted…”
10:06 • Alice changed the server ACL: allow *; deny evil.example,
      *.spam.example; IP literals denied
10:07 • Alice changed the room avatar (mxc://example.org/RoomAvatar)
10:08 Sam (@sam1:example.org): 📊 Lunch?
23:58 🔒 Alice enabled end-to-end encryption (m.megolm.v1.aes-sha2): new
      messages cannot be read by peek
── Wednesday 25 November 2026 ──
00:02 • Alice replaced this room: This room has been replaced
      room replaced by !NewRoomId123:example.org — watch it with: peek watch
      '!NewRoomId123:example.org'
      … Alice, Sam (@sam1:example.org) are typing
      … nobody is typing
      ✓ read by Alice, Sam (@sam2:example.org) up to “Yes — peek watch works
      great ▎ quoted…”
      ● Bob is unavailable: lunch
"""


def test_timeline_fixture_renders_as_a_chat_transcript() -> None:
    r = PrettyRenderer(tz=UTC, homeserver="https://matrix.example.org")
    r.learn_state(load("state.json"))
    events = load("timeline.json") + load("ephemeral.json")
    assert show(r, *events) == TRANSCRIPT


def test_state_events_are_learned_silently() -> None:
    r = PrettyRenderer(tz=UTC)
    r.learn_state(load("state.json"))
    assert show(r, message("$1", BOB, "hi")) == ("── Tuesday 24 November 2026 ──\n09:30 Bob: hi\n")


# -- header ---------------------------------------------------------------------------------------


def test_header_full() -> None:
    info = RoomInfo(
        room_id=ROOM,
        name="Peek test room",
        canonical_alias="#peek:example.org",
        topic="Testing peek\nsecond line",
        members=42,
        resuming=True,
        identity="guest",
    )
    assert plain(PrettyRenderer().header(info)) == (
        "Peek test room  #peek:example.org  !peek:example.org\n"
        "Testing peek⏎second line\n"
        "42 members · resuming from saved position · watching as guest\n"
    )


def test_header_minimal() -> None:
    info = RoomInfo(room_id=ROOM, members=1, identity="@bob:example.org")
    assert plain(PrettyRenderer().header(info)) == (
        "!peek:example.org\n"  # the id is the title: not twice
        "1 member · starting fresh · watching as @bob:example.org\n"
    )


def test_header_is_sanitised() -> None:
    info = RoomInfo(room_id=ROOM, name="\x1b[2Jevil[bold]x[/bold]", topic="\u202etopic")
    out = coloured(PrettyRenderer().header(info))
    assert "\\x1b[2Jevil[bold]x[/bold]" in out
    assert "\\u202etopic" in out
    assert "\u202e" not in out


# -- lines, times, labels ------------------------------------------------------------------------


def test_seconds_and_date_line() -> None:
    r = PrettyRenderer(tz=UTC, seconds=True)
    out = show(
        r, message("$1", ALICE, "one", ts=T0 + 5_000), message("$2", ALICE, "two", T0 + 86_400_000)
    )
    assert out == (
        "── Tuesday 24 November 2026 ──\n"
        "09:30:05 @alice:example.org: one\n"
        "── Wednesday 25 November 2026 ──\n"
        "09:30:00 @alice:example.org: two\n"
    )


def test_tz_parameter_sets_local_time() -> None:
    r = PrettyRenderer(tz=dt.timezone(dt.timedelta(hours=-10)))
    assert show(r, message("$1", ALICE, "late")) == (
        "── Monday 23 November 2026 ──\n23:30 @alice:example.org: late\n"
    )


def test_room_label_prefixes_every_line_in_a_stable_colour() -> None:
    r = PrettyRenderer(tz=UTC, room_label="#peek")
    out = show(r, message("$1", ALICE, "hello\nworld"))
    assert out == (
        "#peek ── Tuesday 24 November 2026 ──\n"
        "#peek 09:30 @alice:example.org: hello\n"
        "            world\n"
    )
    first = r.render(message("$2", ALICE, "x"))[0]
    other = PrettyRenderer(tz=UTC, room_label="#peek").render(message("$3", BOB, "y"))[-1]
    assert first.get_style_at_offset(Console(), 0) == other.get_style_at_offset(Console(), 0)


def test_long_lines_wrap_under_the_message_column() -> None:
    r = renderer()
    body = "word " * 30
    assert show(r, message("$1", ALICE, body.strip()), width=40) == (
        "09:30 Alice: word word word word word\n"
        "      word word word word word word word\n"
        "      word word word word word word word\n"
        "      word word word word word word word\n"
        "      word word word word\n"
    )


def test_lines_are_plain_text_too() -> None:
    """Callers that need a string (logs, tests) can use .plain: gutter + body."""
    r = renderer()
    (line,) = r.render(message("$1", ALICE, "a\nb"))
    assert line.plain == "09:30 Alice: a\nb"


def test_missing_timestamp_shows_placeholder_without_date_line() -> None:
    r = PrettyRenderer(tz=UTC)
    assert show(r, message("$1", ALICE, "x", ts=None)) == "--:-- @alice:example.org: x\n"
    assert show(r, message("$2", ALICE, "y", ts="1795512600000")) == "--:-- @alice:example.org: y\n"


# -- senders ---------------------------------------------------------------------------------------


def test_display_names_follow_member_events_and_disambiguate() -> None:
    r = renderer()
    assert (
        show(r, message("$1", "@sam1:example.org", "hi")) == "09:30 Sam (@sam1:example.org): hi\n"
    )
    # sam2 leaves: "Sam" is unique again
    leave = event(
        "m.room.member",
        {"membership": "leave"},
        sender="@sam2:example.org",
        state_key="@sam2:example.org",
        unsigned={"prev_content": {"membership": "join", "displayname": "Sam"}},
    )
    assert show(r, leave, message("$2", "@sam1:example.org", "hi")) == (
        "09:30 ← Sam (@sam2:example.org) left\n09:30 Sam: hi\n"
    )


def test_display_name_that_looks_like_another_user_id_is_disambiguated() -> None:
    r = renderer()
    join = event(
        "m.room.member",
        {"membership": "join", "displayname": "@alice:example.org"},
        sender="@mallory:evil.example",
        state_key="@mallory:evil.example",
    )
    out = show(r, join, message("$1", "@mallory:evil.example", "trust me"))
    assert out == (
        "09:30 → @alice:example.org (@mallory:evil.example) joined\n"
        "09:30 @alice:example.org (@mallory:evil.example): trust me\n"
    )


def _sender_style(line: Text, name: str) -> Style:
    offset = line.plain.index(name)
    return line.get_style_at_offset(Console(), offset)


def test_sender_colour_is_stable_across_renderers() -> None:
    a = PrettyRenderer(tz=UTC).render(message("$1", ALICE, "x"))[-1]
    b = PrettyRenderer(tz=UTC, seconds=True).render(message("$2", ALICE, "y"))[-1]
    c = PrettyRenderer(tz=UTC).render(message("$3", BOB, "z"))[-1]
    style_a = _sender_style(a, ALICE)
    assert style_a == _sender_style(b, ALICE)
    assert style_a.color is not None and style_a.bold
    assert _sender_style(c, BOB).color != style_a.color  # crc32 puts these two apart


# -- messages --------------------------------------------------------------------------------------


def test_text_notice_emote() -> None:
    r = renderer()
    notice = message("$1", BOB, "beep", msgtype="m.notice")
    emote = message("$2", BOB, "dances", msgtype="m.emote")
    assert show(r, message("$0", BOB, "hi"), notice, emote) == (
        "09:30 Bob: hi\n09:30 Bob: beep\n09:30 * Bob dances\n"
    )
    (line,) = r.render(notice)
    assert _sender_style(line, "beep").dim


def test_html_body_is_rendered_with_styles() -> None:
    r = renderer()
    ev = message(
        "$1",
        BOB,
        "**bold** and `code`",
        format="org.matrix.custom.html",
        formatted_body="<strong>bold</strong> and <code>code</code><br>"
        "<ol><li>first</li><li>second</li></ol>",
    )
    (line,) = r.render(ev)
    assert plain(line) == "09:30 Bob: bold and code\n      1. first\n      2. second\n"
    assert _sender_style(line, "bold").bold


def test_emote_with_html() -> None:
    r = renderer()
    ev = message(
        "$1",
        BOB,
        "is *happy*",
        msgtype="m.emote",
        format="org.matrix.custom.html",
        formatted_body="is <em>happy</em>",
    )
    assert show(r, ev) == "09:30 * Bob is happy\n"


def test_reply_to_unknown_event_and_plain_fallback_stripping() -> None:
    r = renderer()
    ev = message(
        "$1",
        BOB,
        "> <@alice:example.org> something old\n> second line\n\nmy answer\n> not a fallback",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": "$gone"}}},
    )
    assert show(r, ev) == (
        "09:30 Bob ↳ replying to an earlier message\n      my answer\n      > not a fallback\n"
    )


def test_quote_without_reply_relation_is_kept() -> None:
    r = renderer()
    assert show(r, message("$1", BOB, "> quoted\n\nanswer")) == (
        "09:30 Bob: > quoted\n      \n      answer\n"
    )


def test_reply_to_known_event_in_html_only_reply() -> None:
    r = renderer()
    original = message(
        "$orig", ALICE, "The quick brown fox jumps over the lazy dog again and again"
    )
    reply = message(
        "$r",
        BOB,
        "agreed",
        format="org.matrix.custom.html",
        formatted_body="<mx-reply><blockquote>old</blockquote></mx-reply>agreed",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}}},
    )
    assert show(r, original, reply) == (
        "09:30 Alice: The quick brown fox jumps over the lazy dog again and again\n"
        "09:30 Bob ↳ replying to Alice: “The quick brown fox jumps over the lazy…”\n"
        "      agreed\n"
    )


def test_edit_of_unknown_message_and_fallback_without_new_content() -> None:
    r = renderer()
    edit = message(
        "$e",
        ALICE,
        "* fixed",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "fixed"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$unknown"},
        },
    )
    bare = message(
        "$e2",
        ALICE,
        "* fixed again",
        **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}},
    )
    assert show(r, edit, bare) == (
        "09:30 ✎ Alice edited a message: fixed\n09:30 ✎ Alice edited a message: fixed again\n"
    )


def test_edit_by_someone_else_is_ignored_as_the_spec_says() -> None:
    r = renderer()
    original = message("$o", ALICE, "original words")
    edit = message(
        "$e",
        "@mallory:evil.example",
        "* forged",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "forged"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"},
        },
    )
    reply = message("$r", BOB, "ok", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$o"}}})
    assert show(r, original, edit, reply) == (
        "09:30 Alice: original words\n09:30 Bob ↳ replying to Alice: “original words”\n      ok\n"
    )


def test_edit_updates_what_later_events_quote() -> None:
    r = renderer()
    original = message("$o", ALICE, "typo here")
    edit = message(
        "$e",
        ALICE,
        "* fixed here",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "fixed here"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$o"},
        },
    )
    reaction = event(
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$o", "key": "🎉"}},
        sender=BOB,
    )
    assert show(r, original, edit, reaction) == (
        "09:30 Alice: typo here\n"
        "09:30 ✎ Alice edited their message “typo here”: fixed here\n"
        "09:30 Bob reacted 🎉 to Alice's message “fixed here”\n"
    )


def test_redactions() -> None:
    r = renderer()
    unknown = event("m.room.redaction", {"reason": "spam"}, sender=BOB, redacts="$nope")
    own = message("$mine", BOB, "oops wrong room")
    delete_own = event("m.room.redaction", {"redacts": "$mine"}, sender=BOB)
    reply = message(
        "$r", ALICE, "what?", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$mine"}}}
    )
    assert show(r, unknown, own, delete_own, reply) == (
        "09:30 ✗ Bob deleted a message (reason: spam)\n"
        "09:30 Bob: oops wrong room\n"
        "09:30 ✗ Bob deleted their message\n"  # never the deleted text again
        "09:30 Alice ↳ replying to Bob's deleted message\n"
        "      what?\n"
    )


def test_already_redacted_event() -> None:
    r = renderer()
    ev = message("$1", BOB, None)
    ev["content"] = {}
    ev["unsigned"]["redacted_because"] = {"sender": BOB, "type": "m.room.redaction", "content": {}}
    assert show(r, ev) == "09:30 Bob: (message deleted)\n"


def test_reaction_to_unknown_message() -> None:
    r = renderer()
    ev = event(
        "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "❤️"}}
    )
    assert show(r, ev) == "09:30 Alice reacted ❤️ to a message\n"


def test_thread_reply_that_is_a_real_reply() -> None:
    r = renderer()
    root = message("$root", ALICE, "thread root")
    ev = message(
        "$t",
        BOB,
        "in thread",
        **{
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": "$root",
                "is_falling_back": False,
                "m.in_reply_to": {"event_id": "$root"},
            }
        },
    )
    assert show(r, root, ev) == (
        "09:30 Alice: thread root\n09:30 Bob 🧵 in thread “thread root”\n      in thread\n"
    )


def test_media_without_homeserver_uses_a_relative_download_path() -> None:
    r = PrettyRenderer(tz=UTC)
    ev = message("$1", ALICE, "x.bin", msgtype="m.file", url="mxc://example.org/abc")
    assert show(r, ev) == (
        "── Tuesday 24 November 2026 ──\n"
        "09:30 @alice:example.org: [file] x.bin\n"
        "      mxc://example.org/abc\n"
        "      /_matrix/client/v1/media/download/example.org/abc\n"
    )


def test_encrypted_attachment_and_bad_mxc() -> None:
    r = renderer()
    enc = message(
        "$1", ALICE, "secret.png", msgtype="m.image", file={"url": "mxc://example.org/enc"}
    )
    bad = message("$2", ALICE, "y.png", msgtype="m.image", url="https://not-mxc.example/y.png")
    assert show(r, enc, bad) == (
        "09:30 Alice: [image] secret.png\n"  # no download link to ciphertext
        "      🔒 encrypted attachment (cannot be opened without the room's keys)\n"
        "09:30 Alice: [image] y.png\n"
        "      https://not-mxc.example/y.png\n"
    )


# -- membership and state (one event each) ---------------------------------------------------------

MEMBER_CASES = [
    (
        "knock",
        {"membership": "knock", "reason": "let me in"},
        "@dan:example.org",
        "@dan:example.org",
        {},
        "09:30 → @dan:example.org knocked (reason: let me in)\n",
    ),
    (
        "withdraw knock",
        {"membership": "leave"},
        "@dan:example.org",
        "@dan:example.org",
        {"membership": "knock"},
        "09:30 ← @dan:example.org withdrew their knock\n",
    ),
    (
        "reject knock",
        {"membership": "leave"},
        ALICE,
        "@dan:example.org",
        {"membership": "knock"},
        "09:30 ← Alice rejected the knock of @dan:example.org\n",
    ),
    (
        "revoke invite",
        {"membership": "leave"},
        ALICE,
        "@dan:example.org",
        {"membership": "invite"},
        "09:30 ← Alice withdrew the invite for @dan:example.org\n",
    ),
    (
        "set name",
        {"membership": "join", "displayname": "Dan"},
        "@dan:example.org",
        "@dan:example.org",
        {"membership": "join"},
        "09:30 • @dan:example.org set display name to Dan\n",
    ),
    (
        "remove name",
        {"membership": "join"},
        BOB,
        BOB,
        {"membership": "join", "displayname": "Bob"},
        "09:30 • @bob:example.org removed display name Bob\n",
    ),
    (
        "name and avatar",
        {"membership": "join", "displayname": "Robert", "avatar_url": "mxc://a/b"},
        BOB,
        BOB,
        {"membership": "join", "displayname": "Bob"},
        "09:30 • @bob:example.org changed display name from Bob to Robert and changed\n"
        "      avatar\n",
    ),
    (
        "no change",
        {"membership": "join", "displayname": "Bob"},
        BOB,
        BOB,
        {"membership": "join", "displayname": "Bob"},
        "09:30 • @bob:example.org updated their profile\n",
    ),
    (
        "odd membership",
        {"membership": "floating"},
        ALICE,
        BOB,
        {},
        "09:30 • Alice set the membership of Bob to floating\n",
    ),
]


@pytest.mark.parametrize(
    ("content", "sender", "target", "prev", "expected"),
    [case[1:] for case in MEMBER_CASES],
    ids=[case[0] for case in MEMBER_CASES],
)
def test_membership(
    content: dict[str, Any], sender: str, target: str, prev: dict[str, Any], expected: str
) -> None:
    r = renderer()
    unsigned: dict[str, Any] = {"age": 1}
    if prev:
        unsigned["prev_content"] = prev
    ev = event("m.room.member", content, sender=sender, state_key=target, unsigned=unsigned)
    assert show(r, ev) == expected


STATE_CASES = [
    ("m.room.name", {}, {}, "09:30 • Alice removed the room name\n"),
    ("m.room.topic", {"topic": ""}, {}, "09:30 • Alice removed the topic\n"),
    ("m.room.avatar", {}, {}, "09:30 • Alice removed the room avatar\n"),
    (
        "m.room.canonical_alias",
        {},
        {"alias": "#old:example.org"},
        "09:30 • Alice removed the main address\n",
    ),
    (
        "m.room.canonical_alias",
        {"alias": "#peek:example.org", "alt_aliases": ["#a:x", "#b:x"]},
        {"alias": "#peek:example.org"},
        "09:30 • Alice set the alternative addresses to #a:x, #b:x\n",
    ),
    (
        "m.room.history_visibility",
        {"history_visibility": "joined"},
        {},
        "09:30 • Alice made future history visible to members, from when they joined\n"
        "      (joined)\n",
    ),
    (
        "m.room.guest_access",
        {"guest_access": "can_join"},
        {},
        "09:30 • Alice allowed guests to join the room\n",
    ),
    (
        "m.room.join_rules",
        {"join_rule": "knock"},
        {},
        "09:30 • Alice made the room invite-only: anyone can ask to join\n",
    ),
    (
        "m.room.power_levels",
        {"users": {ALICE: 100, BOB: 50}},
        {},
        "09:30 • Alice set the power levels: Alice 100, Bob 50\n",
    ),
    (
        "m.room.power_levels",
        {"users": {ALICE: 100}},
        {"users": {ALICE: 100}},
        "09:30 • Alice changed the power levels\n",
    ),
    (
        "m.room.pinned_events",
        {"pinned": ["$a", "$b"]},
        {},
        "09:30 • Alice pinned 2 messages\n",
    ),
    (
        "m.room.pinned_events",
        {"pinned": []},
        {"pinned": ["$a"]},
        "09:30 • Alice unpinned a message\n",
    ),
    (
        "m.room.pinned_events",
        {"pinned": ["$b", "$c"]},
        {"pinned": ["$a"]},
        "09:30 • Alice pinned 2 and unpinned 1 messages\n",
    ),
    (
        "m.room.create",
        {"room_version": "11", "type": "m.space", "predecessor": {"room_id": "!old:example.org"}},
        {},
        "09:30 • Alice created the space (version 11), replacing !old:example.org\n",
    ),
    ("m.room.create", {}, {}, "09:30 • Alice created the room (version 1)\n"),
    (
        "m.room.third_party_invite",
        {"display_name": "d...@example.com"},
        {},
        "09:30 → Alice invited d...@example.com (third-party invite)\n",
    ),
    (
        "m.room.tombstone",
        {"replacement_room": "not a room id"},
        {},
        "09:30 • Alice replaced this room\n      room replaced by not a room id\n",
    ),
    (
        "m.space.child",
        {"via": ["example.org"]},
        {},
        "09:30 • Alice added !child:example.org to this space\n",
    ),
    ("m.space.child", {}, {}, "09:30 • Alice removed !child:example.org from this space\n"),
    (
        "m.space.parent",
        {"via": ["example.org"]},
        {},
        "09:30 • Alice set !child:example.org as a parent space\n",
    ),
    (
        "m.room.encryption",
        {},
        {},
        "09:30 🔒 Alice enabled end-to-end encryption: new messages cannot be read by\n"
        "      peek\n",
    ),
    ("com.example.state", {}, {}, "09:30 • Alice set com.example.state [!child:example.org]\n"),
]


@pytest.mark.parametrize(
    ("etype", "content", "prev", "expected"),
    STATE_CASES,
    ids=[f"{n}-{case[0]}" for n, case in enumerate(STATE_CASES)],
)
def test_room_state(
    etype: str, content: dict[str, Any], prev: dict[str, Any], expected: str
) -> None:
    r = renderer()
    unsigned: dict[str, Any] = {"age": 1}
    if prev:
        unsigned["prev_content"] = prev
    state_key = "!child:example.org" if etype.startswith(("m.space", "com.")) else ""
    ev = event(etype, content, state_key=state_key, unsigned=unsigned)
    assert show(r, ev) == expected


def test_pinning_a_known_message_names_it() -> None:
    r = renderer()
    pin = event(
        "m.room.pinned_events",
        {"pinned": ["$1"]},
        state_key="",
        unsigned={"prev_content": {"pinned": []}},
    )
    assert show(r, message("$1", BOB, "rules: be nice"), pin) == (
        "09:30 Bob: rules: be nice\n09:30 • Alice pinned Bob's message “rules: be nice”\n"
    )


def test_unknown_event_summarises_content() -> None:
    r = renderer()
    content = {f"k{n}": n for n in range(9)} | {
        "s": "x" * 50,
        "d": {"a": 1},
        "l": [1, 2],
        "n": None,
    }
    ev = event("org.example.custom", content)
    assert show(r, ev, width=120) == (
        "09:30 • Alice sent org.example.custom: k0=0, k1=1, k2=2, k3=3, k4=4, k5=5 (+7 more)\n"
    )
    assert show(r, event("", {})) == "09:30 • Alice sent an event without a type\n"


def test_ephemeral_events_have_no_time() -> None:
    r = renderer()
    assert show(r, *load("ephemeral.json")) == (
        "      … Alice, Sam (@sam1:example.org) are typing\n"
        "      … nobody is typing\n"
        "      ✓ read by Alice, Sam (@sam2:example.org)\n"
        "      ● Bob is unavailable: lunch\n"
    )


# -- malformed input: render is total -------------------------------------------------------------

MALFORMED: list[Any] = [
    None,
    42,
    "string",
    [],
    {},
    {"type": "m.room.message"},
    {"type": "m.room.message", "content": "not a dict", "sender": ALICE},
    {"type": "m.room.message", "content": None, "origin_server_ts": "yesterday"},
    {"type": 7, "content": [], "sender": ["x"], "event_id": {"a": 1}, "origin_server_ts": 1e300},
    {"type": "m.room.message", "sender": ALICE, "content": {"body": 12345}},
    {
        "type": "m.room.message",
        "sender": ALICE,
        "content": {"body": ["a", {"b": None}], "msgtype": ["m.text"]},
    },
    {
        "type": "m.room.message",
        "sender": ALICE,
        "content": {"msgtype": "m.image", "info": "big", "url": 5},
    },
    {
        "type": "m.room.message",
        "sender": ALICE,
        "content": {
            "msgtype": "m.image",
            "info": {"size": "1MB", "w": [], "h": None, "duration": float("nan")},
        },
    },
    {
        "type": "m.room.message",
        "sender": ALICE,
        "content": {"format": "org.matrix.custom.html", "formatted_body": 5},
    },
    {"type": "m.room.message", "sender": ALICE, "content": {"m.relates_to": "x", "body": "a"}},
    {
        "type": "m.room.message",
        "sender": ALICE,
        "content": {
            "m.relates_to": {"rel_type": "m.replace", "event_id": ["x"], "m.new_content": "no"}
        },
    },
    {
        "type": "m.room.message",
        "sender": ALICE,
        "content": {"m.relates_to": {"m.in_reply_to": "x"}, "body": "> a\n\nb"},
    },
    {
        "type": "m.reaction",
        "sender": ALICE,
        "content": {"m.relates_to": {"key": {"k": 1}, "event_id": 3}},
    },
    {"type": "m.room.redaction", "sender": ALICE, "redacts": 5, "content": {"reason": ["r"]}},
    {
        "type": "m.room.member",
        "sender": ALICE,
        "state_key": 5,
        "content": {"membership": ["join"], "displayname": 5},
    },
    {
        "type": "m.room.member",
        "sender": ALICE,
        "content": {"membership": "join"},
        "unsigned": {"prev_content": "x"},
    },
    {
        "type": "m.room.power_levels",
        "sender": ALICE,
        "state_key": "",
        "content": {"users": ["x"], "events": 5},
        "unsigned": {"prev_content": {"users": {"@a:b": "high"}, "events": []}},
    },
    {
        "type": "m.room.pinned_events",
        "sender": ALICE,
        "state_key": "",
        "content": {"pinned": "x"},
        "unsigned": {"prev_content": {"pinned": [1, None]}},
    },
    {
        "type": "m.room.canonical_alias",
        "sender": ALICE,
        "state_key": "",
        "content": {"alias": 5, "alt_aliases": "x"},
    },
    {
        "type": "m.room.server_acl",
        "sender": ALICE,
        "state_key": "",
        "content": {"allow": "*", "deny": [1]},
    },
    {
        "type": "m.room.create",
        "sender": ALICE,
        "state_key": "",
        "content": {"predecessor": "x", "room_version": 12},
    },
    {
        "type": "m.room.tombstone",
        "sender": ALICE,
        "state_key": "",
        "content": {"replacement_room": {"x": 1}},
    },
    {"type": "m.typing", "content": {"user_ids": "alice"}},
    {"type": "m.receipt", "content": {"$e": "x", "$f": {"m.read": ["x"]}}},
    {"type": "m.presence", "content": {"presence": 5}},
    {
        "type": "m.room.message",
        "sender": ALICE,
        "unsigned": {"redacted_because": "yes"},
        "content": {},
    },
    {
        "type": "m.room.message",
        "sender": ALICE,
        "origin_server_ts": -5,
        "content": {"body": "before 1970"},
    },
    {
        "type": "m.room.message",
        "sender": ALICE,
        "origin_server_ts": True,
        "content": {"body": "bool ts"},
    },
    {"type": "x", "content": {"deep": [[[[[[[[[[[]]]]]]]]]]]}},
]


@pytest.mark.parametrize("ev", MALFORMED, ids=[str(n) for n in range(len(MALFORMED))])
def test_malformed_events_never_raise(ev: Any) -> None:
    r = renderer()
    lines = r.render(ev)
    assert lines, "never silence"
    text = plain(*lines)
    assert text.strip()
    assert "could not render" not in text  # handled, not caught by the last-resort guard


def test_malformed_examples_read_sensibly() -> None:
    r = renderer()
    assert show(r, *MALFORMED[:3]) == (
        "      malformed event (a NoneType, not an object)\n"
        "      malformed event (a int, not an object)\n"
        "      malformed event (a str, not an object)\n"
    )
    assert show(r, MALFORMED[9]) == "      Alice: 12345\n"
    assert show(r, MALFORMED[10]) == '      Alice: ["a", {"b": null}]\n'


def test_last_resort_guard_names_the_event_type() -> None:
    class Exploding(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "content":
                raise RuntimeError("boom")
            return super().get(key, default)

    r = renderer()
    out = show(r, Exploding(type="m.room.message"))
    assert out == "      ⚠ could not render m.room.message event (RuntimeError)\n"


# -- bounded memory --------------------------------------------------------------------------------


def test_caches_are_bounded_and_evict_oldest() -> None:
    r = PrettyRenderer(tz=UTC, max_cache=10)
    show(r, message("$old", ALICE, "the old message"))
    for n in range(10):
        r.render(message(f"$filler{n}", BOB, f"filler {n}"))
    reply_old = message(
        "$r1", BOB, "re", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$old"}}}
    )
    reply_new = message(
        "$r2", BOB, "re", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$filler9"}}}
    )
    assert show(r, reply_old, reply_new) == (
        "09:30 @bob:example.org ↳ replying to an earlier message\n"
        "      re\n"
        "09:30 @bob:example.org ↳ replying to @bob:example.org: “filler 9”\n"
        "      re\n"
    )
    for n in range(50):
        r.render(
            event(
                "m.room.member",
                {"membership": "join", "displayname": f"U{n}"},
                sender=f"@u{n}:x",
                state_key=f"@u{n}:x",
            )
        )
    assert len(r.room.events) <= 10 and len(r.room.members.names) <= 10
    # the first members were forgotten: their user id is shown instead of the name
    assert show(r, message("$x", "@u0:x", "hi"), message("$y", "@u49:x", "hi")) == (
        "09:30 @u0:x: hi\n09:30 U49: hi\n"
    )


def test_evicted_duplicate_names_stop_disambiguating() -> None:
    r = PrettyRenderer(tz=UTC, max_cache=2)
    same = [
        event("m.room.member", {"membership": "join", "displayname": "Sam"}, sender=u, state_key=u)
        for u in ("@s1:x", "@s2:x")
    ]
    out = show(r, *same, message("$1", "@s2:x", "a"))
    assert out.endswith("09:30 Sam (@s2:x): a\n")
    r.render(
        event(
            "m.room.member",
            {"membership": "join", "displayname": "Zed"},
            sender="@z:x",
            state_key="@z:x",
        )
    )
    # @s1 was evicted, so only one "Sam" is known now
    assert show(r, message("$2", "@s2:x", "b")) == "09:30 Sam: b\n"


# -- hostile input ---------------------------------------------------------------------------------

SGR = re.compile(r"\x1b\[[0-9;]*m")
# rich's own OSC 8 hyperlink for a link style; only ever for URLs that passed safe_link
OSC8 = re.compile(r"\x1b\]8;id=[0-9]+;[\x21-\x7e]*\x1b\\|\x1b\]8;;\x1b\\")


def assert_terminal_safe(out: str) -> None:
    rest = OSC8.sub("", SGR.sub("", out))
    assert "\x1b" not in rest, repr(rest)
    bad = [
        c for c in rest if c != "\n" and (unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    ]
    assert not bad, bad


def test_hostile_fixture_output_is_literal_and_inert() -> None:
    r = PrettyRenderer(tz=UTC)
    events = load("hostile.json")
    lines = [line for e in events for line in r.render(e)]
    assert plain(*lines) == HOSTILE_TRANSCRIPT
    assert_terminal_safe(coloured(*lines))
    assert_terminal_safe(coloured(*lines, width=20))


HOSTILE_TRANSCRIPT = """\
── Tuesday 24 November 2026 ──
09:30 @mallory:evil.example: [bold red]x[/] and [link=http://evil]y[/link]
      :smile:
09:30 @mallory:evil.example: before\\x1b[2J\\x1b[Hafter
09:30 @mallory:evil.example: \\x1b]8;;http://evil.example/\\x1b\\click
      me\\x1b]8;;\\x1b\\
09:30 @mallory:evil.example: copy\\x1b]52;c;cm0gLXJmIH4K\\x07done
09:30 @mallory:evil.example: red\\x9b31m text\\x9b0m \\x90DCS\\x9c
09:30 @mallory:evil.example: invoice \\u202eFDP.exe\\u202c ok \\u2066isolate\\u2069
09:30 @mallory:evil.example: ad\\u200dmin pay\\u200bpal\\ufeff \\u2060x
09:30 @mallory:evil.example: bell\\x07 bs\\x08 cr\\x0dover del\\x7f nul\\x00
      ls\\u2028ps\\u2029
09:30 @mallory:evil.example: click (javascript:alert(1)) esc link
      (http://ok.example/\\x1b]52;c;AAAA\\x07) [31m ›31m \\u202ertl
      [bold]markup[/bold]
09:30 → Eve⏎\\x1b[31mADMIN\\x1b[0m joined
09:30 Eve⏎\\x1b[31mADMIN\\x1b[0m: hi
09:30 • Eve⏎\\x1b[31mADMIN\\x1b[0m changed the topic to: \\x1b]0;pwned
      title\\x07topic
09:30 Eve⏎\\x1b[31mADMIN\\x1b[0m reacted \\x1b[5m👍\\u202e to their message “[bold
      red]x[/] and [link=http://evil]y[/…”
09:30 • Eve⏎\\x1b[31mADMIN\\x1b[0m replaced this room: moved
      room replaced by !x:evil.example; rm -rf ~
09:30 Eve⏎\\x1b[31mADMIN\\x1b[0m: [file] file\\x1b[2J.txt
      mxc://evil.example/../../etc\\x1b[2J
09:30 • Eve⏎\\x1b[31mADMIN\\x1b[0m sent com.evil\\x1b[2J: k\\x1b[31m=“v\\x9b2J”
"""


def test_markup_in_body_prints_literally_even_in_colour() -> None:
    r = renderer()
    ev = message("$1", BOB, "[bold red]x[/] [link=http://evil]y[/link] :smile:")
    out = coloured(*r.render(ev))
    assert "[bold red]x[/] [link=http://evil]y[/link] :smile:" in out
    assert "\x1b]8" not in out  # no hyperlink was created from the body


def test_html_link_to_javascript_is_not_a_hyperlink() -> None:
    r = renderer()
    ev = message(
        "$1",
        BOB,
        "x",
        format="org.matrix.custom.html",
        formatted_body='<a href="javascript:alert(1)">click</a> <a href="https://ok.example/">ok</a>',
    )
    out = coloured(*r.render(ev))
    assert "javascript:alert(1)" in out
    links = re.findall(r"\x1b\]8;id=[0-9]+;([^\x1b]*)\x1b", out)
    assert links == ["https://ok.example/"]


def test_script_and_style_contents_are_dropped() -> None:
    r = renderer()
    ev = message(
        "$1",
        BOB,
        "fallback",
        format="org.matrix.custom.html",
        formatted_body="<script>steal()</script><style>*{}</style>visible",
    )
    assert show(r, ev) == "09:30 Bob: visible\n"


def test_huge_body_is_cut_with_marker() -> None:
    r = renderer()
    body = "A" * 1_000_000
    (line,) = r.render(message("$1", BOB, body))
    assert line.plain.endswith("A… [+996000 chars]")
    assert len(line.plain) < 4100


def test_huge_display_name_is_cut() -> None:
    r = renderer()
    join = event(
        "m.room.member",
        {"membership": "join", "displayname": "N" * 10_000},
        sender="@n:x",
        state_key="@n:x",
    )
    out = show(r, join, message("$1", "@n:x", "hi"), width=200)
    assert out == (
        f"09:30 → {'N' * 48}… [+9952 chars] joined\n09:30 {'N' * 48}… [+9952 chars]: hi\n"
    )


def test_display_name_with_newline_and_ansi_stays_on_one_line() -> None:
    r = renderer()
    join = event(
        "m.room.member",
        {"membership": "join", "displayname": "Eve\n\x1b[31mADMIN"},
        sender="@eve:x",
        state_key="@eve:x",
    )
    out = show(r, join, message("$1", "@eve:x", "hello"))
    assert out == "09:30 → Eve⏎\\x1b[31mADMIN joined\n09:30 Eve⏎\\x1b[31mADMIN: hello\n"


def test_a_body_of_many_lines_is_cut_with_a_marker() -> None:
    from peekcli.render.context import BODY_LINES

    event = {
        "type": "m.room.message",
        "sender": "@a:x",
        "event_id": "$many",
        "origin_server_ts": 0,
        "content": {"msgtype": "m.text", "body": "top\n" + "\n" * 2000 + "bottom"},
    }
    renderer = PrettyRenderer(tz=dt.UTC)
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    for line in renderer.render(event):
        console.print(line)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "top" in out and "bottom" not in out
    assert out.rstrip().endswith(f"… [+{2001 - BODY_LINES + 1} lines]")
    assert len(out.splitlines()) <= BODY_LINES + 3
