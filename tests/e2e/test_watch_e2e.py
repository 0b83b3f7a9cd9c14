"""`peek watch` and `peek snapshot` end to end against the real Synapse fixture."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.e2e.peekproc import Watcher, json_lines, run_peek
from tests.homeserver import Homeserver, User
from tests.statefile import saved


def bodies(events: list[dict]) -> list[str]:
    return [
        e["content"]["body"]
        for e in events
        if e.get("type") == "m.room.message" and "body" in e.get("content", {})
    ]


def test_live_messages_arrive_and_a_second_run_resumes_exactly(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    hs = ["--homeserver", synapse.base_url]
    synapse.send_text(alice, room, "before the first run")
    watcher = Watcher.start(room, *hs, "--json", "--history", "1", state_file=state)
    first = watcher.events(1)
    assert bodies(first) == ["before the first run"]
    for i in range(3):
        synapse.send_text(alice, room, f"live {i}")
    live = watcher.events(3)
    assert bodies(live) == ["live 0", "live 1", "live 2"]
    code, err = watcher.stop(signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err

    for i in range(3):
        synapse.send_text(alice, room, f"while away {i}")
    again = run_peek("snapshot", room, *hs, "--json", state_file=state)
    assert again.returncode == 0, again.stderr
    assert bodies(json_lines(again.stdout)) == ["while away 0", "while away 1", "while away 2"]
    # Nothing new: nothing printed, nothing repeated.
    empty = run_peek("snapshot", room, *hs, "--json", state_file=state)
    assert (empty.returncode, empty.stdout) == (0, "")
    doc = saved(state)
    assert doc["positions"][synapse.base_url][room]["kind"] == "events"


def test_guest_credentials_are_reused(
    synapse: Homeserver, alice: User, world_room: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    args = ("snapshot", world_room, "--homeserver", synapse.base_url, "--json")
    assert run_peek(*args, state_file=state).returncode == 0
    creds_file = tmp_path / "credentials.json"
    first = json.loads(creds_file.read_text())["homeservers"][synapse.base_url]["guest"]
    synapse.send_text(alice, world_room, "for the second run")
    second = run_peek(*args, state_file=state)
    assert bodies(json_lines(second.stdout)) == ["for the second run"]
    again = json.loads(creds_file.read_text())["homeservers"][synapse.base_url]["guest"]
    assert again == first and first["user_id"].startswith("@")


def test_private_room_is_forbidden_for_a_guest(
    synapse: Homeserver, private_room: str, tmp_path: Path
) -> None:
    result = run_peek(
        "watch",
        private_room,
        "--homeserver",
        synapse.base_url,
        "--json",
        state_file=tmp_path / "s.json",
    )
    assert result.returncode == 3
    assert "not world-readable" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_joined_user_token_reads_a_private_room(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room(world_readable=False)
    synapse.send_text(alice, room, "members only")
    result = run_peek(
        "snapshot",
        room,
        "--homeserver",
        synapse.base_url,
        "--json",
        "--history",
        "1",
        state_file=tmp_path / "s.json",
        PEEK_ACCESS_TOKEN=alice.access_token,
    )
    assert result.returncode == 0, result.stderr
    assert bodies(json_lines(result.stdout)) == ["members only"]
    assert alice.access_token not in result.stderr


def test_bad_from_token_suggests_reset(
    synapse: Homeserver, world_room: str, tmp_path: Path
) -> None:
    result = run_peek(
        "snapshot",
        world_room,
        "--homeserver",
        synapse.base_url,
        "--from",
        "garbage",
        state_file=tmp_path / "s.json",
    )
    assert result.returncode == 1
    assert "--reset" in result.stderr and world_room in result.stderr


def test_alias_watch(synapse: Homeserver, alice: User, fresh_room, tmp_path: Path) -> None:
    room = fresh_room(alias_localpart="e2e-alias")
    synapse.send_text(alice, room, "via the alias")
    result = run_peek(
        "snapshot",
        f"#e2e-alias:{synapse.server_name}",
        "--homeserver",
        synapse.base_url,
        "--json",
        "--history",
        "1",
        state_file=tmp_path / "s.json",
    )
    assert result.returncode == 0, result.stderr
    assert bodies(json_lines(result.stdout)) == ["via the alias"]


def test_a_reader_that_leaves_a_quiet_room_ends_the_watch(
    synapse: Homeserver, fresh_room, tmp_path: Path
) -> None:
    """`peek watch … | head -n 3` on a quiet room must not wait for the next event to notice."""
    import subprocess
    import time

    from tests.e2e.peekproc import peek_command, peek_env

    room = fresh_room()
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [
            *peek_command(),
            "watch",
            room,
            "--homeserver",
            synapse.base_url,
            "--json",
            "--history",
            "0",
            "--timeout",
            "500",
        ],
        env=peek_env(state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the first position is saved: peek is now long-polling
        assert state.exists()
        assert proc.stdout is not None
        proc.stdout.close()  # the reader goes away; no message is ever sent
        code = proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    assert code == 141 and proc.stderr.read() == b""
