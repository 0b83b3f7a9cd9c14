"""Homeserver discovery: well-known, fallback, validation with /versions, the cache, the error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses

from peekcli import retry
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import FakeHomeserver, message

NAME = "example.test"
WELL_KNOWN = f"https://{NAME}/.well-known/matrix/client"
CLIENT = "https://matrix.example.test"
ALIAS = f"#lobby:{NAME}"
ROOM = f"!room:{NAME}"


def serve(rsps: responses.RequestsMock, base: str) -> FakeHomeserver:
    """A homeserver at `base` that answers /versions and resolves ALIAS to ROOM."""
    fake = FakeHomeserver(rsps, base=base, room=ROOM).install()
    rsps.add(responses.GET, f"{base}/_matrix/client/versions", json={"versions": ["v1.11"]})
    rsps.add(
        responses.GET,
        f"{base}/_matrix/client/v3/directory/room/%23lobby%3A{NAME}",
        json={"room_id": ROOM, "servers": [NAME]},
    )
    fake.chain([message(1, room=ROOM)])
    return fake


@pytest.fixture
def rsps() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def snapshot(peek: Any, *args: str) -> Any:
    return peek("snapshot", *args, "--json", "--history", "0")


def test_well_known_points_to_the_client_api(rsps: Any, peek: Any, state_file: Path) -> None:
    rsps.add(responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": CLIENT + "/"}})
    fake = serve(rsps, CLIENT)
    result = snapshot(peek, ALIAS)
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    doc = saved(state_file)
    assert ROOM in doc["positions"][CLIENT]
    assert doc["discovery"][NAME]["base_url"] == CLIENT
    assert fake.calls("/versions")  # the well-known's answer was checked before use


def test_no_well_known_falls_back_to_the_server_name(
    rsps: Any, peek: Any, state_file: Path
) -> None:
    rsps.add(responses.GET, WELL_KNOWN, status=404, body="<html>not found</html>")
    serve(rsps, f"https://{NAME}")
    result = snapshot(peek, ROOM)
    assert result.exit_code == 0, result.stderr
    assert ROOM in saved(state_file)["positions"][f"https://{NAME}"]


@pytest.mark.parametrize(
    "reply",
    [
        {"body": "this is not json"},
        {"json": {"m.homeserver": "https://matrix.example.test"}},
        {"json": {"m.homeserver": {"base_url": "ftp://matrix.example.test"}}},
        {"json": ["a", "list"]},
        {"json": {"m.identity_server": {"base_url": "https://id.example.test"}}},
        {"json": {"m.homeserver": {"base_url": "https://[matrix.example.test"}}},
        {"json": {"m.homeserver": {"base_url": "https://matrix.example.test:99999"}}},
        {"json": {"m.homeserver": {"base_url": "https://u:pw@matrix.example.test"}}},
        {"body": b'{"m.homeserver": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
    ],
)
def test_malformed_well_known_falls_back(
    rsps: Any, peek: Any, state_file: Path, reply: dict[str, Any]
) -> None:
    rsps.add(responses.GET, WELL_KNOWN, **reply)
    serve(rsps, f"https://{NAME}")
    result = snapshot(peek, ALIAS)
    assert result.exit_code == 0, result.stderr
    assert saved(state_file)["discovery"][NAME]["base_url"] == f"https://{NAME}"


def test_well_known_pointing_to_a_dead_url_falls_back(
    rsps: Any, peek: Any, state_file: Path
) -> None:
    # Nothing is registered for https://dead.example.test: responses refuses the connection.
    rsps.add(
        responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": "https://dead.example.test"}}
    )
    serve(rsps, f"https://{NAME}")
    result = snapshot(peek, ALIAS)
    assert result.exit_code == 0, result.stderr
    assert saved(state_file)["discovery"][NAME]["base_url"] == f"https://{NAME}"


def test_well_known_pointing_to_something_that_is_not_a_homeserver_falls_back(
    rsps: Any, peek: Any, state_file: Path
) -> None:
    rsps.add(responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": "https://www.test"}})
    rsps.add(responses.GET, "https://www.test/_matrix/client/versions", body="<html>hi</html>")
    serve(rsps, f"https://{NAME}")
    result = snapshot(peek, ALIAS)
    assert result.exit_code == 0, result.stderr
    assert saved(state_file)["discovery"][NAME]["base_url"] == f"https://{NAME}"


def test_nothing_answers_exits_1_with_one_clear_line(
    rsps: Any, peek: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry, "pause", waits.append)
    rsps.add(
        responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": "https://dead.example.test"}}
    )
    result = snapshot(peek, ALIAS)
    assert result.exit_code == 1
    assert result.stdout == ""
    # First contact is retried like any request (snapshot: 3 quick retries), then one line.
    assert len(waits) == 3
    *status, err = result.stderr.splitlines(keepends=True)
    assert all("retrying in" in line for line in status)
    assert err.startswith("peek: found no homeserver for example.test")
    assert "https://dead.example.test" in err and "--homeserver" in err
    assert "Traceback" not in err


def test_cache_is_used_on_the_second_run(rsps: Any, peek: Any, state_file: Path) -> None:
    rsps.add(responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": CLIENT}})
    fake = serve(rsps, CLIENT)
    assert snapshot(peek, ALIAS).exit_code == 0
    versions = len(fake.calls("/versions"))
    second = snapshot(peek, ALIAS)
    assert second.exit_code == 0, second.stderr
    assert len([c for c in rsps.calls if c.request.url == WELL_KNOWN]) == 1
    assert len(fake.calls("/versions")) == versions


def test_stale_cache_is_looked_up_again_and_kept_when_nothing_answers(
    rsps: Any, peek: Any, state_file: Path
) -> None:
    state_file.parent.mkdir(parents=True)
    old = {"base_url": CLIENT, "checked": "2000-01-01T00:00:00+00:00"}
    state_file.write_text(json.dumps({"version": 1, "discovery": {NAME: old}}))
    fake = serve(rsps, CLIENT)
    fake.rsps.remove(responses.GET, f"{CLIENT}/_matrix/client/versions")
    # Well-known and fallback both unreachable: yesterday's answer is better than none.
    result = snapshot(peek, ALIAS)
    assert result.exit_code == 0, result.stderr
    assert any(c.request.url == WELL_KNOWN for c in rsps.calls)
    # Once discovery works again, the fresh answer replaces the stale one.
    rsps.add(responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": CLIENT}})
    rsps.add(responses.GET, f"{CLIENT}/_matrix/client/versions", json={"versions": ["v1.11"]})
    assert snapshot(peek, ALIAS).exit_code == 0
    assert not saved(state_file)["discovery"][NAME]["checked"].startswith("2000")


def test_homeserver_option_skips_discovery(hs: FakeHomeserver, peek: Any) -> None:
    hs.chain([message(1)])
    result = snapshot(peek, "!room:elsewhere.test", "-s", hs.base)
    assert result.exit_code == 0, result.stderr
    assert not any("well-known" in c.request.url for c in hs.rsps.calls)


def test_via_of_a_link_is_discovered(rsps: Any, peek: Any, state_file: Path) -> None:
    rsps.add(responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": CLIENT}})
    serve(rsps, CLIENT)
    result = snapshot(peek, f"https://matrix.to/#/!room:gone.test?via={NAME}")
    assert result.exit_code == 0, result.stderr
    hosts = {urlsplit(c.request.url).hostname for c in rsps.calls}
    assert hosts == {NAME, "matrix.example.test"}


def test_port_is_dropped_for_the_well_known_but_kept_for_the_fallback(
    rsps: Any, peek: Any, state_file: Path
) -> None:
    room = f"!p:{NAME}:8448"
    base = f"https://{NAME}:8448"
    rsps.add(responses.GET, WELL_KNOWN, status=404)
    rsps.add(responses.GET, f"{base}/_matrix/client/versions", json={"versions": ["v1.11"]})
    FakeHomeserver(rsps, base=base, room=room).install().chain([message(1, room=room)])
    result = snapshot(peek, room)
    assert result.exit_code == 0, result.stderr
    assert rsps.calls[0].request.url == WELL_KNOWN
    assert room in saved(state_file)["positions"][base]
