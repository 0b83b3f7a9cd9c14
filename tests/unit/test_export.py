"""`peek export`: /messages?dir=b pages → chronological JSON lines, text or HTML; resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result

from peekcli.cli import cli
from peekcli.errors import UsageError
from peekcli.export.plan import parse_when
from peekcli.render.jsonl import encode_event
from tests.unit.timelinehs import HS, NEW, OLD, TimelineHS


@pytest.fixture
def tl() -> Iterator[TimelineHS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TimelineHS(rsps).install()


@pytest.fixture
def export(state_file: Path) -> Any:
    def run(*args: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["export", *args, "-s", HS, "--state-file", str(state_file)],
            catch_exceptions=False,
        )

    return run


def room_of(tl: TimelineHS, room: str, n: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [tl.send(room, body=f"{room} {i}") for i in range(start, start + n)]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_history_comes_oldest_first_in_pages_of_1000(tl: TimelineHS, export: Any) -> None:
    sent = room_of(tl, OLD, 2500)
    result = export(OLD)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.encode() == b"".join(encode_event(e) for e in sent)
    pages = tl.calls("/messages")
    assert len(pages) == 3
    assert all("dir=b" in p and "limit=1000" in p for p in pages)
    assert "from=" not in pages[0] and "from=t1500" in pages[1] and "from=t500" in pages[2]
    # Nothing but the guest registration and the pages: easy to count for a benchmark.
    assert len(tl.rsps.calls) == 1 + 3


def test_a_server_sending_short_pages_is_paged_to_the_end(tl: TimelineHS, export: Any) -> None:
    sent = room_of(tl, OLD, 250)
    tl.page_cap = 70  # ignores limit=1000: never take a short page for the end
    result = export(OLD)
    assert jsonl(result.stdout) == sent
    assert len(tl.calls("/messages")) == 4


def test_an_empty_page_or_a_missing_end_ends_the_walk(tl: TimelineHS, export: Any) -> None:
    room_of(tl, OLD, 5)
    tl.scripted = [(200, {"chunk": [tl.stream[4]], "end": "t4"}), (200, {"chunk": [], "end": "t3"})]
    result = export(OLD)
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout) == [tl.stream[4]]
    assert len(tl.calls("/messages")) == 2
    tl.scripted = [(200, {"chunk": [tl.stream[4], tl.stream[3]]})]
    assert jsonl(export(OLD).stdout) == [tl.stream[3], tl.stream[4]]


def test_since_until_and_limit(tl: TimelineHS, export: Any) -> None:
    sent = room_of(tl, OLD, 20)
    at = lambda i: datetime.fromtimestamp(sent[i]["origin_server_ts"] / 1000, UTC).isoformat()  # noqa: E731
    result = export(OLD, "--since", at(5), "--until", at(14))
    assert jsonl(result.stdout) == sent[5:15]
    assert jsonl(export(OLD, "--limit", "3").stdout) == sent[-3:]
    assert jsonl(export(OLD, "--since", at(5), "--limit", "100").stdout) == sent[5:]
    later = export(OLD, "--since", at(9), "--until", at(2))
    assert later.exit_code == 2 and "later than --until" in later.stderr


def test_since_stops_paging_early(tl: TimelineHS, export: Any) -> None:
    sent = room_of(tl, OLD, 3000)
    since = datetime.fromtimestamp(sent[2500]["origin_server_ts"] / 1000, UTC).isoformat()
    result = export(OLD, "--since", since)
    assert jsonl(result.stdout) == sent[2500:]
    assert len(tl.calls("/messages")) == 1


def test_parse_when() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    ms = lambda d: int(d.timestamp() * 1000)  # noqa: E731
    assert parse_when("7d", now=now) == ms(now - timedelta(days=7))
    assert parse_when("12h", now=now) == ms(now - timedelta(hours=12))
    assert parse_when("30m", now=now) == ms(now - timedelta(minutes=30))
    assert parse_when("2w", now=now) == ms(now - timedelta(weeks=2))
    assert parse_when("2024-05-01T14:30:00Z") == ms(datetime(2024, 5, 1, 14, 30, tzinfo=UTC))
    assert parse_when("2024-05-01T14:30+02:00") == ms(datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
    local = datetime(2024, 5, 1).astimezone()
    assert parse_when("2024-05-01") == ms(local)
    assert parse_when("2024-05-01", end_of_day=True) == ms(local + timedelta(days=1)) - 1
    for bad in ("yesterday", "7 parsecs", "2024-13-01", ""):
        with pytest.raises(UsageError):
            parse_when(bad)


def test_bad_dates_are_usage_errors(tl: TimelineHS, export: Any) -> None:
    result = export(OLD, "--since", "last tuesday")
    assert result.exit_code == 2 and "cannot read 'last tuesday' as a date" in result.stderr


def test_follow_predecessors_oldest_room_first(tl: TimelineHS, export: Any) -> None:
    tl.create(OLD)
    room_of(tl, OLD, 3)
    tl.tombstone(OLD, NEW)
    tl.create(NEW, predecessor=OLD)
    room_of(tl, NEW, 2)
    alone = export(NEW)
    assert [e["room_id"] for e in jsonl(alone.stdout)] == [NEW] * 3
    both = export(NEW, "--follow-predecessors")
    assert both.exit_code == 0, both.stderr
    assert jsonl(both.stdout) == tl.room(OLD) + tl.room(NEW)
    assert len(tl.calls("/state/m.room.create")) == 2  # NEW's names OLD; OLD's names none
    # --limit counts across rooms, newest first: the last 4 events overall.
    assert jsonl(export(NEW, "--follow-predecessors", "--limit", "4").stdout) == tl.stream[-4:]


def test_an_unreadable_predecessor_ends_the_export_with_a_warning(
    tl: TimelineHS, export: Any
) -> None:
    tl.create(OLD)
    room_of(tl, OLD, 2)
    tl.create(NEW, predecessor=OLD)
    room_of(tl, NEW, 2)
    tl.refuse[OLD] = (403, {"errcode": "M_FORBIDDEN", "error": "no"})
    result = export(NEW, "--follow-predecessors")
    assert result.exit_code == 0
    assert jsonl(result.stdout) == tl.room(NEW)
    assert f"cannot read {OLD}" in result.stderr


def test_a_forbidden_room_exits_3(tl: TimelineHS, export: Any) -> None:
    tl.refuse[OLD] = (403, {"errcode": "M_FORBIDDEN", "error": "no"})
    result = export(OLD)
    assert result.exit_code == 3 and "not world-readable" in result.stderr
    assert result.stdout == ""


def test_an_interrupted_file_export_resumes_without_writing_an_event_twice(
    tl: TimelineHS, export: Any, tmp_path: Path
) -> None:
    sent = room_of(tl, OLD, 2500)
    out = tmp_path / "room.jsonl"
    tl.fail_messages_after = 2
    first = export(OLD, "-o", str(out), "--max-retries", "0")
    assert first.exit_code == 1 and "502" in first.stderr
    part = tmp_path / "room.jsonl.part"
    sidecar = json.loads((tmp_path / "room.jsonl.part.json").read_text())
    assert not out.exists() and sidecar["count"] == 2000
    # A kill can leave half a page past the last commit: --resume cuts it off.
    with part.open("ab") as fh:
        fh.write(b'{"half": "a page')
    tl.fail_messages_after = None
    calls_before = len(tl.calls("/messages"))
    resumed = export(OLD, "-o", str(out), "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resumed after 2000 events" in resumed.stderr
    assert "from=t500" in tl.calls("/messages")[calls_before]
    assert len(tl.calls("/messages")) == calls_before + 1
    assert out.read_bytes() == b"".join(encode_event(e) for e in sent)
    assert not part.exists() and not (tmp_path / "room.jsonl.part.json").exists()


def test_resume_refuses_other_options_and_needs_a_file(
    tl: TimelineHS, export: Any, tmp_path: Path
) -> None:
    room_of(tl, OLD, 1500)
    out = tmp_path / "room.jsonl"
    tl.fail_messages_after = 1
    assert export(OLD, "-o", str(out), "--max-retries", "0").exit_code == 1
    other = export(OLD, "-o", str(out), "--resume", "--limit", "10")
    assert other.exit_code == 2 and "another room or with other" in other.stderr
    assert export(OLD, "--resume").exit_code == 2
    # Without --resume: a new export, the unfinished one dropped with a note.
    tl.fail_messages_after = None
    fresh = export(OLD, "-o", str(out))
    assert fresh.exit_code == 0 and "starting over" in fresh.stderr
    assert jsonl(out.read_text()) == tl.stream


def test_text_and_html(tl: TimelineHS, export: Any, tmp_path: Path) -> None:
    tl.send(OLD, "m.room.name", content={"name": "Tea <room>"}, state_key="")
    tl.send(OLD, body="hello \x1b[31mred\x1b[0m")
    tl.send(OLD, body='<script>alert("x")</script><img src=x onerror=alert(1)>')
    text = export(OLD, "--format", "text")
    assert text.exit_code == 0, text.stderr
    assert "@alice:hs.test: hello \\x1b[31mred\\x1b[0m" in text.stdout
    assert "\x1b" not in text.stdout
    html_file = tmp_path / "room.html"
    page = export(OLD, "--format", "html", "-o", str(html_file))
    assert page.exit_code == 0, page.stderr
    doc = html_file.read_text()
    assert doc.startswith("<!DOCTYPE html>") and "<title>Tea &lt;room&gt;</title>" in doc
    assert "<script" not in doc.lower() and "<img" not in doc.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in doc
    assert "Content-Security-Policy" in doc and "\x1b" not in doc


def test_help_lists_export(peek: Any) -> None:
    top = peek("--help").stdout
    assert "export" in top
    text = peek("export", "--help").stdout
    for option in (
        "--since",
        "--until",
        "--limit",
        "--follow-predecessors",
        "--format",
        "--resume",
        "-o, --output",
    ):
        assert option in text


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_text_and_html_mark_where_the_next_room_begins(
    tl: TimelineHS, export: Any, fmt: str
) -> None:
    tl.create(OLD)
    room_of(tl, OLD, 2)
    tl.tombstone(OLD, NEW)
    tl.create(NEW, predecessor=OLD)
    room_of(tl, NEW, 2)
    result = export(NEW, "--follow-predecessors", "--format", fmt)
    assert result.exit_code == 0, result.stderr
    marker = f"── continued in {NEW} (room upgrade) ──"
    out = result.stdout
    assert out.count(marker) == 1
    # Between the old room's tombstone and the new room's first event.
    assert out.index("replaced") < out.index(marker)
    alone = export(NEW, "--format", fmt)
    assert "continued in" not in alone.stdout
