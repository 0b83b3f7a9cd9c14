"""Pretty output on the real Synapse: a lively room reads like a chat client, safely."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.peekproc import run_peek
from tests.homeserver import Homeserver, User


def test_edits_redactions_reactions_renames_and_topics_read_naturally(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room(name="Render test")
    hello = synapse.send_text(alice, room, "hello everyone")
    synapse.send_event(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* hello world",
            "m.new_content": {"msgtype": "m.text", "body": "hello world"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": hello},
        },
    )
    synapse.send_event(
        alice,
        room,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": hello, "key": "👍"}},
    )
    oops = synapse.send_text(alice, room, "oops, wrong room")
    synapse.redact(alice, room, oops, reason="mistake")
    synapse.send_state(alice, room, "m.room.name", {"name": "Renamed room"})
    synapse.send_state(alice, room, "m.room.topic", {"topic": "All about peek"})
    synapse.send_event(alice, room, "m.room.message", {"msgtype": "m.emote", "body": "waves"})
    synapse.send_text(alice, room, "[bold red]not bold[/] \x1b[2J\x1b]0;pwned\x07 \u202egnp.exe")

    result = run_peek(
        "snapshot",
        room,
        "--homeserver",
        synapse.base_url,
        "--history",
        "30",
        "--no-color",
        state_file=tmp_path / "s.json",
    )
    assert result.returncode == 0, result.stderr
    out = re.sub(r"^\d\d:\d\d ", "HH:MM ", result.stdout, flags=re.M)
    lines = out.splitlines()
    assert lines[0].startswith("Renamed room") and room in lines[0]  # current state
    assert lines[1] == "All about peek"
    assert "starting fresh" in lines[2] and "watching as guest" in lines[2]
    assert lines[2].endswith("peeking (not joined)")
    # The history folds relations into their targets: the edit applied, the reaction under it,
    # the deleted message one line that never repeats what it said.
    at = lines.index("HH:MM alice: hello world (edited)")
    assert lines[at + 1] == "      👍 1"
    assert "HH:MM alice: (message deleted) (reason: mistake)" in lines
    assert "oops, wrong room" not in out and "hello everyone" not in out
    assert "HH:MM • alice renamed the room to “Renamed room”" in lines
    assert "HH:MM • alice changed the topic to: All about peek" in lines
    assert "HH:MM * alice waves" in lines
    hostile = next(line for line in lines if "not bold" in line)
    assert "[bold red]not bold[/]" in hostile  # markup printed literally
    assert (
        "\x1b" not in result.stdout
        and "\u202e" not in result.stdout
        and "\x07" not in result.stdout
    )
    assert "HH:MM alice: * hello world" not in lines


def test_header_says_joined_for_a_member_fresh_and_resumed(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room(name="Members")
    synapse.send_text(alice, room, "one")
    args = ("snapshot", room, "--homeserver", synapse.base_url, "--no-color")
    env = {"PEEK_ACCESS_TOKEN": alice.access_token}
    fresh = run_peek(*args, state_file=tmp_path / "s.json", **env)
    assert f"watching as {alice.user_id}, joined" in fresh.stdout.splitlines()[1]
    synapse.send_text(alice, room, "two")
    resumed = run_peek(*args, state_file=tmp_path / "s.json", **env)
    header = resumed.stdout.splitlines()[1]
    assert "resuming" in header and header.endswith(f"watching as {alice.user_id}, joined")
