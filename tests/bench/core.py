"""What every measurement shares: sizes, the result rows, the table, and how peek is run.

Every figure is a median over repeated runs and every ratio is taken against a baseline measured
in the same run, because the machines this runs on are small and noisy.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The installed console script, as a user runs it (next to the interpreter running the bench).
PEEK = Path(sys.executable).with_name("peek")


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does; `QUICK` is the smoke run's."""

    startup_runs: int = 20
    latency_messages: int = 200
    backlog_events: int = 20_000
    backlog_runs: int = 3
    render_recorded: int = 400
    render_events: int = 4_000
    render_runs: int = 5
    memory_events: int = 100_000
    idle_seconds: float = 60.0
    export_events: int = 5_000
    export_runs: int = 3
    senders: int = 8
    rooms_many: int = 1000
    rooms_few: int = 10
    rooms_messages: int = 1000
    rooms_latency: int = 30
    rooms_snapshot: int = 200
    media_files: int = 100
    media_bytes: int = 256 * 1024
    media_runs: int = 3


FULL = Sizes()
#: The smoke run (tests/bench/test_bench_smoke.py, part of the default test run): every section
#: runs end to end and reports its figures, at the smallest sizes that still exercise each path
#: (a page boundary of the server's default page size, more rooms than the "few" baseline).
QUICK = Sizes(
    startup_runs=1,
    latency_messages=3,
    backlog_events=30,
    backlog_runs=1,
    render_recorded=20,
    render_events=100,
    render_runs=1,
    memory_events=1_000,
    idle_seconds=0.5,
    export_events=30,
    export_runs=1,
    senders=2,
    rooms_many=4,
    rooms_few=2,
    rooms_messages=4,
    rooms_latency=2,
    rooms_snapshot=2,
    media_files=2,
    media_bytes=4096,
    media_runs=1,
)


@dataclass
class Row:
    """One line of the table: a median figure, its same-run baseline and the target."""

    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    #: "1.12×", "+0.40 ms": how the figure compares with its baseline.
    compare: str = ""
    target: str = ""
    #: True pass, False fail, None: no target (information) or not measured.
    ok: bool | None = None
    note: str = ""
    skipped: bool = False

    @property
    def result(self) -> str:
        if self.skipped:
            return "SKIP"
        if self.ok is None:
            return "info"
        return "pass" if self.ok else "FAIL"


def skipped(figure: str, why: str, target: str = "") -> Row:
    return Row(figure, None, "", target=target, note=why, skipped=True)


def ratio_row(
    figure: str,
    value: float,
    baseline: float,
    baseline_label: str,
    *,
    unit: str,
    limit: float,
    scale: float = 1.0,
    note: str = "",
) -> Row:
    """`value / baseline ≤ limit`; `scale` converts seconds to the shown unit (1000: ms)."""
    ratio = value / baseline if baseline else float("inf")
    return Row(
        figure,
        value * scale,
        unit,
        baseline * scale,
        baseline_label,
        f"{ratio:.2f}×",
        f"≤ {limit:g}×",
        ratio <= limit,
        note,
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (readable in a terminal, pastes into the README as is)."""
    head = ("figure", "median", "baseline (same run)", "ratio", "target", "result")
    body = []
    for row in rows:
        base = _fmt(row.baseline, row.unit) if row.baseline is not None else ""
        if row.baseline_label:
            base = f"{base} {row.baseline_label}".strip() if base else row.baseline_label
        body.append(
            (
                row.figure,
                _fmt(row.value, row.unit) if not row.skipped else "—",
                base or "—",
                row.compare or "—",
                row.target or "—",
                row.result,
            )
        )
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in body)
    notes = [f"- {r.figure}: {r.note}" for r in rows if r.note]
    if notes:
        out.append("")
        out.extend(notes)
    return "\n".join(out)


@dataclass
class Home:
    """An isolated user for peek runs: its own HOME, state file and credentials."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, root: Path) -> Home:
        root.mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PEEK_", "XDG_", "_PEEK_"))
            and k not in ("NO_COLOR", "FORCE_COLOR")
        }
        env["HOME"] = str(root)
        env["PEEK_STATE_FILE"] = str(root / "state.json")
        env.pop("PYTHONUNBUFFERED", None)  # as a user runs it: buffering is peek's business
        return cls(root, env)

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def clone(self, root: Path) -> Home:
        """A copy of this home (saved positions and stored guest) under `root`."""
        import shutil

        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(self.root, root)
        return Home.make(root)


def run_timed(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: Path | None = None,
    timeout: float = 600,
) -> float:
    """Wall time of one process, fork to exit; raises if it fails."""
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
    try:
        began = time.perf_counter()
        proc = subprocess.run(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
        elapsed = time.perf_counter() - began
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"{' '.join(argv[:3])}… exited {proc.returncode}: {err}")
    return elapsed


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()
