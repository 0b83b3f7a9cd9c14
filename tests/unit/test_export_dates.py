"""`peek export --since/--until`: jump to the date with timestamp_to_event, walk as the fallback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import responses
from click.testing import CliRunner, Result

from peekcli.cli import cli
from tests.unit.timelinehs import HS, OLD, TimelineHS

HOUR = 3_600_000
START = 1_700_000_000_000


class Jumps:
    """timestamp_to_event and /context on top of TimelineHS (tokens `t<i>`: before event i)."""

    def __init__(self, tl: TimelineHS) -> None:
        self.tl = tl
        self.supported = True
        tl.rsps.add_callback(
            responses.GET,
            re.compile(re.escape(HS) + r"/_matrix/client/v1/rooms/([^/]+)/timestamp_to_event.*"),
            callback=self._ts_to_event,
        )
        tl.rsps.add_callback(
            responses.GET,
            re.compile(re.escape(HS) + r"/_matrix/client/v3/rooms/([^/]+)/context/([^/?]+).*"),
            callback=self._context,
        )

    def _ts_to_event(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self.supported:
            return 404, {}, json.dumps({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"})
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        ts, direction = int(params["ts"]), params["dir"]
        room = unquote(request.url.split("/rooms/", 1)[1].split("/", 1)[0])
        events = self.tl.room(room)
        if direction == "b":
            before = [e for e in events if e["origin_server_ts"] <= ts]
            if not before:
                return 404, {}, json.dumps({"errcode": "M_NOT_FOUND", "error": "none"})
            found = before[-1]
        else:
            raise AssertionError("peek only jumps backwards")
        return (
            200,
            {},
            json.dumps(
                {"event_id": found["event_id"], "origin_server_ts": found["origin_server_ts"]}
            ),
        )

    def _context(self, request: Any) -> tuple[int, dict[str, str], str]:
        room = unquote(request.url.split("/rooms/", 1)[1].split("/", 1)[0])
        event_id = unquote(request.url.split("/context/", 1)[1].split("?", 1)[0])
        events = self.tl.room(room)
        index = next(i for i, e in enumerate(events) if e["event_id"] == event_id)
        body = {"event": events[index], "start": f"t{index}", "end": f"t{index + 1}"}
        return 200, {}, json.dumps(body)


@pytest.fixture
def tl() -> Iterator[TimelineHS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TimelineHS(rsps).install()


@pytest.fixture
def export(state_file: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "UTC")

    def run(*args: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["export", OLD, *args, "-s", HS, "--state-file", str(state_file)],
            catch_exceptions=False,
        )

    return run


def long_room(tl: TimelineHS, days: int = 5, per_day: int = 1200) -> list[dict[str, Any]]:
    step = 24 * HOUR // per_day
    return [
        tl.send(OLD, body=f"d{d} m{i}", ts=START + d * 24 * HOUR + i * step)
        for d in range(days)
        for i in range(per_day)
    ]


def day(n: int) -> str:
    return datetime.fromtimestamp((START + n * 24 * HOUR) / 1000, UTC).date().isoformat()


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def expected(sent: list[dict[str, Any]], since: str, until: str) -> list[dict[str, Any]]:
    low = int(datetime.fromisoformat(since).replace(tzinfo=UTC).timestamp() * 1000)
    high = int(datetime.fromisoformat(until).replace(tzinfo=UTC).timestamp() * 1000) + 24 * HOUR
    return [e for e in sent if low <= e["origin_server_ts"] < high]


def test_one_day_of_a_long_room_costs_a_few_requests(tl: TimelineHS, export: Any) -> None:
    sent = long_room(tl)
    Jumps(tl)
    result = export("--since", day(1), "--until", day(1))
    assert result.exit_code == 0, result.stderr
    assert lines(result) == expected(sent, day(1), day(1))
    asked = [unquote(c.request.url) for c in tl.rsps.calls]
    # guest registration, timestamp_to_event, /context, then /messages from that point only
    assert len(asked) <= 6, asked
    assert "timestamp_to_event" in asked[1] and "/context/" in asked[2]
    pages = [u for u in asked if "/messages" in u]
    assert "from=" in pages[0] and 1 <= len(pages) <= 3


def test_without_timestamp_to_event_the_walk_from_the_end_gives_the_same_events(
    tl: TimelineHS, export: Any
) -> None:
    sent = long_room(tl)
    jumps = Jumps(tl)
    jumps.supported = False
    result = export("--since", day(1), "--until", day(1))
    assert result.exit_code == 0, result.stderr
    assert lines(result) == expected(sent, day(1), day(1))
    pages = [c for c in tl.rsps.calls if "/messages" in c.request.url]
    assert "from=" not in pages[0].request.url and len(pages) >= 4  # from today, back


def test_until_before_the_room_began_exports_nothing(tl: TimelineHS, export: Any) -> None:
    long_room(tl, days=1, per_day=10)
    Jumps(tl)
    result = export("--until", "2000-01-01")
    assert result.exit_code == 0 and result.stdout == ""
    assert not [c for c in tl.rsps.calls if "/messages" in c.request.url]
