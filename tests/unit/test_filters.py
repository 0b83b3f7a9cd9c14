"""--type, --sender, --grep and --messages-only: what is shown; the position moves past the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message


def event(n: int, etype: str, sender: str = "@alice:hs.test", **content: Any) -> dict[str, Any]:
    ev = message(n)
    ev["type"] = etype
    ev["sender"] = sender
    ev["content"] = content
    return ev


MIXED = [
    message(1, "hello world"),
    event(2, "m.room.member", membership="join"),
    event(3, "m.reaction"),
    event(4, "m.room.message", "@bob:other.test", msgtype="m.text", body="Deploy failed"),
    event(5, "m.sticker", body="a cat"),
    event(6, "m.room.topic", topic="new topic"),
    event(7, "m.room.name", name="Renamed"),
]


def ids(result: Any) -> list[str]:
    return [e["event_id"] for e in lines(result)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--type", "m.room.message"], ["$ev1", "$ev4"]),
        (["--type", "m.room.*"], ["$ev1", "$ev2", "$ev4", "$ev6", "$ev7"]),
        (["--type", "m.reaction", "--type", "m.sticker"], ["$ev3", "$ev5"]),
        (["--sender", "@bob:other.test"], ["$ev4"]),
        (
            ["--sender", "@*:other.test", "--sender", "@alice:hs.test"],
            [f"$ev{i}" for i in range(1, 8)],
        ),
        (["--grep", "(?i)deploy|cat"], ["$ev4", "$ev5"]),
        (["--grep", "^hello"], ["$ev1"]),
        (["--messages-only"], ["$ev1", "$ev4", "$ev5"]),
        (["--messages-only", "--sender", "@alice:hs.test"], ["$ev1", "$ev5"]),
        (["--type", "m.room.*", "--grep", "world|new"], ["$ev1"]),
    ],
)
def test_filters_choose_what_is_printed(
    hs: FakeHomeserver, peek: Any, args: list[str], expected: list[str]
) -> None:
    hs.chain(MIXED)
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0", *args)
    assert result.exit_code == 0, result.stderr
    assert ids(result) == expected


def test_filtered_out_events_still_advance_the_position(
    hs: FakeHomeserver, peek: Any, state_file: Path
) -> None:
    hs.chain(MIXED)
    first = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0", "--messages-only")
    assert ids(first) == ["$ev1", "$ev4", "$ev5"]
    pos = saved(state_file)["positions"][HS][ROOM]
    assert (pos["token"], pos["last_event_id"]) == ("t1", "$ev7")
    hs.events_by_token["t1"] = {
        "chunk": [event(8, "m.room.member", membership="leave"), message(9, "later")],
        "end": "t2",
    }
    # Without the filter now: what was filtered out before is not fetched again.
    second = peek("snapshot", ROOM, "-s", HS, "--json")
    assert ids(second) == ["$ev8", "$ev9"]


def test_filters_apply_to_history_too(hs: FakeHomeserver, peek: Any) -> None:
    hs.history = MIXED
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "7", "--type", "m.sticker")
    assert ids(result) == ["$ev5"]


def test_invalid_regex_is_a_usage_error(peek: Any) -> None:
    result = peek("watch", ROOM, "-s", HS, "--grep", "(unclosed")
    assert result.exit_code == 2
    assert "--grep" in result.stderr and "not a valid regular expression" in result.stderr


def test_sender_must_be_a_user_id(peek: Any) -> None:
    result = peek("snapshot", ROOM, "-s", HS, "--sender", "alice")
    assert result.exit_code == 2
    assert "@alice:example.org" in result.stderr
