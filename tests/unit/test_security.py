"""Security review regressions: what a hostile or misconfigured server must not be able to do."""

from __future__ import annotations

import ast
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import responses

from peekcli import retry as stream
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

NAME = "example.test"
WELL_KNOWN = f"https://{NAME}/.well-known/matrix/client"
PLAIN = "http://matrix.example.test"


@pytest.fixture
def rsps() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_doctor_table_shows_a_discovered_url_literally_never_as_rich_markup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The homeserver URL can come from a server's .well-known (its path is kept): a str title
    # would be parsed as markup, and `[link=…]` writes an OSC 8 escape to the terminal.
    from peekcli.commands.info import _doctor_table
    from peekcli.probe.doctor import DoctorReport

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    url = "https://hs.test/[link=https://evil.test]click[/link]"
    report = DoctorReport(url)
    report.add("/versions", "pass", "[bold]v1.11[/bold]")
    _doctor_table(report)
    out = capsys.readouterr().out
    assert "\x1b]8;" not in out  # no hyperlink escape
    flat = "".join(line.strip() for line in out.splitlines())  # the title wraps to the table
    assert "[link=https://evil.test]click[/link]" in flat
    assert "[bold]v1.11[/bold]" in out


def test_well_known_pointing_to_plain_http_is_refused_and_gets_no_token(
    rsps: responses.RequestsMock, peek: Any, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fallback host does not answer here, which snapshot retries: without its waits.
    monkeypatch.setattr(stream, "pause", lambda _s: None)
    rsps.add(responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": PLAIN}})
    plain = rsps.add(responses.GET, f"{PLAIN}/_matrix/client/versions", json={"versions": ["v1"]})
    result = peek("snapshot", f"#lobby:{NAME}", "--token", "secret-token")
    assert result.exit_code == 1
    assert "plain http" in result.stderr and "--homeserver" in result.stderr
    assert plain.call_count == 0
    assert not any(call.request.url.startswith("http://") for call in rsps.calls)
    assert all("secret-token" not in str(call.request.headers) for call in rsps.calls)
    assert "secret-token" not in result.stderr


def test_well_known_plain_http_on_loopback_is_still_accepted(
    rsps: responses.RequestsMock,
) -> None:
    from peekcli.matrix.discovery import discover

    local = "http://127.0.0.1:8008"
    rsps.add(responses.GET, WELL_KNOWN, json={"m.homeserver": {"base_url": local}})
    rsps.add(responses.GET, f"{local}/_matrix/client/versions", json={"versions": ["v1"]})
    assert discover(NAME) == local


def test_exec_environment_survives_lone_surrogates_nul_and_huge_values(
    hs: FakeHomeserver, peek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A JSON "\ud800" escape decodes to a lone surrogate, which os.fsencode refuses: without
    # care, building CMD's environment crashed peek with a traceback.
    monkeypatch.setattr(stream, "pause", lambda _s: None)
    odd = message(1)
    odd["sender"] = "@a\ud800:hs.test"
    odd["type"] = "m.\x00x" + "y" * 300_000
    hs.chain([odd, message(2)])
    record = (
        "import os, sys; open(sys.argv[1], 'a').write("
        "repr((os.environ['PEEK_SENDER'], len(os.environ['PEEK_EVENT_TYPE']))) + '\\n')"
    )
    cmd = shlex.join([sys.executable, "-c", record, str(tmp_path / "env")])
    result = peek("snapshot", ROOM, "-s", HS, "--history", "0", "--exec", cmd)
    assert result.exit_code == 0, result.stderr
    first, second = (tmp_path / "env").read_text().splitlines()
    sender, type_len = ast.literal_eval(first)
    assert sender == "@a?:hs.test" and 0 < type_len <= 4096
    assert ast.literal_eval(second) == ("@alice:hs.test", len("m.room.message"))


@pytest.mark.parametrize("ts", [10**20, -(10**20), 2**63, 10**400])
def test_export_progress_line_survives_an_absurd_server_timestamp(
    monkeypatch: pytest.MonkeyPatch, ts: int
) -> None:
    # origin_server_ts is any int the server likes; the progress line (stderr on a terminal)
    # turned it into a date and crashed the export with OSError/ValueError/OverflowError.
    from peekcli.commands import export as export_cmd
    from peekcli.export.plan import Progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    update, done = export_cmd._progress_display()
    try:
        update(Progress(3, ts, ROOM, "fetching"))
        update(Progress(3, 1_700_000_000_000, ROOM, "fetching"))
    finally:
        done()
