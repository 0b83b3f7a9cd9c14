"""`peek rooms`: the public room directory, paginated, searched, authenticated only if needed."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from rich.console import Console

from peekcli.commands.rooms import directory_table
from peekcli.matrix.directory import PublicRoom
from tests.unit.mockhs import HS, FakeHomeserver

PUBLIC_ROOMS = re.compile(re.escape(HS) + r"/_matrix/client/v3/publicRooms.*")


def entry(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "room_id": f"!r{n}:hs.test",
        "canonical_alias": f"#room{n}:hs.test",
        "name": f"Room {n}",
        "topic": f"topic {n}",
        "num_joined_members": n,
        "world_readable": n % 2 == 1,
        "guest_can_join": False,
        "join_rule": "public",
        **extra,
    }


@pytest.fixture(autouse=True)
def _no_peek_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEEK_CONFIG", raising=False)


class Directory:
    """Serves `pages` of entries linked by next_batch; optionally demands a token."""

    def __init__(self, hs: FakeHomeserver, pages: list[list[dict[str, Any]]], auth: bool) -> None:
        self.pages = pages
        self.auth = auth
        self.requests: list[tuple[str, dict[str, Any], str | None]] = []
        for method in (responses.GET, responses.POST):
            hs.rsps.add_callback(method, PUBLIC_ROOMS, callback=self.reply)

    def reply(self, request: Any) -> tuple[int, dict[str, str], str]:
        if request.method == "GET":
            args: dict[str, Any] = {
                k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()
            }
        else:
            args = json.loads(request.body)
        token = request.headers.get("Authorization")
        self.requests.append((request.method, args, token))
        if self.auth and token is None:
            return 401, {}, json.dumps({"errcode": "M_MISSING_TOKEN", "error": "Missing token"})
        index = int(args.get("since", "0"))
        page = self.pages[index][: int(args.get("limit", 1000))]
        body: dict[str, Any] = {"chunk": page, "total_room_count_estimate": 99}
        if index + 1 < len(self.pages):
            body["next_batch"] = str(index + 1)
        return 200, {}, json.dumps(body)


def test_json_lists_every_page_with_stable_fields(hs: FakeHomeserver, peek: Any) -> None:
    directory = Directory(hs, [[entry(1), entry(2)], [entry(3)], [entry(4)]], auth=False)
    result = peek("rooms", "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["room_id"] for r in rows] == [
        "!r1:hs.test",
        "!r2:hs.test",
        "!r3:hs.test",
        "!r4:hs.test",
    ]
    assert rows[0] == {
        "room_id": "!r1:hs.test",
        "alias": "#room1:hs.test",
        "name": "Room 1",
        "topic": "topic 1",
        "members": 1,
        "world_readable": True,
        "guest_can_join": False,
        "join_rule": "public",
        "room_type": None,
    }
    assert [args.get("since") for _, args, _ in directory.requests] == [None, "1", "2"]
    assert all(token is None for _, _, token in directory.requests)  # no identity spent


def test_limit_stops_paging_early(hs: FakeHomeserver, peek: Any) -> None:
    directory = Directory(hs, [[entry(1), entry(2)], [entry(3), entry(4)], [entry(5)]], auth=False)
    result = peek("rooms", "-s", HS, "--json", "--limit", "3")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert [args["limit"] for _, args, _ in directory.requests] == ["3", "1"]


def test_search_posts_a_filter(hs: FakeHomeserver, peek: Any) -> None:
    directory = Directory(hs, [[entry(1)], [entry(3)]], auth=False)
    result = peek("rooms", "-s", HS, "--json", "--search", "linux")
    assert result.exit_code == 0, result.stderr
    assert [m for m, _, _ in directory.requests] == ["POST", "POST"]
    first, second = (args for _, args, _ in directory.requests)
    assert first["filter"] == {"generic_search_term": "linux"} and "since" not in first
    assert second["since"] == "1" and second["filter"] == {"generic_search_term": "linux"}


def test_directory_needing_a_token_gets_the_guest(hs: FakeHomeserver, peek: Any) -> None:
    directory = Directory(hs, [[entry(1)], [entry(2)]], auth=True)
    result = peek("rooms", "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert [t for _, _, t in directory.requests] == [
        None,
        "Bearer guest-token-1",
        "Bearer guest-token-1",
    ]
    assert hs.guests == 1


def test_piped_output_is_tab_separated_and_sanitized(hs: FakeHomeserver, peek: Any) -> None:
    hostile = entry(1, name="Evil\x1b[2J\tname", topic="line1\nline2\u202e")
    Directory(hs, [[hostile, entry(2, canonical_alias=None, name=None, topic=None)]], auth=False)
    result = peek("rooms", "-s", HS)
    assert result.exit_code == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.split("\t") == [
        "#room1:hs.test",
        "1",
        "yes",
        "Evil\\x1b[2J    name",
        "line1⏎line2\\u202e",
    ]
    assert second.split("\t") == ["!r2:hs.test", "2", "no", "-", "-"]
    assert "\x1b" not in result.stdout


def test_table_on_a_terminal_shows_markup_as_text() -> None:
    rooms = [PublicRoom("!r1:hs.test", "#a:hs.test", "[bold]x[/bold]", "t", 3, True)]
    buf = io.StringIO()
    Console(file=buf, width=100, force_terminal=True, color_system=None).print(
        directory_table(rooms, "https://hs.test")
    )
    text = buf.getvalue()
    assert "[bold]x[/bold]" in text and "#a:hs.test" in text and "yes" in text
    assert "Public rooms on https://hs.test" in text


def test_server_argument_is_discovered(hs: FakeHomeserver, peek: Any, state_file: Path) -> None:
    hs.rsps.add(
        responses.GET,
        "https://name.test/.well-known/matrix/client",
        json={"m.homeserver": {"base_url": HS}},
    )
    hs.rsps.add(responses.GET, f"{HS}/_matrix/client/versions", json={"versions": ["v1.11"]})
    Directory(hs, [[entry(1)]], auth=False)
    result = peek("rooms", "name.test", "--json", "--state-file", str(state_file))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["room_id"] == "!r1:hs.test"


def test_without_a_server_it_asks_for_one(peek: Any) -> None:
    result = peek("rooms")
    assert result.exit_code == 2
    assert "give a SERVER" in result.stderr


def test_server_and_homeserver_together_are_a_usage_error(peek: Any) -> None:
    result = peek("rooms", "name.test", "-s", HS)
    assert result.exit_code == 2
    assert "not both" in result.stderr
