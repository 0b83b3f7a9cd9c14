"""A pretty `peek snapshot` from cron: nothing new → nothing on stdout (no mail every run); the
header comes with the first event, and without the room's state it still names the room well."""

from __future__ import annotations

import re
from typing import Any

import responses

from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

STATE_URL = f"{HS}/_matrix/client/v3/rooms/%21room%3Ahs.test/state"
NAMED = [{"type": "m.room.name", "state_key": "", "content": {"name": "Lobby"}}]


def test_nothing_new_prints_nothing(hs: FakeHomeserver, peek: Any) -> None:
    hs.chain([message(1)])
    first = peek("snapshot", ROOM, "-s", HS, "--history", "0", "--no-color")
    assert first.exit_code == 0 and first.stdout.splitlines()[-1].endswith("message 1")
    hs.rsps.add(responses.GET, STATE_URL, json=NAMED)
    again = peek("snapshot", ROOM, "-s", HS, "--no-color")
    assert (again.exit_code, again.stdout) == (0, "")


def test_a_fresh_room_without_events_prints_nothing(hs: FakeHomeserver, peek: Any) -> None:
    hs.state = NAMED
    hs.chain([])
    result = peek("snapshot", ROOM, "-s", HS, "--no-color")
    assert (result.exit_code, result.stdout) == (0, "")


def test_filtered_out_events_print_no_header(hs: FakeHomeserver, peek: Any) -> None:
    hs.state = NAMED
    hs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--no-color", "--type", "m.reaction")
    assert (result.exit_code, result.stdout) == (0, "")


def test_the_header_comes_with_the_first_new_event(hs: FakeHomeserver, peek: Any) -> None:
    hs.chain([message(1)], [message(2, body="news")])
    peek("snapshot", ROOM, "-s", HS, "--json", "--max-events", "1", "--history", "0")
    hs.rsps.add(responses.GET, STATE_URL, json=NAMED)
    result = peek("snapshot", ROOM, "-s", HS, "--no-color")
    lines = result.stdout.splitlines()
    assert lines[0] == f"Lobby  {ROOM}" and "resuming from saved position" in lines[1]
    assert re.fullmatch(r"\d\d:\d\d @alice:hs.test: news", lines[-1])


def test_without_the_rooms_state_the_header_names_the_alias_and_the_id_once(
    hs: FakeHomeserver, peek: Any
) -> None:
    """Resuming, the header asks for the room's state; refused (or down), it used to print
    `!room:hs.test  !room:hs.test` and lose the alias the room was reached by."""
    hs.rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/v3/directory/room/%23lobby%3Ahs.test",
        json={"room_id": ROOM, "servers": ["hs.test"]},
    )
    hs.chain([message(1)], [message(2, body="news")])
    peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--max-events", "1", "--history", "0")
    refused = {"errcode": "M_FORBIDDEN", "error": "no"}
    hs.rsps.add(responses.GET, STATE_URL, json=refused, status=403)
    by_alias = peek("snapshot", "#lobby:hs.test", "-s", HS, "--no-color", "--max-events", "1")
    assert by_alias.stdout.splitlines()[0] == f"#lobby:hs.test  {ROOM}"
    by_id = peek("snapshot", ROOM, "-s", HS, "--no-color", "--reset", "--history", "1")
    assert by_id.exit_code == 0, by_id.stderr
    assert by_id.stdout.splitlines()[0] == ROOM


def test_watch_still_shows_its_header_at_once(hs: FakeHomeserver, peek: Any) -> None:
    """A live watch announces itself before the first event (its user is looking)."""
    hs.state = NAMED
    hs.chain([], [message(1)])
    result = peek("watch", ROOM, "-s", HS, "--no-color", "--max-events", "1", "--history", "0")
    assert result.stdout.splitlines()[0] == f"Lobby  {ROOM}"
