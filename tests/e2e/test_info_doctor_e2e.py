"""`peek info` and `peek doctor` against the real Synapse."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from tests.e2e.peekproc import run_peek
from tests.homeserver import Homeserver, User


def fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        label, _, value = line.partition("  ")
        out[label.strip()] = value.strip()
    return out


def rows(text: str) -> dict[str, tuple[str, str]]:
    return {line[6:25].strip(): (line[:5].strip(), line[26:]) for line in text.splitlines()}


def test_info_on_a_world_readable_room(
    synapse: Homeserver, world_room: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    result = run_peek("info", world_room, "-s", synapse.base_url, state_file=state)
    assert result.returncode == 0, result.stderr
    shown = fields(result.stdout)
    assert (shown["name"], shown["topic"], shown["members"]) == ("World", "w", "1")
    assert shown["history"] == "world_readable" and shown["join rule"] == "public"
    assert shown["guests"] == "can join" and shown["encryption"] == "none"
    assert shown["verdict"].startswith("watchable as guest")
    doc = json.loads(
        run_peek("info", world_room, "-s", synapse.base_url, "--json", state_file=state).stdout
    )
    assert doc["room_id"] == world_room and doc["room_version"]
    assert doc["source"] == "room_summary" and doc["verdict"]["as"] == "guest"


def test_info_on_a_private_room(
    synapse: Homeserver, alice: User, private_room: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    guest = run_peek("info", private_room, "-s", synapse.base_url, state_file=state)
    assert guest.returncode == 3
    assert fields(guest.stdout)["verdict"].startswith("not watchable")
    member = run_peek(
        "info",
        private_room,
        "-s",
        synapse.base_url,
        state_file=state,
        PEEK_ACCESS_TOKEN=alice.access_token,
    )
    assert member.returncode == 0, member.stderr
    assert fields(member.stdout)["verdict"].startswith("watchable with your account")
    assert alice.access_token not in member.stdout + member.stderr


def test_doctor_on_synapse_passes_with_events(
    synapse: Homeserver, world_room: str, tmp_path: Path
) -> None:
    result = run_peek(
        "doctor", synapse.base_url, "--room", world_room, state_file=tmp_path / "state.json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert table["server software"][1].startswith("Synapse ")
    for check in ("/versions", "guest registration", "initialSync", "/events peeking", "/messages"):
        assert table[check][0] == "ok", (check, table[check])
    assert table["peek will use"] == ("ok", "/events long-polling (--stream auto)")


def test_doctor_without_guests_and_with_the_public_directory(tmp_path: Path) -> None:
    with Homeserver(tmp_path / "hs", guest_access=False) as hs:
        bob = hs.register_user("bob")
        room = hs.create_room(bob, world_readable=True, name="Open")
        hs.request(
            "PUT",
            f"/_matrix/client/v3/directory/list/room/{quote(room, safe='')}",
            user=bob,
            json_body={"visibility": "public"},
        )
        state = tmp_path / "state.json"
        refused = run_peek("doctor", hs.base_url, state_file=state)
        assert refused.returncode == 7
        assert rows(refused.stdout)["guest registration"][0] == "FAIL"
        assert rows(refused.stdout)["/events peeking"][0] == "skip"

        ok = run_peek("doctor", hs.base_url, state_file=state, PEEK_ACCESS_TOKEN=bob.access_token)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        table = rows(ok.stdout)
        assert room in table["test room"][1] and table["/events peeking"][0] == "ok"
        assert bob.access_token not in ok.stdout + ok.stderr
