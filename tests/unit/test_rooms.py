"""Room arguments in every form people share them, and aliases resolved (and remembered)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

from peekcli.errors import UsageError
from peekcli.matrix.ids import RoomRef, parse_room
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

V12 = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!abc:example.org", RoomRef("!abc:example.org")),
        ("  !abc:example.org\n", RoomRef("!abc:example.org")),
        (V12, RoomRef(V12)),
        ("!abc:example.org:8448", RoomRef("!abc:example.org:8448")),
        ("#lobby:example.org", RoomRef("#lobby:example.org")),
        ("#lobby:[::1]:8448", RoomRef("#lobby:[::1]:8448")),
        # matrix.to, plain and percent-encoded, with via and event permalinks
        ("https://matrix.to/#/#lobby:example.org", RoomRef("#lobby:example.org")),
        ("https://matrix.to/#/%23lobby%3Aexample.org", RoomRef("#lobby:example.org")),
        ("matrix.to/#/#lobby:example.org", RoomRef("#lobby:example.org")),
        ("HTTPS://MATRIX.TO/#/#lobby:example.org", RoomRef("#lobby:example.org")),
        (
            "https://matrix.to/#/!abc:example.org?via=one.org&via=two.org",
            RoomRef("!abc:example.org", ("one.org", "two.org")),
        ),
        (
            f"https://matrix.to/#/{V12}/$ev1?via=one.org",
            RoomRef(V12, ("one.org",), "$ev1"),
        ),
        (
            "https://matrix.to/#/!abc:example.org/%24ev%2Fwith%2Fslash?via=x.org",
            RoomRef("!abc:example.org", ("x.org",), "$ev/with/slash"),
        ),
        (  # an unencoded room-v3 event id with "/" in it
            "https://matrix.to/#/!abc:example.org/$ev/with/slash",
            RoomRef("!abc:example.org", (), "$ev/with/slash"),
        ),
        # matrix: URIs (spec appendix), legacy long types, action, authority and fragment
        ("matrix:r/lobby:example.org", RoomRef("#lobby:example.org")),
        ("matrix:r/lobby%3Aexample.org?action=join", RoomRef("#lobby:example.org")),
        (
            "matrix:roomid/abc:example.org?via=one.org&action=join&via=two.org",
            RoomRef("!abc:example.org", ("one.org", "two.org")),
        ),
        (
            "matrix:roomid/abc:example.org/e/ev1?via=one.org",
            RoomRef("!abc:example.org", ("one.org",), "$ev1"),
        ),
        (f"matrix:roomid/{V12[1:]}?via=one.org", RoomRef(V12, ("one.org",))),
        ("MATRIX:r/lobby:example.org", RoomRef("#lobby:example.org")),
        ("matrix:room/lobby:example.org", RoomRef("#lobby:example.org")),
        ("matrix:roomid/abc:example.org/event/ev1", RoomRef("!abc:example.org", (), "$ev1")),
        ("matrix://ignored/r/lobby:example.org", RoomRef("#lobby:example.org")),
        ("matrix:r/lobby:example.org#frag", RoomRef("#lobby:example.org")),
        # a via that is not a server name is dropped rather than used in a URL
        (
            "https://matrix.to/#/!abc:example.org?via=evil.org/path&via=ok.org",
            RoomRef("!abc:example.org", ("ok.org",)),
        ),
    ],
)
def test_every_room_syntax_parses(text: str, expected: RoomRef) -> None:
    assert parse_room(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("lobby", "expected !id"),
        ("#lobby", "expected !id"),
        ("#lobby:", "expected !id"),
        ("#lob by:example.org", "expected !id"),
        ("#lobby:example.org/path", "expected !id"),
        ("!", "expected !id"),
        ("@alice:example.org", "is a user"),
        ("https://matrix.to/#/@alice:example.org", "is a user"),
        ("https://matrix.to/#/", "names no room"),
        ("matrix:u/alice:example.org", "is a user"),
        ("matrix:x/lobby:example.org", "matrix:r/"),
        ("matrix:r/", "matrix:r/"),
        ("matrix:r/lobby:example.org/x/y", "only /e/EVENT"),
    ],
)
def test_bad_room_arguments_say_what_is_expected(text: str, hint: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_room(text)
    assert hint in err.value.message
    assert err.value.exit_code == 2


def test_server_name_for_discovery() -> None:
    assert parse_room("#lobby:example.org").server_name == "example.org"
    assert parse_room("!abc:example.org").server_name == "example.org"
    # A via names a server in the room; the id's own server may have left it.
    assert parse_room("https://matrix.to/#/!abc:gone.org?via=here.org").server_name == "here.org"
    assert parse_room(V12).server_name is None
    assert parse_room(f"https://matrix.to/#/{V12}?via=here.org").server_name == "here.org"


# -- through the CLI ------------------------------------------------------------------------------


def _alias(hs: FakeHomeserver, alias: str, room_id: str = ROOM, status: int = 200) -> None:
    body = (
        {"room_id": room_id, "servers": ["hs.test"]}
        if status == 200
        else {"errcode": "M_NOT_FOUND", "error": "gone"}
    )
    hs.rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/v3/directory/room/{alias.replace('#', '%23').replace(':', '%3A')}",
        json=body,
        status=status,
    )


@pytest.mark.parametrize(
    "arg",
    [
        "#lobby:hs.test",
        "https://matrix.to/#/%23lobby%3Ahs.test?via=hs.test",
        "matrix:r/lobby:hs.test?action=join",
    ],
)
def test_alias_forms_resolve_and_the_alias_is_remembered(
    hs: FakeHomeserver, peek, state_file: Path, arg: str
) -> None:
    _alias(hs, "#lobby:hs.test")
    hs.chain([message(1)])
    result = peek("snapshot", arg, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    doc = saved(state_file)
    assert doc["aliases"][HS]["#lobby:hs.test"] == ROOM
    assert doc["positions"][HS][ROOM]["alias"] == "#lobby:hs.test"


def test_room_id_forms_need_no_directory(hs: FakeHomeserver, peek) -> None:
    hs.chain([message(1)])
    for arg in (ROOM, f"https://matrix.to/#/{ROOM}/$ev0?via=hs.test", "matrix:roomid/room:hs.test"):
        result = peek("snapshot", arg, "-s", HS, "--json", "--history", "0", "--reset")
        assert result.exit_code == 0, result.stderr
        assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert hs.calls("/directory/") == []


def test_removed_alias_still_reaches_the_remembered_room(
    hs: FakeHomeserver, peek, state_file: Path
) -> None:
    _alias(hs, "#lobby:hs.test")
    hs.chain([message(1)])
    first = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--history", "0")
    assert first.exit_code == 0, first.stderr
    hs.events_by_token["t1"] = {"chunk": [message(2)], "start": "t1", "end": "t2"}
    hs.rsps.remove(responses.GET, f"{HS}/_matrix/client/v3/directory/room/%23lobby%3Ahs.test")
    _alias(hs, "#lobby:hs.test", status=404)
    second = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json")
    assert second.exit_code == 0, second.stderr
    assert [e["event_id"] for e in lines(second)] == ["$ev2"]


def test_unknown_alias_exits_4_with_one_line(hs: FakeHomeserver, peek) -> None:
    _alias(hs, "#nope:hs.test", status=404)
    result = peek("snapshot", "#nope:hs.test", "-s", HS, "--json")
    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1 and "#nope:hs.test not found" in result.stderr


def test_user_link_is_a_usage_error(peek) -> None:
    result = peek("watch", "https://matrix.to/#/@alice:example.org")
    assert result.exit_code == 2
    assert "is a user" in result.stderr and "Traceback" not in result.stderr


def test_room_v12_id_without_homeserver_or_via_asks_for_one(peek) -> None:
    result = peek("snapshot", V12, "--json")
    assert result.exit_code == 2
    assert "names no server" in result.stderr
    assert json.dumps(V12)[1:-1] in result.stderr
