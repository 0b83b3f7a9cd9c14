"""`--json` and JSON-lines exports are strict JSON, whatever the server sends.

Python's json reads `NaN`, `Infinity` and `-Infinity` in a reply and would write them back;
they are not JSON (jq turns them into null, stricter parsers reject the whole line).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.hostilehs import HostileServer, message


def strict(line: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(line, parse_constant=refuse)


@pytest.fixture
def hs(hostile: HostileServer) -> HostileServer:
    odd = message(1)
    odd["content"].update(
        {"nan": float("nan"), "deep": [{"inf": float("inf")}], "neg": float("-inf"), "ok": 1.5}
    )
    hostile.history = [odd, message(2)]
    return hostile


@pytest.mark.parametrize("command", [["snapshot", "--json"], ["export"]])
def test_non_finite_numbers_from_the_server_are_written_as_null(
    hs: HostileServer, peek: Any, command: list[str]
) -> None:
    result = peek(command[0], hs.room, "-s", hs.url, *command[1:])
    assert result.exit_code == 0, result.stderr
    events = [strict(line) for line in result.stdout.splitlines()]
    assert [e["event_id"] for e in events] == ["$ev1", "$ev2"]
    content = events[0]["content"]
    assert content["nan"] is None and content["deep"] == [{"inf": None}]
    assert content["neg"] is None and content["ok"] == 1.5
    assert content["body"] == "message 1"
