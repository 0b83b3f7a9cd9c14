"""A conversation sent to Synapse the way Element sends it, read back with peek: pretty output
(plain, and the colour spans where colour is the point), the text export and the HTML export.

The event contents follow Element Web / matrix-react-sdk: markdown as `formatted_body`, replies with
and without the `mx-reply` fallback, thread replies with the fallback `m.in_reply_to`, edits with
` * ` bodies and `m.new_content`, reactions, redactions, MSC3381 polls, MSC2530 captions, MSC3245
voice messages, MSC3488 locations, `/spoiler`, stickers, 1:1 VoIP calls, Element Call membership and
widgets, plus membership, pins, power levels and a server ACL.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peekproc import run_peek
from tests.homeserver import Homeserver

SDP_VIDEO = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP\r\n"
)


def _text(body: str, html: str | None = None, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body, **extra}
    if html is not None:
        content.update(format="org.matrix.custom.html", formatted_body=html)
    return content


@pytest.fixture(scope="module")
def conversation(synapse: Homeserver) -> dict[str, Any]:
    """The room, sent once for the module's tests; returns its id and the users.

    Its own two users: a display name set here must not leak into other tests' rooms."""
    alice = synapse.register_user(f"alice{uuid.uuid4().hex[:8]}")
    bob = synapse.register_user(f"bob{uuid.uuid4().hex[:8]}")
    # Invite-only (Synapse refuses call invites in public rooms) and world-readable.
    room = synapse.create_room(alice, name="Lunch club", preset="private_chat")
    invite = {"user_id": bob.user_id}
    synapse.request("POST", f"/_matrix/client/v3/rooms/{room}/invite", user=alice, json_body=invite)
    synapse.join(bob, room)
    for user, name in ((alice, "Alice"), (bob, "Bob")):
        path = f"/_matrix/client/v3/profile/{user.user_id}/displayname"
        synapse.request("PUT", path, user=user, json_body={"displayname": name})
    send = synapse.send_event

    question = send(
        alice, room, "m.room.message", _text("**Lunch** today?", "<strong>Lunch</strong> today?")
    )
    # A reply as Element sends it today (no fallback) and as it used to (mx-reply fallback).
    send(
        bob,
        room,
        "m.room.message",
        _text("yes!", **{"m.relates_to": {"m.in_reply_to": {"event_id": question}}}),
    )
    quote = (
        f'<mx-reply><blockquote><a href="https://matrix.to/#/{room}/{question}">In reply to</a> '
        f'<a href="https://matrix.to/#/{alice.user_id}">{alice.user_id}</a><br>'
        "<strong>Lunch</strong> today?</blockquote></mx-reply>at noon?"
    )
    send(
        bob,
        room,
        "m.room.message",
        _text(
            f"> <{alice.user_id}> **Lunch** today?\n\nat noon?",
            quote,
            **{"m.relates_to": {"m.in_reply_to": {"event_id": question}}},
        ),
    )
    # An edit (Element's " * " body), an edit by someone else (ignored), reactions, one undone.
    send(
        alice,
        room,
        "m.room.message",
        _text(
            " * **Lunch** today at 12?",
            " * <strong>Lunch</strong> today at 12?",
            **{
                "m.new_content": _text(
                    "**Lunch** today at 12?", "<strong>Lunch</strong> today at 12?"
                ),
                "m.relates_to": {"rel_type": "m.replace", "event_id": question},
            },
        ),
    )
    send(
        bob,
        room,
        "m.room.message",
        _text(
            " * hijacked",
            **{
                "m.new_content": _text("hijacked"),
                "m.relates_to": {"rel_type": "m.replace", "event_id": question},
            },
        ),
    )
    for user, key in ((alice, "👍"), (bob, "👍"), (bob, "🎉")):
        annotation = {"rel_type": "m.annotation", "event_id": question, "key": key}
        send(user, room, "m.reaction", {"m.relates_to": annotation})
    sad = send(
        bob,
        room,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": question, "key": "😢"}},
    )
    synapse.redact(bob, room, sad)
    oops = send(alice, room, "m.room.message", _text("my password is hunter2"))
    synapse.redact(alice, room, oops, reason="oops")
    # A thread.
    root = send(alice, room, "m.room.message", _text("Menu ideas thread"))
    in_thread = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    send(
        bob,
        room,
        "m.room.message",
        _text("pizza", **{"m.relates_to": {**in_thread, "m.in_reply_to": {"event_id": root}}}),
    )
    # An MSC3381 poll: start, two votes, end.
    poll = send(
        alice,
        room,
        "org.matrix.msc3381.poll.start",
        {
            "org.matrix.msc3381.poll.start": {
                "kind": "org.matrix.msc3381.poll.disclosed",
                "max_selections": 1,
                "question": {"org.matrix.msc1767.text": "Where?"},
                "answers": [
                    {"id": "c", "org.matrix.msc1767.text": "Café"},
                    {"id": "p", "org.matrix.msc1767.text": "Pizzeria"},
                ],
            },
            "org.matrix.msc1767.text": "Where?\n1. Café\n2. Pizzeria",
        },
    )
    reference = {"rel_type": "m.reference", "event_id": poll}
    for user, answer in ((bob, "c"), (alice, "c")):
        send(
            user,
            room,
            "org.matrix.msc3381.poll.response",
            {"m.relates_to": reference, "org.matrix.msc3381.poll.response": {"answers": [answer]}},
        )
    send(
        alice,
        room,
        "org.matrix.msc3381.poll.end",
        {
            "m.relates_to": reference,
            "org.matrix.msc3381.poll.end": {},
            "org.matrix.msc1767.text": "Ended poll",
        },
    )
    # Media: an image with a markdown caption, a voice message, a location, a sticker.
    send(
        bob,
        room,
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "the **new** place",
            "format": "org.matrix.custom.html",
            "formatted_body": "the <strong>new</strong> place",
            "filename": "place.jpg",
            "url": "mxc://localhost/place",
            "info": {"mimetype": "image/jpeg", "size": 2048, "w": 640, "h": 480},
        },
    )
    send(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.audio",
            "body": "Voice message",
            "url": "mxc://localhost/voice",
            "info": {"mimetype": "audio/ogg", "duration": 4000, "size": 6000},
            "org.matrix.msc1767.text": "Voice message",
            "org.matrix.msc1767.audio": {"duration": 4000, "waveform": [1, 2, 3]},
            "org.matrix.msc3245.voice": {},
        },
    )
    geo = "geo:51.5008,-0.1247"
    send(
        bob,
        room,
        "m.room.message",
        {
            "msgtype": "m.location",
            "body": f'Location "The Pub" {geo} at 2026-11-24T12:00:00.000Z',
            "geo_uri": geo,
            "org.matrix.msc3488.location": {"uri": geo, "description": "The Pub"},
            "org.matrix.msc3488.asset": {"type": "m.pin"},
            "org.matrix.msc1767.text": f'Location "The Pub" {geo}',
        },
    )
    send(
        alice,
        room,
        "m.sticker",
        {"body": "Thumbs up", "url": "mxc://localhost/sticker", "info": {"w": 128, "h": 128}},
    )
    send(
        bob,
        room,
        "m.room.message",
        _text("the end: Bruce", 'the end: <span data-mx-spoiler="movie">Bruce</span>'),
    )
    # A 1:1 call: invite, candidates, answer, select_answer, hangup; then a declined one.
    call = {"call_id": "c1", "party_id": "p", "version": "1"}
    send(
        alice,
        room,
        "m.call.invite",
        {**call, "lifetime": 60000, "offer": {"type": "offer", "sdp": SDP_VIDEO}},
    )
    send(
        alice,
        room,
        "m.call.candidates",
        {**call, "candidates": [{"candidate": "x", "sdpMid": "0"}]},
    )
    send(bob, room, "m.call.answer", {**call, "answer": {"type": "answer", "sdp": SDP_VIDEO}})
    send(alice, room, "m.call.select_answer", {**call, "selected_party_id": "p"})
    send(bob, room, "m.call.hangup", {**call, "reason": "user_hangup"})
    send(
        alice,
        room,
        "m.call.invite",
        {
            **call,
            "call_id": "c2",
            "lifetime": 60000,
            "offer": {"type": "offer", "sdp": "v=0\r\nm=audio 9\r\n"},
        },
    )
    send(bob, room, "m.call.reject", {**call, "call_id": "c2"})
    # Element Call membership and a widget; state: pins, power levels, ACL.
    member_key = f"_{alice.user_id}_DEVICE"
    call_member = {
        "application": "m.call",
        "call_id": "",
        "scope": "m.room",
        "device_id": "DEVICE",
        "expires": 14400000,
    }
    synapse.send_state(alice, room, "org.matrix.msc3401.call.member", call_member, member_key)
    synapse.send_state(alice, room, "org.matrix.msc3401.call.member", {}, member_key)
    synapse.send_state(
        alice,
        room,
        "im.vector.modular.widgets",
        {
            "type": "jitsi",
            "url": "https://jitsi.example/room",
            "name": "Jitsi Video Conference",
            "data": {},
        },
        "widget1",
    )
    synapse.send_state(alice, room, "m.room.pinned_events", {"pinned": [root]})
    levels = synapse.request(
        "GET", f"/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/", user=alice
    )
    levels["users"] = {**levels.get("users", {}), bob.user_id: 50}
    synapse.send_state(alice, room, "m.room.power_levels", levels)
    synapse.send_state(
        alice,
        room,
        "m.room.server_acl",
        {"allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": False},
    )
    return {"room": room, "alice": alice, "bob": bob}


EXPECTED_PRETTY = [
    "HH:MM Alice: Lunch today at 12? (edited)",
    "      👍 2 · 🎉 1",
    "HH:MM Bob ↳ replying to Alice: “Lunch today at 12?”",
    "      yes!",
    "HH:MM Bob ↳ replying to Alice: “Lunch today at 12?”",
    "      at noon?",
    "HH:MM Alice: (message deleted) (reason: oops)",
    "HH:MM Alice: Menu ideas thread",
    "      🧵 1 reply",
    "HH:MM Bob 🧵 in thread “Menu ideas thread”",
    "      pizza",
    "HH:MM Alice: 📊 Where?",
    "      1. Café",
    "      2. Pizzeria",
    "HH:MM 🗳 Bob voted «Café»",
    "HH:MM 🗳 Alice voted «Café»",
    "HH:MM 📊 Alice ended the poll “Where?”: Café 2 · Pizzeria 0 (counted from the 2 votes "
    "peek saw)",
    "HH:MM Bob: [image] place.jpg (2.0 KiB, 640×480)",
    "      the new place",
    "      mxc://localhost/place",
    "HH:MM Alice: [voice message] (5.9 KiB, 0:04)",
    "HH:MM Bob: [location] The Pub · 51.5008, -0.1247",
    "      https://www.openstreetmap.org/?mlat=51.5008&mlon=-0.1247#map=16/51.5008/-0.1247",
    "HH:MM Alice: [sticker] Thumbs up (128×128)",
    "HH:MM Bob: the end: [spoiler: movie]",
    "HH:MM 📞 Alice started a video call",
    "HH:MM 📞 Bob answered the call",
    "HH:MM 📞 Bob ended the call",
    "HH:MM 📞 Alice started a voice call",
    "HH:MM 📞 Bob declined the call",
    "HH:MM 📞 Alice joined the call",
    "HH:MM 📞 Alice left the call",
    "HH:MM • Alice added the widget “Jitsi Video Conference” (Jitsi video conference)",
    "HH:MM • Alice pinned their message “Menu ideas thread”",
]


def _pretty(conversation: dict[str, Any], tmp_path: Path, *args: str) -> str:
    result = run_peek(
        "snapshot",
        conversation["room"],
        "--homeserver",
        _base(conversation),
        "--history",
        "100",
        *args,
        state_file=tmp_path / "s.json",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _base(conversation: dict[str, Any]) -> str:
    return str(conversation["base"])


@pytest.fixture
def chat(conversation: dict[str, Any], synapse: Homeserver) -> dict[str, Any]:
    return {**conversation, "base": synapse.base_url}


def _in_order(lines: list[str], expected: list[str]) -> None:
    """Each expected line appears, in this order (other lines may come between)."""
    at = 0
    for want in expected:
        assert want in lines[at:], f"{want!r} not found after line {at}:\n" + "\n".join(lines)
        at = lines.index(want, at) + 1


def test_pretty_reads_like_a_chat_client(chat: dict[str, Any], tmp_path: Path) -> None:
    out = _pretty(chat, tmp_path, "--no-color")
    lines = [re.sub(r"^\d\d:\d\d ", "HH:MM ", line) for line in out.splitlines()]
    _in_order(lines, EXPECTED_PRETTY)
    assert "hunter2" not in out and "hijacked" not in out and "😢" not in out
    assert "**Lunch**" not in out and "Bruce" not in out  # markdown source, spoiler text
    assert "candidates" not in out and "select_answer" not in out and "sdp" not in out
    # Only a custom type could fall back to the generic "sent TYPE" line: none here.
    assert not re.search(r" (sent|set) [a-z]+\.[\w.]+", out), out


def test_colour_marks_only_the_names(chat: dict[str, Any], tmp_path: Path) -> None:
    out = _pretty(chat, tmp_path, "--color", "--reset")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    for line, shown in zip(out.splitlines(), plain.splitlines(), strict=True):
        if "reacted" in shown or "[sticker]" in shown or "(message deleted)" in shown:
            # the sender's bold colour ends right after the name
            match = re.search(r"\x1b\[1;[0-9;]+m(Alice|Bob)\x1b\[0m", line)
            assert match, repr(line)
            assert not re.search(r"\x1b\[[0-9;]*3[0-8][;m]", line[match.end() :]), repr(line)


def test_spoilers_option_shows_the_hidden_text(chat: dict[str, Any], tmp_path: Path) -> None:
    out = _pretty(chat, tmp_path, "--no-color", "--spoilers", "--reset")
    assert "the end: [spoiler: movie] Bruce" in out


def test_text_and_html_exports_read_the_same(chat: dict[str, Any], tmp_path: Path) -> None:
    files = {}
    for fmt in ("text", "html"):
        target = tmp_path / f"room.{fmt}"
        result = run_peek(
            "export",
            chat["room"],
            "--homeserver",
            chat["base"],
            "--format",
            fmt,
            "-o",
            str(target),
            state_file=tmp_path / "s.json",
        )
        assert result.returncode == 0, result.stderr
        files[fmt] = target.read_text(encoding="utf-8")
    # The text export shows seconds: its continuation lines hang under a wider gutter.
    text = [
        "HH:MM " + line[9:] if re.match(r"\d\d:\d\d:\d\d ", line) else line.removeprefix("   ")
        for line in files["text"].splitlines()
    ]
    # The text export has seconds and the same lines (long ones wrap at 100 columns).
    _in_order(text, [line for line in EXPECTED_PRETTY if len(line) < 90])
    assert "hunter2" not in files["text"] and "Bruce" not in files["text"]
    page = files["html"]
    assert "hunter2" not in page and "<script" not in page
    words = re.sub(r"<[^>]+>", "", page)
    assert "Lunch today at 12?" in words and "edited" in words and "hijacked" not in words
    assert re.search(r'<span class="spoiler" tabindex="0"[^>]*>Bruce</span>', page)
