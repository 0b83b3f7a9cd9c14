"""Rooms as people name them, several at once, and the directory, against the real Synapse."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from urllib.parse import quote

from tests.e2e.peekproc import Watcher, json_lines, run_peek
from tests.homeserver import Homeserver, User
from tests.statefile import saved


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e.get("type") == "m.room.message"]


def test_alias_and_its_links_resolve_and_are_remembered(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    local = f"lobby-{uuid.uuid4().hex[:8]}"
    alias = f"#{local}:{synapse.server_name}"
    room = synapse.create_room(alice, alias_localpart=local)
    state = tmp_path / "state.json"
    hs = ("--homeserver", synapse.base_url)
    synapse.send_text(alice, room, "before")
    watcher = Watcher.start(
        alias, *hs, "--json", "--history", "1", "--max-events", "2", state_file=state
    )
    assert bodies(watcher.events(1)) == ["before"]
    synapse.send_text(alice, room, "live")
    assert bodies(watcher.events(1)) == ["live"]
    assert watcher.proc.wait(20) == 0  # --max-events reached: exits by itself
    doc = saved(state)
    assert doc["aliases"][synapse.base_url][alias] == room
    assert doc["positions"][synapse.base_url][room]["alias"] == alias

    # The same room through a matrix.to link and a matrix: URI resumes the same position.
    synapse.send_text(alice, room, "via link")
    link = f"https://matrix.to/#/{quote(alias, safe='')}?via={synapse.server_name}"
    got = run_peek("snapshot", link, *hs, "--json", state_file=state)
    assert got.returncode == 0, got.stderr
    assert bodies(json_lines(got.stdout)) == ["via link"]
    synapse.send_text(alice, room, "via uri")
    uri = f"matrix:r/{local}:{synapse.server_name}?action=join"
    got = run_peek("snapshot", uri, *hs, "--json", state_file=state)
    assert bodies(json_lines(got.stdout)) == ["via uri"]


def test_two_rooms_at_once_both_arrive_and_each_position_is_saved(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    one, two = fresh_room(name="One"), fresh_room(name="Two")
    state = tmp_path / "state.json"
    synapse.send_text(alice, one, "one: before")
    synapse.send_text(alice, two, "two: before")
    watcher = Watcher.start(
        one, two, "--homeserver", synapse.base_url, "--json", "--history", "1", state_file=state
    )
    assert sorted(bodies(watcher.events(2))) == ["one: before", "two: before"]
    last_one = synapse.send_text(alice, one, "one: live")
    last_two = synapse.send_text(alice, two, "two: live")
    live = watcher.events(2)
    assert sorted(bodies(live)) == ["one: live", "two: live"]
    assert {e["room_id"] for e in live} == {one, two}
    code, err = watcher.stop(signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    positions = saved(state)["positions"][synapse.base_url]
    assert positions[one]["last_event_id"] == last_one
    assert positions[two]["last_event_id"] == last_two

    # Each room resumes on its own: only what is new in each is printed.
    synapse.send_text(alice, two, "two: later")
    again = run_peek(
        "snapshot", one, two, "--homeserver", synapse.base_url, "--json", state_file=state
    )
    assert again.returncode == 0, again.stderr
    assert bodies(json_lines(again.stdout)) == ["two: later"]


def test_forbidden_room_beside_a_good_one_is_reported_and_the_good_one_goes_on(
    synapse: Homeserver, alice: User, private_room: str, fresh_room, tmp_path: Path
) -> None:
    good = fresh_room()
    state = tmp_path / "state.json"
    synapse.send_text(alice, good, "first")
    watcher = Watcher.start(
        private_room,
        good,
        "--homeserver",
        synapse.base_url,
        "--json",
        "--history",
        "1",
        state_file=state,
    )
    assert bodies(watcher.events(1)) == ["first"]
    synapse.send_text(alice, good, "second")
    assert bodies(watcher.events(1)) == ["second"]
    code, err = watcher.stop(signal.SIGINT)
    assert code == 130, err
    reported = [line for line in err.splitlines() if private_room in line]
    assert len(reported) == 1 and "cannot read" in reported[0], err
    positions = saved(state)["positions"][synapse.base_url]
    assert good in positions and private_room not in positions


def test_snapshot_of_a_forbidden_and_a_good_room_exits_3_after_draining_the_good_one(
    synapse: Homeserver, alice: User, private_room: str, fresh_room, tmp_path: Path
) -> None:
    good = fresh_room()
    synapse.send_text(alice, good, "hello")
    got = run_peek(
        "snapshot",
        good,
        private_room,
        "--homeserver",
        synapse.base_url,
        "--json",
        state_file=tmp_path / "state.json",
    )
    assert got.returncode == 3, got.stderr
    assert bodies(json_lines(got.stdout)) == ["hello"]
    assert got.stderr.count("\n") == 1 and private_room in got.stderr


def test_rooms_lists_the_directory_page_by_page(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    tag = f"dir{uuid.uuid4().hex[:8]}"
    ids = {
        synapse.create_room(alice, name=f"{tag} open {i}", publish=True, world_readable=True)
        for i in range(3)
    }
    closed = synapse.create_room(alice, name=f"{tag} closed", publish=True, world_readable=False)
    synapse.create_room(alice, name=f"{tag} unlisted")  # not published: never listed
    state = tmp_path / "state.json"
    hs = ("--homeserver", synapse.base_url)
    got = run_peek(
        "rooms",
        *hs,
        "--search",
        tag,
        "--json",
        "--page-size",
        "1",
        "--limit",
        "0",
        state_file=state,
    )
    assert got.returncode == 0, got.stderr
    rows = json_lines(got.stdout)
    assert {r["room_id"] for r in rows} == ids | {closed}
    assert {r["room_id"]: r["world_readable"] for r in rows}[closed] is False
    assert all(r["world_readable"] for r in rows if r["room_id"] != closed)
    assert all(r["name"].startswith(tag) and r["members"] == 1 for r in rows)

    limited = run_peek(
        "rooms", *hs, "--search", tag, "--limit", "2", "--page-size", "1", state_file=state
    )
    assert limited.returncode == 0, limited.stderr
    table = [line.split("\t") for line in limited.stdout.splitlines()]
    assert len(table) == 2 and all(len(row) == 5 for row in table)
    assert all(row[0] in ids | {closed} and row[3].startswith(tag) for row in table)
