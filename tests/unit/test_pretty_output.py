"""`peek watch`/`snapshot` without --json: header, colour rules, plain text when piped."""

from __future__ import annotations

import re

import responses

from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

STATE = [
    {"type": "m.room.name", "state_key": "", "content": {"name": "Lobby"}, "sender": "@a:hs.test"},
    {"type": "m.room.topic", "state_key": "", "content": {"topic": "Say hi"}},
    {"type": "m.room.canonical_alias", "state_key": "", "content": {"alias": "#lobby:hs.test"}},
    {
        "type": "m.room.member",
        "state_key": "@alice:hs.test",
        "sender": "@alice:hs.test",
        "content": {"membership": "join", "displayname": "Alice"},
    },
]


def test_fresh_start_header_uses_initial_sync_state(hs: FakeHomeserver, peek) -> None:
    hs.history = [message(1, body="hi there")]
    hs.chain([])
    hs.state = STATE
    result = peek("snapshot", ROOM, "-s", HS, "--no-color")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Lobby  #lobby:hs.test  {ROOM}"
    assert lines[1] == "Say hi"
    assert lines[2] == (
        "1 member · starting fresh · watching as guest @guest1:hs.test, peeking (not joined)"
    )
    assert re.fullmatch(r"\d\d:\d\d Alice: hi there", lines[-1])
    assert "\x1b" not in result.stdout


def test_resumed_header_fetches_current_state(hs: FakeHomeserver, peek) -> None:
    hs.chain([message(1)], [message(2, body="second")])
    peek("snapshot", ROOM, "-s", HS, "--json", "--max-events", "1", "--history", "0")
    hs.rsps.add(responses.GET, f"{HS}/_matrix/client/v3/rooms/%21room%3Ahs.test/state", json=STATE)
    result = peek("snapshot", ROOM, "-s", HS, "--seconds")
    lines = result.stdout.splitlines()
    assert "resuming" in lines[2] and lines[2].endswith("peeking (not joined)")
    assert re.fullmatch(r"\d\d:\d\d:\d\d Alice: second", lines[-1])


def test_colour_only_when_asked_or_on_a_terminal(hs: FakeHomeserver, peek) -> None:
    hs.chain([message(1, body="colourful")])
    piped = peek("snapshot", ROOM, "-s", HS, "--history", "0")
    assert "colourful" in piped.stdout and "\x1b" not in piped.stdout
    forced = peek("snapshot", ROOM, "-s", HS, "--reset", "--history", "0", "--color")
    assert "colourful" in forced.stdout and "\x1b[" in forced.stdout
    env = peek("snapshot", ROOM, "-s", HS, "--reset", "--history", "0", env={"FORCE_COLOR": "1"})
    assert "\x1b[" in env.stdout


def test_piped_output_does_not_wrap_long_messages(hs: FakeHomeserver, peek) -> None:
    long = "word " * 60
    hs.chain([message(1, body=long.strip())])
    result = peek("snapshot", ROOM, "-s", HS, "--history", "0", "--no-color")
    body_lines = [line for line in result.stdout.splitlines() if "word" in line]
    assert len(body_lines) == 1 and body_lines[0].endswith("word")


def test_piped_multiline_body_hangs_under_the_message_column(hs: FakeHomeserver, peek) -> None:
    """Piped (no wrapping), a body's further lines are still indented: unindented, a line of a
    message could pass for an event of its own in a log or `grep`."""
    body = "first\n12:34 mallory: send me your password\n\nlast"
    hs.chain([message(1, body=body), message(2, body="next")])
    result = peek("snapshot", ROOM, "-s", HS, "--history", "0", "--no-color")
    assert result.exit_code == 0, result.stderr
    out = result.stdout.splitlines()
    start = next(i for i, line in enumerate(out) if line.endswith("first"))
    assert re.fullmatch(r"\d\d:\d\d @alice:hs.test: first", out[start])
    assert out[start + 1 : start + 4] == [
        "      12:34 mallory: send me your password",
        "",
        "      last",
    ]
    assert re.fullmatch(r"\d\d:\d\d @alice:hs.test: next", out[start + 4])


def test_header_says_when_the_position_comes_from_from(hs: FakeHomeserver, peek) -> None:
    hs.chain([message(1)], [message(2, body="after t1")])
    hs.rsps.add(responses.GET, f"{HS}/_matrix/client/v3/rooms/%21room%3Ahs.test/state", json=STATE)
    result = peek("snapshot", ROOM, "-s", HS, "--from", "t1", "--no-color")
    lines = result.stdout.splitlines()
    assert "starting from the --from token" in lines[2] and "resuming" not in lines[2]
    assert lines[-1].endswith("Alice: after t1")


def test_a_stop_signal_during_rendering_is_not_swallowed(
    hs: FakeHomeserver, peek, state_file, monkeypatch
) -> None:
    """The renderer's last-resort guard catches errors, never a Ctrl-C/SIGTERM landing in it."""
    from peekcli.errors import Stopped
    from peekcli.render.pretty import PrettyRenderer

    hs.chain([message(1), message(2)])

    def interrupted(self, event):
        raise Stopped(143)

    monkeypatch.setattr(PrettyRenderer, "_render", interrupted)
    result = peek("snapshot", ROOM, "-s", HS, "--history", "0", "--no-color")
    assert result.exit_code == 143
    assert "could not render" not in result.stdout
