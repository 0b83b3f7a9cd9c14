"""`peek export -o FILE`: the files it leaves (mode, `.part`) and what it says about them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result

from peekcli.cli import cli
from tests.unit.timelinehs import HS, OLD, TimelineHS


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


@pytest.fixture
def umask() -> Iterator[Any]:
    old = os.umask(0o022)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(old)


@pytest.mark.parametrize("fmt", ["jsonl", "text", "html"])
def test_an_export_gets_the_mode_the_umask_gives(
    tl: TimelineHS, export: Any, tmp_path: Path, umask: Any, fmt: str
) -> None:
    tl.send(OLD, body="public history")
    out = tmp_path / f"room.{fmt}"
    assert export(OLD, "--format", fmt, "-o", str(out)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    umask(0o077)
    assert export(OLD, "--format", fmt, "-o", str(out)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("room")) == [out.name]


def test_a_failure_before_any_page_leaves_no_part_and_says_so(
    tl: TimelineHS, export: Any, tmp_path: Path
) -> None:
    tl.send(OLD, body="hello")
    tl.fail_messages_after = 0
    out = tmp_path / "room.jsonl"
    result = export(OLD, "-o", str(out), "--max-retries", "0")
    assert result.exit_code == 1
    assert "nothing kept" in result.stderr and "--resume" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("room")) == []
    # The error line comes last, after the note about the files.
    assert result.stderr.splitlines()[-1].startswith("peek: ") and "502" in result.stderr


def test_a_failure_after_a_page_keeps_the_part_for_resume_and_says_so(
    tl: TimelineHS, export: Any, tmp_path: Path
) -> None:
    for i in range(1500):
        tl.send(OLD, body=f"m{i}")
    tl.fail_messages_after = 1
    out = tmp_path / "room.jsonl"
    result = export(OLD, "-o", str(out), "--max-retries", "0")
    assert result.exit_code == 1
    assert f"{out}.part is kept" in result.stderr and "--resume" in result.stderr
    assert (tmp_path / "room.jsonl.part").stat().st_size > 0
    # A new export (not --resume) that fails at once drops the old work files, not only the
    # .part: a stale progress file would otherwise promise a resume of nothing.
    tl.fail_messages_after = 0
    tl.messages_served = 0
    again = export(OLD, "-o", str(out), "--max-retries", "0")
    assert "starting over" in again.stderr and "nothing kept" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("room")) == []


def test_a_stdout_export_leaves_no_file(
    tl: TimelineHS, export: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    tl.send(OLD, body="hello")
    tl.fail_messages_after = 0
    result = export(OLD, "--max-retries", "0")
    assert result.exit_code == 1 and result.stdout == ""
    assert "kept" not in result.stderr
    assert list(work.iterdir()) == []
