"""Following room upgrades: tombstone → replacement room from its start, redirects, --no-follow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from peekcli.follow.strategies import Cursor
from peekcli.matrix.events import replacement_of
from tests.unit.conftest import lines, saved
from tests.unit.timelinehs import HS, NEW, NEWER, OLD, TimelineHS


@pytest.fixture
def tl() -> Iterator[TimelineHS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TimelineHS(rsps).install()


def ids(result: Any) -> list[str]:
    return [e["event_id"] for e in lines(result)]


def upgraded(tl: TimelineHS) -> None:
    """OLD: a message, the tombstone, the power levels after it; NEW: its start and two messages."""
    tl.send(OLD, body="old 1")
    tl.tombstone(OLD, NEW)
    tl.send(OLD, "m.room.power_levels", content={"events_default": 50}, state_key="")
    tl.create(NEW, predecessor=OLD)
    tl.send(
        NEW,
        "m.room.history_visibility",
        content={"history_visibility": "world_readable"},
        state_key="",
    )
    tl.send(NEW, body="new 1")
    tl.send(NEW, body="new 2")


def test_replacement_of_reads_only_a_room_tombstone() -> None:
    tomb = {"type": "m.room.tombstone", "state_key": "", "content": {"replacement_room": NEW}}
    assert replacement_of(tomb, OLD) == NEW
    assert replacement_of({**tomb, "state_key": "x"}, OLD) is None
    assert replacement_of({**tomb, "content": {"replacement_room": OLD}}, OLD) is None
    assert replacement_of({**tomb, "content": {"replacement_room": "not a room\n"}}, OLD) is None
    assert replacement_of({**tomb, "content": []}, OLD) is None
    assert replacement_of({"type": "m.room.message", "content": {}}, OLD) is None


def test_snapshot_goes_on_in_the_replacement_from_its_start(
    tl: TimelineHS, peek: Any, state_file: Path
) -> None:
    first = peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    assert first.exit_code == 0, first.stderr
    upgraded(tl)
    result = peek("snapshot", OLD, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == [e["event_id"] for e in tl.stream]
    assert [e["room_id"] for e in lines(result)] == [OLD] * 3 + [NEW] * 4
    assert f"{OLD} was replaced by {NEW} (room upgrade); following it from its start" in (
        result.stderr
    )
    doc = saved(state_file)
    assert doc["redirects"] == {HS: {OLD: NEW}}
    assert doc["positions"][HS][OLD]["replaced_by"] == NEW
    assert doc["positions"][HS][NEW]["kind"] == "events"
    # The walk: /messages?dir=f with no `from` (the room's start), bounded by the live position.
    walk = tl.calls(f"/rooms/{NEW}/messages")
    assert "dir=f" in walk[0] and "from=" not in walk[0] and "to=s7" in walk[0]
    assert "limit=1000" in walk[0]

    tl.send(NEW, body="new 3")
    again = peek("snapshot", OLD, "-s", HS, "--json")
    assert [e["content"]["body"] for e in lines(again)] == ["new 3"]
    assert f"replaced by {NEW} (room upgrade); continuing there" in again.stderr
    assert len(tl.calls(f"/rooms/{NEW}/initialSync")) == 1  # the saved position was used


def test_events_sent_during_the_switch_are_neither_lost_nor_repeated(
    tl: TimelineHS, peek: Any
) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    upgraded(tl)
    late: list[str] = []

    def meanwhile(room: str) -> None:
        if room == NEW and not late:  # lands after the live position, before the walk
            late.append(tl.send(NEW, body="sent during the switch")["event_id"])

    tl.on_initial_sync = meanwhile
    result = peek("snapshot", OLD, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert late and ids(result) == [e["event_id"] for e in tl.stream]


def test_no_follow_stops_at_the_tombstone_and_a_later_run_follows(
    tl: TimelineHS, peek: Any, state_file: Path
) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    upgraded(tl)
    stop = peek("snapshot", OLD, "-s", HS, "--json", "--no-follow")
    assert stop.exit_code == 0, stop.stderr
    assert [e["room_id"] for e in lines(stop)] == [OLD] * 3
    assert f"replaced by {NEW}" in stop.stderr and "--no-follow" in stop.stderr
    assert f"peek watch '{NEW}'" in stop.stderr
    assert "redirects" not in saved(state_file)
    assert tl.calls(NEW) == []
    # Again with --no-follow: nothing new, the same message.
    again = peek("snapshot", OLD, "-s", HS, "--json", "--no-follow")
    assert again.exit_code == 0 and again.stdout == "" and NEW in again.stderr
    follow = peek("snapshot", OLD, "-s", HS, "--json")
    assert [e["room_id"] for e in lines(follow)] == [NEW] * 4


def test_an_unreadable_replacement_fails_clearly_and_keeps_the_old_position(
    tl: TimelineHS, peek: Any, state_file: Path
) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    upgraded(tl)
    tl.refuse[NEW] = (403, {"errcode": "M_FORBIDDEN", "error": "not world readable"})
    result = peek("snapshot", OLD, "-s", HS, "--json")
    assert result.exit_code == 3
    assert NEW in result.stderr and "not world-readable" in result.stderr
    assert "Traceback" not in result.stderr
    doc = saved(state_file)
    assert doc["positions"][HS][OLD]["replaced_by"] == NEW
    assert NEW not in doc["positions"][HS] and "redirects" not in doc
    # Readable again: the next run picks the replacement up from its start.
    del tl.refuse[NEW]
    fixed = peek("snapshot", OLD, "-s", HS, "--json")
    assert fixed.exit_code == 0, fixed.stderr
    assert [e["room_id"] for e in lines(fixed)] == [NEW] * 4


def test_an_interrupted_catch_up_resumes_where_it_stopped(
    tl: TimelineHS, peek: Any, state_file: Path
) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    upgraded(tl)
    tl.page_cap = 1  # one event per /messages page: stops can land inside the walk
    first = peek("snapshot", OLD, "-s", HS, "--json", "--max-events", "5")
    assert first.exit_code == 0, first.stderr
    assert len(lines(first)) == 5
    position = saved(state_file)["positions"][HS][NEW]
    assert position["kind"] == "catchup"
    cursor = Cursor.decode(position["token"])
    assert cursor.to == "s7" and not cursor.done
    rest = peek("snapshot", OLD, "-s", HS, "--json")
    assert rest.exit_code == 0, rest.stderr
    assert ids(first) + ids(rest) == [e["event_id"] for e in tl.stream]
    assert saved(state_file)["positions"][HS][NEW]["kind"] == "events"


def test_a_fresh_start_on_a_replaced_room_starts_fresh_in_the_replacement(
    tl: TimelineHS, peek: Any, state_file: Path
) -> None:
    upgraded(tl)
    result = peek("snapshot", OLD, "-s", HS, "--json", "--history", "1")
    assert result.exit_code == 0, result.stderr
    assert [e["content"].get("body") for e in lines(result)] == ["new 2"]
    assert saved(state_file)["redirects"] == {HS: {OLD: NEW}}


def test_a_fresh_start_showing_the_tombstone_goes_on_from_the_replacements_start(
    tl: TimelineHS, peek: Any
) -> None:
    upgraded(tl)
    result = peek("snapshot", OLD, "-s", HS, "--json", "--history", "2")
    assert result.exit_code == 0, result.stderr
    assert [e["room_id"] for e in lines(result)] == [OLD, OLD] + [NEW] * 4


def test_chains_of_upgrades_and_loops(tl: TimelineHS, peek: Any, state_file: Path) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    upgraded(tl)
    tl.tombstone(NEW, NEWER)
    tl.create(NEWER, predecessor=NEW)
    tl.send(NEWER, body="newest")
    tl.tombstone(NEWER, OLD)  # a broken server pointing back: must not loop for ever
    result = peek("snapshot", OLD, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == [e["event_id"] for e in tl.stream]
    assert "already followed" in result.stderr
    assert saved(state_file)["redirects"][HS] == {OLD: NEW, NEW: NEWER}


def test_max_events_counts_across_the_switch(tl: TimelineHS, peek: Any) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    upgraded(tl)
    result = peek("snapshot", OLD, "-s", HS, "--json", "--max-events", "4")
    assert ids(result) == [e["event_id"] for e in tl.stream[:4]]


def test_reset_starts_over_in_the_old_room(tl: TimelineHS, peek: Any, state_file: Path) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    upgraded(tl)
    peek("snapshot", OLD, "-s", HS, "--json")
    tl.send(NEW, body="new 3")
    result = peek("snapshot", OLD, "-s", HS, "--json", "--reset", "--history", "0")
    assert result.exit_code == 0, result.stderr
    # OLD forgotten (position and redirect): a fresh start there finds the tombstone in its
    # state and goes on in NEW, whose own position was kept.
    assert [e["content"].get("body") for e in lines(result)] == ["new 3"]
    assert len(tl.calls(f"/rooms/{OLD}/initialSync")) == 2  # the first run's, and this one
    assert saved(state_file)["redirects"] == {HS: {OLD: NEW}}


def alias_names(tl: TimelineHS, room: str) -> None:
    """The directory answers #lobby:hs.test with `room` (from now on)."""
    url = f"{HS}/_matrix/client/v3/directory/room/%23lobby%3Ahs.test"
    tl.rsps.upsert(responses.GET, url, json={"room_id": room, "servers": ["hs.test"]})


def test_an_alias_moved_by_the_upgrade_still_hands_over_through_the_old_room(
    tl: TimelineHS, peek: Any, state_file: Path
) -> None:
    """An upgrade moves the alias before peek sees the tombstone: a run by alias must finish
    the old room and walk the new one from its start, not start afresh in the new room."""
    alias_names(tl, OLD)
    first = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--history", "0")
    assert first.exit_code == 0, first.stderr
    upgraded(tl)
    alias_names(tl, NEW)
    result = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--history", "1")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == [e["event_id"] for e in tl.stream]
    tl.send(NEW, body="new 3")
    again = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json")
    assert [e["content"]["body"] for e in lines(again)] == ["new 3"]
    assert saved(state_file)["aliases"][HS]["#lobby:hs.test"] == NEW


def test_an_alias_given_to_an_unrelated_room_follows_the_alias(
    tl: TimelineHS, peek: Any, state_file: Path
) -> None:
    alias_names(tl, OLD)
    peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--history", "0")
    tl.send(OLD, body="old 1")
    tl.create(NEW)  # no predecessor: not an upgrade of OLD
    tl.send(NEW, body="new 1")
    alias_names(tl, NEW)
    before = len(tl.calls(f"/events?room_id={OLD}"))
    result = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--history", "1")
    assert result.exit_code == 0, result.stderr
    assert [e["content"].get("body") for e in lines(result)] == ["new 1"]
    assert len(tl.calls(f"/events?room_id={OLD}")) == before  # OLD is left alone
