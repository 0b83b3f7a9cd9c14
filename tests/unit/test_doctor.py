"""`peek doctor`: each step a watch needs, checked on simulated servers; exit 0 only if it works."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import responses

from tests.unit.mockhs import HS, ROOM
from tests.unit.simhs import SimServer, messages


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def doctor(state_file: Path) -> Any:
    from click.testing import CliRunner

    from peekcli.cli import cli

    def run(*args: str) -> Any:
        return CliRunner().invoke(
            cli, ["doctor", *args, "--state-file", str(state_file)], catch_exceptions=False
        )

    return run


def table(result: Any) -> dict[str, tuple[str, str]]:
    """check name → (mark, detail), from the plain (piped) output."""
    rows = {}
    for line in result.stdout.splitlines():
        mark, name, detail = line[:5].strip(), line[6:25].strip(), line[26:]
        rows[name] = (mark, detail)
    return rows


def sim(rsps: responses.RequestsMock, software: str, **kw: Any) -> SimServer:
    return SimServer(rsps, software, timeline=messages(1, 3), **kw).install()


def test_synapse_like_server_passes_and_uses_events(
    rsps: responses.RequestsMock, doctor: Any
) -> None:
    sim(rsps, "synapse")
    result = doctor(HS, "--room", ROOM)
    assert result.exit_code == 0, result.stdout + result.stderr
    rows = table(result)
    assert rows["/versions"][0] == "ok" and "v1.11" in rows["/versions"][1]
    assert rows["server software"] == ("info", "Synapse 1.163.2")
    assert rows["guest registration"][0] == "ok"
    assert rows["initialSync"][0] == rows["/events peeking"][0] == rows["/messages"][0] == "ok"
    assert rows["peek will use"] == ("ok", "/events long-polling (--stream auto)")


def test_dendrite_stub_is_caught_and_messages_named_as_the_fallback(
    rsps: responses.RequestsMock, doctor: Any
) -> None:
    sim(rsps, "dendrite", initial_sync_refused=False)
    result = doctor(HS, "--room", ROOM)
    assert result.exit_code == 0
    rows = table(result)
    assert rows["/events peeking"][0] == "FAIL" and "stub" in rows["/events peeking"][1]
    assert rows["peek will use"][0] == "ok" and "/messages polling" in rows["peek will use"][1]


def test_conduit_initial_sync_refused_skips_events_and_uses_messages(
    rsps: responses.RequestsMock, doctor: Any
) -> None:
    server = sim(rsps, "conduit")
    result = doctor(HS, "--room", ROOM)
    assert result.exit_code == 0
    rows = table(result)
    assert rows["initialSync"] == ("FAIL", "HTTP 403 M_FORBIDDEN")
    assert rows["/events peeking"][0] == "skip" and server.calls("/events") == []
    assert "/messages polling" in rows["peek will use"][1]


def test_nothing_works_exits_8(rsps: responses.RequestsMock, doctor: Any) -> None:
    server = sim(rsps, "conduwuit")
    server.messages_error = (404, {"errcode": "M_UNRECOGNIZED", "error": "no"})
    result = doctor(HS, "--room", ROOM)
    assert result.exit_code == 8
    rows = table(result)
    assert rows["/events peeking"] == ("FAIL", "not implemented (HTTP 404 M_UNRECOGNIZED)")
    assert rows["peek will use"][0] == "FAIL"


def test_guests_refused_and_no_login_exits_7(rsps: responses.RequestsMock, doctor: Any) -> None:
    server = sim(rsps, "synapse", guests_allowed=False)
    result = doctor(HS, "--room", ROOM)
    assert result.exit_code == 7
    rows = table(result)
    assert rows["guest registration"] == ("FAIL", "refused (M_GUEST_ACCESS_FORBIDDEN)")
    assert rows["/events peeking"][0] == "skip" and server.calls("/events") == []


def test_a_token_carries_on_where_guests_are_refused(
    rsps: responses.RequestsMock, doctor: Any
) -> None:
    server = sim(rsps, "synapse", guests_allowed=False)
    result = doctor(HS, "--room", ROOM, "--token", "user-token")
    assert result.exit_code == 0
    assert table(result)["identity"][0] == "info"
    assert server.calls("/events")[0].request.headers["Authorization"] == "Bearer user-token"
    assert "user-token" not in result.stdout


def test_without_room_the_first_world_readable_public_room_is_used(
    rsps: responses.RequestsMock, doctor: Any
) -> None:
    other = "!closed:hs.test"
    server = sim(rsps, "synapse")
    server.public = [
        {"room_id": other, "num_joined_members": 3, "world_readable": False},
        {"room_id": "!space:hs.test", "world_readable": True, "room_type": "m.space"},
        {"room_id": ROOM, "canonical_alias": "#lobby:hs.test", "world_readable": True},
    ]
    result = doctor(HS)
    assert result.exit_code == 0, result.stdout
    assert "#lobby:hs.test" in table(result)["test room"][1]
    tested = [unquote(c.request.url) for c in server.calls("initialSync")]
    assert tested and all(ROOM in url for url in tested)


def test_no_world_readable_room_to_test_exits_1_and_suggests_room(
    rsps: responses.RequestsMock, doctor: Any
) -> None:
    sim(rsps, "synapse")
    result = doctor(HS)
    assert result.exit_code == 1
    rows = table(result)
    assert rows["test room"][0] == "FAIL" and "--room" in rows["test room"][1]
    assert rows["peek will use"][0] == "FAIL"


def test_an_unreachable_server_exits_1(rsps: responses.RequestsMock, doctor: Any) -> None:
    rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/versions",
        body=requests.exceptions.ConnectionError("Connection refused"),
    )
    result = doctor(HS)
    assert result.exit_code == 1
    rows = table(result)
    assert rows["/versions"][0] == "FAIL" and "connection refused" in rows["/versions"][1]
    assert rows["guest registration"][0] == "skip"


def test_a_server_name_is_discovered(rsps: responses.RequestsMock, doctor: Any) -> None:
    rsps.add(
        responses.GET,
        "https://example.test/.well-known/matrix/client",
        json={"m.homeserver": {"base_url": HS}},
    )
    sim(rsps, "synapse")
    result = doctor("example.test", "--room", ROOM)
    assert result.exit_code == 0, result.stdout
    assert table(result)["discovery"] == ("ok", f"example.test → {HS}")


def test_json_report(rsps: responses.RequestsMock, doctor: Any) -> None:
    sim(rsps, "tuwunel")
    result = doctor(HS, "--room", ROOM, "--json")
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["stream"] == "events" and doc["room"] == ROOM
    assert {c["name"] for c in doc["checks"]} >= {"/versions", "/events peeking", "/messages"}
    assert all(c["status"] in ("pass", "fail", "info", "skip") for c in doc["checks"])


def test_no_homeserver_is_a_usage_error(doctor: Any) -> None:
    result = doctor()
    assert result.exit_code == 2 and "HOMESERVER" in result.stderr


def test_a_test_room_that_does_not_exist_exits_4_as_documented(
    rsps: responses.RequestsMock, doctor: Any
) -> None:
    """The docs said 1 while doctor exited 4: now the README and `--help` both say 4."""
    from pathlib import Path

    sim(rsps, "synapse")
    rsps.add(
        responses.GET,
        re.compile(re.escape(HS) + r"/_matrix/client/v3/directory/room/.*"),
        json={"errcode": "M_NOT_FOUND", "error": "Room alias not found"},
        status=404,
    )
    result = doctor(HS, "--room", "#nope:hs.test")
    assert result.exit_code == 4
    assert table(result)["test room"][0] == "FAIL"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    doctor_section = readme.split("### `peek doctor [SERVER]`", 1)[1].split("\n#", 1)[0]
    assert "4 when the `--room` given is not found" in " ".join(doctor_section.split())
