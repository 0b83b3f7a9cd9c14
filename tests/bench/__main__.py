"""Run peek's benchmark: `python -m tests.bench` (full, ~6 min on 2 cores) or `--quick` (smoke).

Starts its own Synapse (the test fixture's `Homeserver`, in a temporary directory), runs every
measurement, prints a table (figure, median, same-run baseline, ratio, target, pass/fail) on
stdout and progress on stderr, and exits 1 when a target fails or a measurement could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.bench.core import FULL, PEEK, QUICK, Home, Row, Sizes, log, skipped, table

SECTIONS = ("startup", "latency", "render", "backlog", "export", "media", "idle", "memory", "rooms")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this part")
    parser.add_argument(
        "--events", type=int, help=f"backlog size (default {FULL.backlog_events:,})"
    )
    parser.add_argument(
        "--export-events", type=int, help=f"export room size (default {FULL.export_events:,})"
    )
    parser.add_argument("--runs", type=int, help="repeats of the backlog and export runs")
    parser.add_argument("--startup-runs", type=int, help="rounds of start-up runs")
    parser.add_argument("--latency-messages", type=int, help="messages per consumer")
    parser.add_argument("--memory-events", type=int, help="events followed for the memory figure")
    parser.add_argument("--idle-seconds", type=float, help="idle window (default 60)")
    parser.add_argument(
        "--rooms", type=int, help=f"rooms followed at once (default {FULL.rooms_many:,})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    # The rooms section keeps its prepared rooms in $PEEK_BENCH_CACHE (default
    # ~/.cache/peek-bench): the first full run creates them (minutes), later runs copy them.
    return parser.parse_args(argv)


def _sizes(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    overrides = {
        "backlog_events": args.events,
        "export_events": args.export_events,
        "backlog_runs": args.runs,
        "export_runs": args.runs,
        "media_runs": args.runs,
        "startup_runs": args.startup_runs,
        "latency_messages": args.latency_messages,
        "memory_events": args.memory_events,
        "idle_seconds": args.idle_seconds,
        "rooms_many": args.rooms,
    }
    return replace(sizes, **{k: v for k, v in overrides.items() if v is not None})


def _guard(name: str, rows: list[Row], body: Callable[[], list[Row]]) -> None:
    """A measurement that cannot run becomes a failed row, and the others still run."""
    try:
        rows.extend(body())
    except Exception as exc:
        traceback.print_exc()
        rows.append(Row(f"{name}: could not be measured", None, "", ok=False, note=str(exc)[:400]))


def _has_export() -> bool:
    proc = subprocess.run([str(PEEK), "export", "--help"], capture_output=True, check=False)
    return proc.returncode == 0


def _scratch() -> Path:
    """Synapse's directory: on tmpfs when there is one (see tests/bench/server.py)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="peek-bench-hs-", dir=base))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sizes = _sizes(args)
    sections = set(args.only or SECTIONS)
    started = dt.datetime.now().astimezone()
    work = Path(tempfile.mkdtemp(prefix="peek-bench-"))
    scratch = _scratch()
    rows: list[Row] = []
    log(f"work directory {work}, Synapse in {scratch}")
    try:
        env = Home.make(work / "startup-home").env
        if "startup" in sections:
            from tests.bench import startup

            _guard("start-up", rows, lambda: startup.run(sizes, work, env))
        # The full rooms section runs on its own Synapse, copied from rooms made once and kept
        # (tests/bench/rooms.py); the smoke run makes its dozen rooms on the shared one.
        cached_rooms = "rooms" in sections and not args.quick
        shared = {"latency", "render", "backlog", "export", "media", "idle"}
        if sections & shared or ("rooms" in sections and not cached_rooms):
            _with_server(
                sizes, sections - {"rooms"} if cached_rooms else sections, scratch, work, rows
            )
        if cached_rooms:
            from tests.bench import rooms

            _guard("rooms", rows, lambda: rooms.run_cached(sizes, work, scratch))
        if "memory" in sections:
            from tests.bench import memory

            _guard("memory", rows, lambda: memory.run(sizes))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    from importlib.metadata import version

    from peekcli import __version__

    print(
        f"peek {__version__} benchmark, {started:%Y-%m-%d %H:%M %Z}: "
        f"`{' '.join(['python -m tests.bench', *(sys.argv[1:] if argv is None else argv)])}`, "
        f"Python {platform.python_version()}, Synapse {version('matrix-synapse')} (SQLite), "
        f"{os.cpu_count()} CPUs, "
        f"{sizes.backlog_events:,} backlog events, {sizes.export_events:,} to export, "
        f"{sizes.latency_messages} latency messages, "
        f"{sizes.memory_events:,} events for memory, {sizes.idle_seconds:g} s idle, "
        f"{sizes.rooms_many:,} rooms"
    )
    print()
    print(table(rows))
    failed = [r for r in rows if r.ok is False or r.skipped]
    print()
    print(f"{len(failed)} of {len(rows)} figures missed their target or were not measured")
    return 1 if failed else 0


def _with_server(
    sizes: Sizes, sections: set[str], scratch: Path, work: Path, rows: list[Row]
) -> None:
    from tests.bench import backlog, idle, latency, render, rooms
    from tests.bench.server import BenchServer

    log("starting Synapse")
    with BenchServer(scratch) as server:
        users = server.users(max(2, sizes.senders))
        alice = users[0]
        if "latency" in sections:
            _guard("latency", rows, lambda: latency.run(sizes, server, alice, work))
        if "render" in sections:

            def rendering() -> list[Row]:
                log(f"rendering: recording a mixed chunk of {sizes.render_recorded} events")
                chunk = render.record(server, alice, users, sizes.render_recorded)
                return render.run(sizes, chunk, work)

            _guard("rendering", rows, rendering)
        if "backlog" in sections:

            def drain() -> list[Row]:
                room = backlog.prepare(server, users, work, sizes.backlog_events, "backlog")
                return backlog.drain(sizes, server, room, work)

            _guard("backlog", rows, drain)
        if "export" in sections:
            if _has_export():

                def export() -> list[Row]:
                    room = backlog.prepare(server, users, work, sizes.export_events, "export")
                    return backlog.export(sizes, server, room, work)

                _guard("export", rows, export)
            else:
                rows.append(skipped("export: peek export", "`peek export` is not installed"))
        if "media" in sections:
            from tests.bench import media

            _guard("media", rows, lambda: media.run(sizes, server, alice, work))
        if "idle" in sections:
            _guard("idle", rows, lambda: idle.run(sizes, server, alice, work))
        if "rooms" in sections:
            _guard("rooms", rows, lambda: rooms.run(sizes, server, alice, work))


if __name__ == "__main__":
    sys.exit(main())
