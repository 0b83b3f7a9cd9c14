"""`peek info ROOM`: the room's facts and a verdict, from the summary endpoint or the state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from tests.unit.mockhs import HS, ROOM
from tests.unit.simhs import SimServer

WORLD = {
    "room_id": ROOM,
    "name": "Lobby",
    "canonical_alias": "#lobby:hs.test",
    "topic": "Say hi",
    "num_joined_members": 42,
    "room_version": "11",
    "join_rule": "public",
    "world_readable": True,
    "guest_can_join": True,
}
PRIVATE = {**WORLD, "world_readable": False, "guest_can_join": False, "name": "Members"}


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield SimServer(rsps, summary=dict(WORLD)).install()


@pytest.fixture
def info(state_file: Path) -> Any:
    from click.testing import CliRunner

    from peekcli.cli import cli

    def run(*args: str, **env: str) -> Any:
        return CliRunner().invoke(
            cli,
            ["info", *args, "-s", HS, "--state-file", str(state_file)],
            env=env or None,
            catch_exceptions=False,
        )

    return run


def fields(result: Any) -> dict[str, str]:
    out = {}
    for line in result.stdout.splitlines():
        label, _, value = line.partition("  ")
        out[label.strip()] = value.strip()
    return out


def test_world_readable_room_is_watchable_as_guest(sim: SimServer, info: Any) -> None:
    result = info(ROOM)
    assert result.exit_code == 0, result.stderr
    shown = fields(result)
    assert shown["name"] == "Lobby" and shown["alias"] == "#lobby:hs.test"
    assert shown["topic"] == "Say hi" and shown["members"] == "42"
    assert shown["room version"] == "11" and shown["join rule"] == "public"
    assert shown["history"] == "world_readable" and shown["guests"] == "can join"
    assert shown["encryption"] == "none"
    assert shown["verdict"].startswith("watchable as guest")
    # The summary was asked without a token; a guest was made only to confirm the verdict.
    summary = sim.calls("/room_summary/")[0]
    assert "Authorization" not in summary.request.headers
    assert sim.guests == 1


def test_json_has_every_fact_and_the_verdict(sim: SimServer, info: Any) -> None:
    result = info(ROOM, "--json")
    doc = json.loads(result.stdout)
    assert doc["room_id"] == ROOM and doc["num_joined_members"] == 42
    assert doc["history_visibility"] == "world_readable" and doc["guest_access"] == "can_join"
    assert doc["source"] == "room_summary"
    assert doc["verdict"]["watchable"] is True and doc["verdict"]["as"] == "guest"


def test_server_text_is_sanitized(sim: SimServer, info: Any) -> None:
    assert sim.summary is not None
    sim.summary["name"] = "evil\x1b[2J\u202ename"
    sim.summary["topic"] = "line one\nline two"
    plain = info(ROOM)
    assert "\x1b" not in plain.stdout and "\u202e" not in plain.stdout
    assert "line two" in fields(plain)["topic"]  # kept on its one line
    as_json = info(ROOM, "--json")
    assert "\x1b" not in as_json.stdout and "\u202e" not in as_json.stdout
    assert json.loads(as_json.stdout)["name"] == "evil\x1b[2J\u202ename"


def test_summary_needing_a_token_is_asked_again_as_a_guest(sim: SimServer, info: Any) -> None:
    sim.summary_needs_token = True
    result = info(ROOM)
    assert result.exit_code == 0, result.stderr
    calls = sim.calls("/room_summary/")
    assert len(calls) == 2 and calls[1].request.headers["Authorization"] == "Bearer guest-token-1"


def test_older_servers_unstable_summary_is_used(sim: SimServer, info: Any) -> None:
    sim.summary_forms = ("unstable",)
    result = info(ROOM, "--json")
    assert json.loads(result.stdout)["source"] == "im.nheko.summary"
    assert "/im.nheko.summary/rooms/" in sim.calls("im.nheko.summary")[0].request.url


def state_event(kind: str, content: dict[str, Any], key: str = "") -> dict[str, Any]:
    return {"type": kind, "state_key": key, "content": content, "sender": "@a:hs.test"}


def test_without_any_summary_the_state_tells(sim: SimServer, info: Any) -> None:
    sim.summary = None
    sim.state = [
        state_event("m.room.create", {"room_version": "10"}),
        state_event("m.room.name", {"name": "From state"}),
        state_event("m.room.join_rules", {"join_rule": "public"}),
        state_event("m.room.history_visibility", {"history_visibility": "world_readable"}),
        state_event("m.room.guest_access", {"guest_access": "can_join"}),
        state_event("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}),
        state_event("m.room.member", {"membership": "join"}, "@a:hs.test"),
        state_event("m.room.member", {"membership": "leave"}, "@b:hs.test"),
    ]
    result = info(ROOM, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == "state" and doc["name"] == "From state"
    assert (doc["room_version"], doc["num_joined_members"]) == ("10", 1)
    assert doc["encryption"] == "m.megolm.v1.aes-sha2"
    assert doc["verdict"]["as"] == "guest" and "encrypted" in doc["verdict"]["reason"]


def test_a_room_that_is_not_world_readable_is_not_watchable_exit_3(
    sim: SimServer, info: Any
) -> None:
    sim.summary = dict(PRIVATE)
    result = info(ROOM)
    assert result.exit_code == 3
    verdict = fields(result)["verdict"]
    assert verdict.startswith("not watchable") and "join it with a Matrix client" in verdict
    assert sim.guests == 0  # no guest spent on a room it could not read


def test_a_joined_account_can_watch_a_private_room(sim: SimServer, info: Any) -> None:
    sim.summary = {**PRIVATE, "membership": "join"}
    result = info(ROOM, "--token", "user-token")
    assert result.exit_code == 0, result.stderr
    assert fields(result)["verdict"].startswith("watchable with your account")
    assert sim.calls("/room_summary/")[0].request.headers["Authorization"] == "Bearer user-token"
    assert "user-token" not in result.stdout + result.stderr


def test_guests_refused_on_a_world_readable_room_exit_7(sim: SimServer, info: Any) -> None:
    sim.guests_allowed = False
    result = info(ROOM)
    assert result.exit_code == 7
    verdict = fields(result)["verdict"]
    assert "world-readable" in verdict and "peek login" in verdict
    assert fields(result)["name"] == "Lobby"  # the facts are still shown


def test_an_invisible_room_is_not_watchable(sim: SimServer, info: Any) -> None:
    sim.summary = None
    sim.state_error = (403, {"errcode": "M_FORBIDDEN", "error": "not in room"})
    result = info(ROOM)
    assert result.exit_code == 3
    assert "shows nothing" in fields(result)["verdict"]


def test_an_unknown_alias_exits_4(sim: SimServer, info: Any) -> None:
    sim.summary = None
    sim.rsps.add(
        "GET",
        f"{HS}/_matrix/client/v3/directory/room/%23nope%3Ahs.test",
        status=404,
        json={"errcode": "M_NOT_FOUND", "error": "Room alias not found"},
    )
    result = info("#nope:hs.test")
    assert result.exit_code == 4 and "not found" in result.stderr
