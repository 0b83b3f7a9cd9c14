"""Commands peek suggests are safe to paste: shell-quoted, and never built from a bad room id.

A room admin controls a tombstone's `replacement_room` (Synapse accepts any string), and whoever
runs a domain controls its `.well-known` `base_url`; both end up in a line that says "run this".
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from tests.unit.conftest import lines
from tests.unit.timelinehs import HS, NEW, OLD, TimelineHS

EVIL_ROOM = "!x'$(touch${IFS}PWNED)'"


@pytest.fixture
def tl() -> Iterator[TimelineHS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TimelineHS(rsps).install()


def pasted(line: str, cwd: Path) -> list[str]:
    """What a shell runs when `line` is pasted: `peek` is a function printing its arguments."""
    cwd = cwd / "paste"
    cwd.mkdir(exist_ok=True)
    script = 'peek() { for a in "$@"; do printf "%s\\0" "$a"; done; }\n' + line
    done = subprocess.run(["sh", "-c", script], cwd=cwd, capture_output=True, timeout=10)
    assert not any(cwd.iterdir()), "pasting the suggestion ran a command"
    return done.stdout.decode().split("\0")[:-1]


def suggested(output: str, cwd: Path) -> list[list[str]]:
    """Every `peek …` command in the output, as a shell would run it when pasted."""
    found = re.findall(r"`(peek [^`]*)`|: (peek watch .*)$", output, flags=re.M)
    return [pasted(a or b, cwd) for a, b in found]


def test_a_tombstone_naming_shell_code_is_no_upgrade_and_suggests_nothing(
    tl: TimelineHS, peek: Any
) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    tl.send(OLD, body="before")
    tl.tombstone(OLD, EVIL_ROOM)
    result = peek("snapshot", OLD, "-s", HS, "--no-follow", "--color")
    assert result.exit_code == 0, result.stderr
    assert "peek watch" not in result.stderr + result.stdout
    assert "PWNED" not in result.stderr  # not announced as a replacement either
    assert tl.calls("PWNED") == []  # and not followed
    json_run = peek("snapshot", OLD, "-s", HS, "--json", "--reset", "--history", "5")
    assert [e["type"] for e in lines(json_run)][-1] == "m.room.tombstone"  # still delivered


def test_a_valid_replacement_is_suggested_quoted(tl: TimelineHS, peek: Any, tmp_path: Path) -> None:
    peek("snapshot", OLD, "-s", HS, "--json", "--history", "0")
    tl.tombstone(OLD, NEW)
    result = peek("snapshot", OLD, "-s", HS, "--no-follow", "--no-color")
    assert result.exit_code == 0, result.stderr
    assert suggested(result.stderr, tmp_path) == [["watch", NEW]]
    rendered = re.findall(r"watch it with: (.*)$", result.stdout, flags=re.M)
    assert [pasted(line, tmp_path) for line in rendered] == [["watch", NEW]]


def test_a_well_known_base_url_with_shell_code_is_quoted_in_the_login_hint(
    peek: Any, tmp_path: Path
) -> None:
    evil = "https://evil.test/$(touch${IFS}PWNED)"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(
            responses.GET,
            "https://evil.test/.well-known/matrix/client",
            json={"m.homeserver": {"base_url": evil}},
        )
        rsps.add(responses.GET, f"{evil}/_matrix/client/versions", json={"versions": ["v1.11"]})
        rsps.add(
            responses.POST,
            f"{evil}/_matrix/client/v3/register",
            status=403,
            json={"errcode": "M_GUEST_ACCESS_FORBIDDEN", "error": "Guest access is disabled"},
        )
        result = peek("snapshot", "!room:evil.test", "--json")
    assert result.exit_code == 7, result.stderr
    assert suggested(result.stderr, tmp_path) == [["login", "evil.test/$(touch${IFS}PWNED)"]]


@pytest.mark.parametrize(
    "url",
    ["https://[::1", "https://alice:hunter2@hs.test", "https://hs.test:99999", "https://hs.test?x"],
)
def test_a_bad_homeserver_url_is_one_line_and_exit_2(peek: Any, url: str) -> None:
    result = peek("snapshot", "!room:hs.test", "-s", url)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("peek: not a homeserver URL") and result.stderr.count("\n") == 1
    assert "hunter2" not in result.stderr
