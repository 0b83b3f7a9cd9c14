"""The benchmark's smoke run: `python -m tests.bench --quick` works and reports every figure.

Timing targets are deliberately not asserted here (they belong to the full benchmark on a quiet
machine, not to the default test run): this checks that every measurement runs end to end against
a real Synapse and lands in the table with a number, a baseline where it has one, and a target.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Every figure of issue 6 (and issue 11's export), as the table names them.
FIGURES = [
    r"start-up: peek --version \[editable\]",
    r"start-up: peek --help \[editable\]",
    r"start-up: completion `peek wa<TAB>` \[editable\]",
    r"start-up: peek --version \[regular install\]",
    r"start-up: peek --help \[regular install\]",
    r"start-up: completion `peek wa<TAB>` \[regular install\]",
    r"latency: send→print, \d+ messages",
    r"rendering: pretty to /dev/null",
    r"rendering: --json to /dev/null",
    r"backlog: peek snapshot --json, [\d,]+ events behind",
    r"backlog: requests at the server, [\d,]+ events",
    r"export: peek export --format jsonl, [\d,]+\+ events",
    r"export: requests at the server",
    r"export: peek export --format html, [\d,]+\+ events",
    r"media: peek export --media, \d+ files of \d+ KiB, \d+ at once \(download time\)",
    r"idle: peek watch CPU over [\d.]+ s without traffic",
    r"memory: peak RSS growth, [\d,]+ events, json",
    r"memory: peak RSS growth, [\d,]+ events, pretty",
    r"rooms: [\d,]+ rooms under ulimit -n 1024, last live",
    r"rooms: peak RSS, [\d,]+ rooms",
    r"rooms: idle CPU, [\d,]+ rooms, [\d.]+ s",
    r"rooms: CPU per delivered event, [\d,]+ vs [\d,]+ rooms",
    r"rooms: send→line latency, [\d,]+ rooms",
    r"rooms: snapshot --rooms-from, [\d,]+ rooms × \d+ events",
]
#: Shown for comparison, without a target of their own.
INFORMATION = [
    r"backlog: requests with the server's default page size, [\d,]+ events",
    r"rendering: pretty, colour forced \(--color\) to /dev/null",
    r"start-up: completion `peek watch --js<TAB>` \[editable\]",
    r"start-up: completion `peek watch --js<TAB>` \[regular install\]",
]


@pytest.mark.e2e
def test_quick_benchmark_reports_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # ~30 s on an idle 2-core machine; far more under load
    )
    out = proc.stdout
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "could not be measured" not in out, out + proc.stderr[-3000:]
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] != "figure" and not cells[0].startswith("-"):
            rows[cells[0]] = cells
    for pattern in FIGURES + INFORMATION:
        found = [cells for name, cells in rows.items() if re.fullmatch(pattern, name)]
        assert found, f"no row for {pattern!r} in:\n{out}"
        figure, median, _baseline, _ratio, target, result = found[0]
        assert re.match(r"-?[\d,.]+ ", median), f"{figure}: no number ({median!r})"
        if pattern in FIGURES:
            assert target != "—", f"{figure}: no target"
            assert result in ("pass", "FAIL"), f"{figure}: {result}"
        else:
            assert result == "info", f"{figure}: {result}"
    assert len(rows) == len(FIGURES) + len(INFORMATION), sorted(rows)
    assert re.search(r"^\d+ of \d+ figures missed their target", out, re.M), out
    assert proc.returncode == (1 if re.search(r"\| (FAIL|SKIP) +\|", out) else 0)
