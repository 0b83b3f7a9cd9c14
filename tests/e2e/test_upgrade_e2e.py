"""Room upgrades on the real Synapse: a watch follows the tombstone into the replacement room."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.e2e.peekproc import Watcher, json_lines, run_peek
from tests.homeserver import Homeserver, User
from tests.statefile import saved


def upgrade(hs: Homeserver, user: User, room: str) -> str:
    path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/upgrade"
    reply = hs.request("POST", path, user=user, json_body={"new_version": "12"})
    return str(reply["replacement_room"])


def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def saved_last(state: Path, homeserver: str, room: str) -> str | None:
    try:
        doc = saved(state)
    except (OSError, ValueError):
        return None
    return doc.get("positions", {}).get(homeserver, {}).get(room, {}).get("last_event_id")


def messages(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["room_id"], e["content"]["body"])
        for e in events
        if e.get("type") == "m.room.message" and "body" in e.get("content", {})
    ]


def test_synapse_copies_world_readable_history_into_the_replacement(
    synapse: Homeserver, alice: User, fresh_room
) -> None:
    """What the follow relies on: the new room is world-readable too and names its predecessor."""
    old = fresh_room()
    new = upgrade(synapse, alice, old)
    q = quote(new, safe="")
    hv = synapse.request(
        "GET", f"/_matrix/client/v3/rooms/{q}/state/m.room.history_visibility/", user=alice
    )
    create = synapse.request(
        "GET", f"/_matrix/client/v3/rooms/{q}/state/m.room.create/", user=alice
    )
    assert hv["history_visibility"] == "world_readable"
    assert create["predecessor"]["room_id"] == old


def test_watch_follows_an_upgrade_and_every_message_arrives_once(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    old = fresh_room(name="Before")
    state = tmp_path / "state.json"
    hs = ["--homeserver", synapse.base_url]
    synapse.send_text(alice, old, "old 1")
    watcher = Watcher.start(old, *hs, "--json", "--history", "1", state_file=state)
    try:
        got = watcher.events(1)
        assert messages(got) == [(old, "old 1")]
        synapse.send_text(alice, old, "old 2")
        new = upgrade(synapse, alice, old)
        # Sent right after the upgrade: before or after the watcher switched, it must arrive.
        synapse.send_text(alice, new, "new 1")
        synapse.send_text(alice, new, "new 2")
        while [m for m in messages(got) if m[1] == "new 2"] == []:
            got += watcher.events(1)
        last = synapse.send_text(alice, new, "new 3")
        while [m for m in messages(got) if m[1] == "new 3"] == []:
            got += watcher.events(1)
        # Stop once that is saved: a signal landing between an unbuffered write and the save
        # would (rightly) hand "new 3" over again next run, which is not what this test is about.
        wait_until(lambda: saved_last(state, synapse.base_url, new) == last)
    finally:
        code, err = watcher.stop(signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    got += [json.loads(line) for line in watcher.rest()]
    assert messages(got) == [
        (old, "old 1"),
        (old, "old 2"),
        (new, "new 1"),
        (new, "new 2"),
        (new, "new 3"),
    ]
    tombstones = [e for e in got if e["type"] == "m.room.tombstone"]
    assert [t["content"]["replacement_room"] for t in tombstones] == [new]
    ids = [e["event_id"] for e in got]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    # The switch is announced on stderr, naming the new room.
    assert f"replaced by {new}" in err
    doc = saved(state)
    assert doc["redirects"][synapse.base_url] == {old: new}

    # A later run on the OLD room goes on in the new one, where the watcher stopped.
    synapse.send_text(alice, new, "later")
    again = run_peek("snapshot", old, *hs, "--json", state_file=state)
    assert again.returncode == 0, again.stderr
    assert messages(json_lines(again.stdout)) == [(new, "later")]
    assert f"replaced by {new}" in again.stderr


def test_snapshot_after_an_upgrade_drains_the_new_room_from_its_start(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    old = fresh_room()
    state = tmp_path / "state.json"
    hs = ["--homeserver", synapse.base_url]
    first = run_peek("snapshot", old, *hs, "--json", "--history", "0", state_file=state)
    assert first.returncode == 0, first.stderr
    synapse.send_text(alice, old, "old 1")
    new = upgrade(synapse, alice, old)
    synapse.send_text(alice, new, "new 1")
    result = run_peek("snapshot", old, *hs, "--json", state_file=state)
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    assert messages(events) == [(old, "old 1"), (new, "new 1")]
    # The new room's own first visible events come too (its start, not only its messages).
    assert any(e["room_id"] == new and e["type"] == "m.room.history_visibility" for e in events)
    # Nothing left, nothing twice.
    empty = run_peek("snapshot", old, *hs, "--json", state_file=state)
    assert (empty.returncode, empty.stdout) == (0, ""), empty.stderr


def test_snapshot_by_alias_across_an_upgrade_loses_nothing(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    """The upgrade moves the alias to the new room before peek has seen the tombstone: the
    README's cron line (`peek snapshot '#alias' …`) used to start afresh in the new room,
    dropping the old room's last messages and all but the new room's last --history ones."""
    localpart = f"up-{uuid.uuid4().hex[:8]}"
    old = fresh_room(alias_localpart=localpart)
    alias = f"#{localpart}:{synapse.server_name}"
    state = tmp_path / "state.json"
    hs = ["--homeserver", synapse.base_url]
    first = run_peek("snapshot", alias, *hs, "--json", "--history", "0", state_file=state)
    assert first.returncode == 0, first.stderr
    synapse.send_text(alice, old, "old last")
    new = upgrade(synapse, alice, old)
    assert synapse.resolve_alias(alias) == new  # what makes this case: the alias has moved
    for i in range(3):
        synapse.send_text(alice, new, f"new {i}")
    result = run_peek("snapshot", alias, *hs, "--json", "--history", "1", state_file=state)
    assert result.returncode == 0, result.stderr
    assert messages(json_lines(result.stdout)) == [
        (old, "old last"),
        *[(new, f"new {i}") for i in range(3)],
    ]
    synapse.send_text(alice, new, "later")
    again = run_peek("snapshot", alias, *hs, "--json", state_file=state)
    assert messages(json_lines(again.stdout)) == [(new, "later")], again.stderr


def test_no_follow_stops_at_the_tombstone_naming_the_new_room(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    old = fresh_room()
    state = tmp_path / "state.json"
    hs = ["--homeserver", synapse.base_url]
    run_peek("snapshot", old, *hs, "--json", "--history", "0", state_file=state)
    new = upgrade(synapse, alice, old)
    synapse.send_text(alice, new, "not for --no-follow")
    result = run_peek("snapshot", old, *hs, "--json", "--no-follow", state_file=state)
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    assert events[-1]["type"] != "m.room.message"
    assert all(e["room_id"] == old for e in events)
    assert any(e["type"] == "m.room.tombstone" for e in events)
    assert new in result.stderr and "--no-follow" in result.stderr
    # Without --no-follow the next run goes on in the new room from its start.
    follow = run_peek("snapshot", old, *hs, "--json", state_file=state)
    assert messages(json_lines(follow.stdout)) == [(new, "not for --no-follow")]


def test_a_fresh_watch_of_a_replaced_room_starts_in_the_replacement(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    old = fresh_room()
    synapse.send_text(alice, old, "old news")
    new = upgrade(synapse, alice, old)
    for i in range(3):
        synapse.send_text(alice, new, f"new {i}")
    result = run_peek(
        "snapshot",
        old,
        "--homeserver",
        synapse.base_url,
        "--json",
        "--history",
        "1",
        state_file=tmp_path / "state.json",
    )
    assert result.returncode == 0, result.stderr
    # The old room's last event (after its tombstone) is not worth a switch from the start:
    # a fresh start there is a fresh start in the replacement, with its own last event.
    assert messages(json_lines(result.stdout)) == [(new, "new 2")]
    assert f"replaced by {new}" in result.stderr


def test_a_replacement_that_cannot_be_read_fails_clearly_and_keeps_the_old_position(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    old = fresh_room()
    state = tmp_path / "state.json"
    hs = ["--homeserver", synapse.base_url]
    run_peek("snapshot", old, *hs, "--json", "--history", "0", state_file=state)
    new = upgrade(synapse, alice, old)
    q = quote(new, safe="")
    synapse.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{q}/state/m.room.history_visibility/",
        user=alice,
        json_body={"history_visibility": "shared"},
    )
    result = run_peek("snapshot", old, *hs, "--json", state_file=state)
    assert result.returncode == 3, result.stderr
    assert new in result.stderr and "not world-readable" in result.stderr
    assert "Traceback" not in result.stderr
    doc = saved(state)
    position = doc["positions"][synapse.base_url][old]
    assert position["replaced_by"] == new
    assert old not in doc.get("redirects", {}).get(synapse.base_url, {})
    # Still refused next time (not silently stuck on the dead room).
    again = run_peek("snapshot", old, *hs, "--json", state_file=state)
    assert again.returncode == 3 and again.stdout == ""
