"""The Synapse fixture itself behaves like the homeserver peek will talk to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.homeserver import Homeserver, MatrixRequestError, User


def _get(hs: Homeserver, user: User, path: str, **params: Any) -> requests.Response:
    return requests.get(
        hs.base_url + path,
        headers={"Authorization": f"Bearer {user.access_token}"},
        params=params,
        timeout=30,
    )


def _initial_sync(hs: Homeserver, user: User, room_id: str) -> requests.Response:
    return _get(
        hs, user, f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/initialSync", limit=5
    )


def _events(hs: Homeserver, user: User, room_id: str, since: str) -> requests.Response:
    return _get(
        hs, user, "/_matrix/client/v3/events", room_id=room_id, timeout=0, **{"from": since}
    )


@pytest.fixture(scope="module")
def guest(synapse: Homeserver) -> User:
    return synapse.register_guest()


def test_guest_can_peek_world_readable_room(
    synapse: Homeserver, guest: User, world_room: str
) -> None:
    resp = _initial_sync(synapse, guest, world_room)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["room_id"] == world_room
    end = body["messages"]["end"]
    state = {ev["type"]: ev["content"] for ev in body["state"]}
    assert state["m.room.name"] == {"name": "World"}
    assert state["m.room.history_visibility"]["history_visibility"] == "world_readable"

    resp = _events(synapse, guest, world_room, end)
    assert resp.status_code == 200, resp.text
    assert resp.json()["chunk"] == []
    assert resp.json()["end"] == end


def test_events_delivers_new_message(
    synapse: Homeserver, guest: User, alice: User, fresh_room: Callable[..., str]
) -> None:
    room_id = fresh_room(name="fresh")
    end = _initial_sync(synapse, guest, room_id).json()["messages"]["end"]
    event_id = synapse.send_text(alice, room_id, "hello, peekers")

    resp = _events(synapse, guest, room_id, end)
    assert resp.status_code == 200, resp.text
    messages = [ev for ev in resp.json()["chunk"] if ev["type"] == "m.room.message"]
    assert [(ev["event_id"], ev["content"]["body"]) for ev in messages] == [
        (event_id, "hello, peekers")
    ]
    assert resp.json()["end"] != end


def test_private_room_is_forbidden_to_guest(
    synapse: Homeserver, guest: User, private_room: str, world_room: str
) -> None:
    resp = _initial_sync(synapse, guest, private_room)
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    since = _initial_sync(synapse, guest, world_room).json()["messages"]["end"]
    resp = _events(synapse, guest, private_room, since)
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "M_FORBIDDEN"


def test_helpers_raise_with_body(synapse: Homeserver, alice: User) -> None:
    with pytest.raises(MatrixRequestError) as err:
        synapse.register_user("alice")
    assert err.value.status == 400
    assert err.value.errcode == "M_USER_IN_USE"


def test_restart_keeps_data(synapse: Homeserver, alice: User, guest: User) -> None:
    room_id = synapse.create_room(alice, name="Survivor", alias_localpart="survivor")
    event_id = synapse.send_text(alice, room_id, "still here?")
    port = synapse.port

    synapse.restart()

    assert synapse.port == port
    assert synapse.resolve_alias(f"#survivor:{synapse.server_name}") == room_id
    resp = _initial_sync(synapse, guest, room_id)  # old tokens still work after a restart
    assert resp.status_code == 200, resp.text
    assert event_id in [ev["event_id"] for ev in resp.json()["messages"]["chunk"]]
    synapse.send_text(alice, room_id, "yes")
