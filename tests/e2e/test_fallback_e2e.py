"""The /messages polling stream (`--stream messages`) end to end against the real Synapse.

Synapse serves /events peeking too, so the fallback is chosen explicitly here; auto's switch on
servers without /events is reproduced in tests/unit/test_servers.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.e2e.peekproc import Watcher, json_lines, run_peek
from tests.homeserver import Homeserver, User
from tests.statefile import saved


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e.get("type") == "m.room.message"]


def test_messages_stream_follows_live_and_resumes_exactly(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    hs = ("--homeserver", synapse.base_url)
    synapse.send_text(alice, room, "before the first run")
    watcher = Watcher.start(
        room,
        *hs,
        "--json",
        "--history",
        "1",
        "--stream",
        "messages",
        "--poll-interval",
        "0.5",
        state_file=state,
    )
    assert bodies(watcher.events(1)) == ["before the first run"]
    for i in range(3):
        synapse.send_text(alice, room, f"live {i}")
    assert bodies(watcher.events(3)) == ["live 0", "live 1", "live 2"]
    code, err = watcher.stop(signal.SIGINT)  # most likely lands in the sleep between polls
    assert code == 130, err
    assert "Traceback" not in err and watcher.rest() == []
    position = saved(state)["positions"][synapse.base_url][room]
    assert position["kind"] == "messages"

    for i in range(3):
        synapse.send_text(alice, room, f"while away {i}")
    again = run_peek("snapshot", room, *hs, "--json", "--stream", "messages", state_file=state)
    assert again.returncode == 0, again.stderr
    assert bodies(json_lines(again.stdout)) == ["while away 0", "while away 1", "while away 2"]
    empty = run_peek("snapshot", room, *hs, "--json", "--stream", "messages", state_file=state)
    assert (empty.returncode, empty.stdout) == (0, "")

    # With the default (auto) the saved /messages position goes on with /messages, never /events.
    synapse.send_text(alice, room, "auto goes on")
    auto = run_peek("-v", "snapshot", room, *hs, "--json", state_file=state)
    assert auto.returncode == 0, auto.stderr
    assert bodies(json_lines(auto.stdout)) == ["auto goes on"]
    assert "/messages" in auto.stderr and "/v3/events" not in auto.stderr


def test_a_messages_position_is_not_sent_to_events(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    hs = ("--homeserver", synapse.base_url)
    first = run_peek("snapshot", room, *hs, "--stream", "messages", state_file=state)
    assert first.returncode == 0, first.stderr
    synapse.send_text(alice, room, "not lost")
    refused = run_peek("snapshot", room, *hs, "--json", "--stream", "events", state_file=state)
    assert refused.returncode == 2
    assert "--stream messages" in refused.stderr and refused.stdout == ""
    # Refusing did not move the position: the message is still there for the right stream.
    kept = run_peek("snapshot", room, *hs, "--json", "--stream", "messages", state_file=state)
    assert bodies(json_lines(kept.stdout)) == ["not lost"]


def test_history_from_initial_sync_then_messages_in_order(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    """initialSync's token is a valid /messages `from` on Synapse: nothing between is lost."""
    room = fresh_room()
    for i in range(5):
        synapse.send_text(alice, room, f"old {i}")
    state = tmp_path / "state.json"
    args = ("--homeserver", synapse.base_url, "--json", "--stream", "messages")
    first = run_peek("snapshot", room, *args, "--history", "2", state_file=state)
    assert bodies(json_lines(first.stdout)) == ["old 3", "old 4"]
    for i in range(60):  # more than one page would hold if a server capped it
        synapse.send_text(alice, room, f"new {i}")
    second = run_peek("snapshot", room, *args, state_file=state)
    assert bodies(json_lines(second.stdout)) == [f"new {i}" for i in range(60)]
