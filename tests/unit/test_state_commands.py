"""`peek state list | forget | path`: what is saved, for which room, and never a token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner

from peekcli.cli import cli
from peekcli.state import StateStore
from tests.unit.conftest import lines, saved, write_saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

OTHER_HS = "https://other.test"
OTHER_ROOM = "!other:other.test"


def state(state_file: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        cli, ["state", *args, "--state-file", str(state_file)], env=env, catch_exceptions=False
    )


@pytest.fixture
def two_rooms(hs: FakeHomeserver, peek: Any, state_file: Path) -> None:
    """ROOM, reached by the alias #lobby:hs.test, and a room on another homeserver."""
    hs.rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/v3/directory/room/%23lobby%3Ahs.test",
        json={"room_id": ROOM, "servers": ["hs.test"]},
    )
    hs.chain([message(1), message(2)])
    first = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--history", "0")
    assert [e["event_id"] for e in lines(first)] == ["$ev1", "$ev2"]
    other = FakeHomeserver(hs.rsps, base=OTHER_HS, room=OTHER_ROOM, initial_end="o5").install()
    assert other.base == OTHER_HS
    second = peek("snapshot", OTHER_ROOM, "-s", OTHER_HS, "--json", "--history", "0")
    assert second.exit_code == 0, second.stderr


def test_list_shows_room_alias_homeserver_update_time_and_position(
    two_rooms: None, state_file: Path
) -> None:
    result = state(state_file, "list")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ROOM", "ALIAS", "HOMESERVER", "UPDATED", "POSITION"]
    doc = saved(state_file)["positions"]
    updated = doc[HS][ROOM]["updated"]
    assert [row.split() for row in rows] == [
        [ROOM, "#lobby:hs.test", HS, updated, "t1"],
        [OTHER_ROOM, "-", OTHER_HS, doc[OTHER_HS][OTHER_ROOM]["updated"], "o5"],
    ]
    # Columns line up for reading.
    assert len({row.index(HS[:8]) for row in rows} | {header.index("HOMESERVER")}) == 1
    assert updated.endswith("+00:00")


def test_list_json_is_one_object_per_room(two_rooms: None, state_file: Path) -> None:
    result = state(state_file, "list", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0] == {
        "homeserver": HS,
        "room_id": ROOM,
        "alias": "#lobby:hs.test",
        "kind": "events",
        "position": "t1",
        "last_event_id": "$ev2",
        "partial": False,
        "updated": saved(state_file)["positions"][HS][ROOM]["updated"],
    }
    assert (rows[1]["room_id"], rows[1]["alias"], rows[1]["position"]) == (OTHER_ROOM, None, "o5")


def test_no_command_ever_prints_a_token(two_rooms: None, state_file: Path) -> None:
    creds = json.loads(state_file.with_name("credentials.json").read_text())
    tokens = [entry["guest"]["access_token"] for entry in creds["homeservers"].values()]
    assert len(tokens) == 2
    # Even a token that found its way into the state file (hand edit, old version) stays hidden.
    doc = saved(state_file)
    doc["positions"][HS][ROOM]["access_token"] = "leaked-secret"
    write_saved(state_file, doc)
    outputs = [
        state(state_file, "list"),
        state(state_file, "list", "--json"),
        state(state_file, "path"),
        state(state_file, "forget", ROOM),
        state(state_file, "forget", "!nope:hs.test"),
    ]
    for result in outputs:
        for secret in [*tokens, "leaked-secret"]:
            assert secret not in result.stdout + result.stderr


def test_list_with_nothing_saved(state_file: Path) -> None:
    result = state(state_file, "list")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"peek: no saved positions in {state_file}\n"
    quiet = state(state_file, "list", "--json")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert not state_file.exists()


def test_list_of_a_corrupt_state_file_names_it(state_file: Path) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_text('{"version": 1, "positions": ')
    result = state(state_file, "list")
    assert result.exit_code == 1
    assert str(state_file) in result.stderr and "corrupt" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "given",
    [ROOM, "#lobby:hs.test", "https://matrix.to/#/%23lobby:hs.test", "matrix:r/lobby:hs.test"],
)
def test_forget_by_room_id_alias_or_link_then_the_next_run_starts_fresh(
    two_rooms: None, hs: FakeHomeserver, peek: Any, state_file: Path, given: str
) -> None:
    result = state(state_file, "forget", given)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"forgot {ROOM} (#lobby:hs.test) on {HS}\n"
    positions = saved(state_file)["positions"]
    assert ROOM not in positions.get(HS, {}) and OTHER_ROOM in positions[OTHER_HS]
    # Credentials are not positions: the guest stays.
    assert json.loads(state_file.with_name("credentials.json").read_text())["homeservers"][HS]
    # With no position, the next run is a first run again: history first.
    hs.history = [message(7)]
    again = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "1")
    assert next(e["event_id"] for e in lines(again)) == "$ev7"


def test_forget_a_room_known_only_through_the_alias_cache(
    two_rooms: None, state_file: Path
) -> None:
    doc = saved(state_file)
    del doc["positions"][HS][ROOM]["alias"]  # reached by id later; the alias is still cached
    write_saved(state_file, doc)
    result = state(state_file, "forget", "#lobby:hs.test")
    assert result.exit_code == 0, result.stderr
    assert ROOM not in saved(state_file)["positions"].get(HS, {})


def test_forget_limited_to_one_homeserver(two_rooms: None, state_file: Path) -> None:
    wrong = state(state_file, "forget", ROOM, "--homeserver", OTHER_HS)
    assert wrong.exit_code == 1
    assert wrong.stderr == f"peek: no saved position for {ROOM} in {state_file}\n"
    assert ROOM in saved(state_file)["positions"][HS]
    right = state(state_file, "forget", ROOM, "-s", HS)
    assert right.exit_code == 0 and ROOM not in saved(state_file)["positions"].get(HS, {})


def test_forget_an_unknown_room_exits_1_and_changes_nothing(
    two_rooms: None, state_file: Path
) -> None:
    before = saved(state_file)
    result = state(state_file, "forget", "#nope:hs.test")
    assert result.exit_code == 1 and result.stdout == ""
    assert "no saved position for #nope:hs.test" in result.stderr
    assert saved(state_file) == before


def test_forget_while_another_peek_follows_the_room_exits_6(
    two_rooms: None, state_file: Path
) -> None:
    before = saved(state_file)
    with StateStore(state_file).room_lock(HS, ROOM):
        result = state(state_file, "forget", ROOM)
    assert result.exit_code == 6
    assert "another peek is following" in result.stderr
    assert saved(state_file) == before


def test_path_prints_the_state_file_in_use(state_file: Path, tmp_path: Path) -> None:
    assert state(state_file, "path").stdout == f"{state_file}\n"
    from_env = CliRunner().invoke(
        cli, ["state", "path"], env={"PEEK_STATE_FILE": str(tmp_path / "env.json")}
    )
    assert from_env.stdout == f"{tmp_path / 'env.json'}\n"
    default = CliRunner().invoke(cli, ["state", "path"])
    assert default.stdout == f"{tmp_path / 'xdg-state' / 'peek' / 'state.db'}\n"
    assert not state_file.exists()  # looking never creates anything


def test_a_room_held_by_this_run_is_not_waited_for(tmp_path: Path) -> None:
    """Two threads of one multi-room run reaching the same room (say, through an upgrade):
    the second must not wait for ever on the first; it ends, and the room is followed once."""
    import threading

    from peekcli.errors import AlreadyFollowed
    from peekcli.state import StateStore

    store = StateStore(tmp_path / "state.json")
    outcome: list[str] = []
    with store.room_lock("https://hs", "!r"):
        thread = threading.Thread(
            target=lambda: _claim(store, outcome, AlreadyFollowed), daemon=True
        )
        thread.start()
        thread.join(5)
    assert outcome == ["already followed, exit 0"]
    with store.room_lock("https://hs", "!r"):  # released: free again
        pass


def _claim(store, outcome, already) -> None:
    try:
        with store.room_lock("https://hs", "!r"):
            outcome.append("got it")
    except already as exc:
        outcome.append(f"already followed, exit {exc.exit_code}")
