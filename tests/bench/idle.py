"""Idle: CPU used by `peek watch` on a room with no traffic, over a minute (`--idle-seconds`).

peek and the bare long-poll loop watch two quiet rooms side by side; once both are in their
long-poll (a first message went through each), the CPU time of each process (user + system, from
/proc/PID/stat) is read at the start and the end of the window. The figure is that CPU time as a
share of the window's wall time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.bench.core import PEEK, Home, Row, Sizes, log
from tests.bench.latency import REPO, Consumer
from tests.bench.server import BenchServer
from tests.homeserver import User

LIMIT_PERCENT = 1.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run(sizes: Sizes, server: BenchServer, alice: User, work: Path) -> list[Row]:
    seconds = sizes.idle_seconds
    log(f"idle: watching two quiet rooms for {seconds:g} s")
    peek_room = server.room(alice, [], "idle peek")
    bare_room = server.room(alice, [], "idle bare")
    home = Home.make(work / "idle-home")
    guest = server.guest()
    peek = Consumer(
        "peek watch",
        [str(PEEK), "watch", peek_room, "--homeserver", server.url, "--json", "--history", "0"],
        home.env,
        work / "idle-peek.err",
    )
    bare = Consumer(
        "bare loop",
        [sys.executable, "-m", "tests.bench.bare", "follow", server.url, bare_room],
        {**home.env, "BENCH_TOKEN": guest.access_token, "PYTHONPATH": str(REPO)},
        work / "idle-bare.err",
    )
    try:
        for consumer, room in ((peek, peek_room), (bare, bare_room)):
            consumer.ready(lambda text, room=room: server.hs.send_text(alice, room, text))
        time.sleep(0.5)  # the state save and the next long-poll are under way
        mark = server.mark()
        began = time.monotonic()
        start = {c: cpu_seconds(c.proc.pid) for c in (peek, bare)}
        time.sleep(seconds)
        used = {c: cpu_seconds(c.proc.pid) - start[c] for c in (peek, bare)}
        wall = time.monotonic() - began
        alive = peek.proc.poll() is None and bare.proc.poll() is None
        polls = sum(1 for r in server.requests_since(mark) if r.agent.startswith("peek/"))
    finally:
        peek.stop()
        bare.stop()
    if not alive:
        raise RuntimeError("a watcher exited during the idle measurement")
    share = 100 * used[peek] / wall
    return [
        Row(
            f"idle: peek watch CPU over {seconds:g} s without traffic",
            share,
            "%",
            100 * used[bare] / wall,
            "bare long-poll loop",
            "",
            f"< {LIMIT_PERCENT:g} %",
            share < LIMIT_PERCENT,
            f"{used[peek] * 1000:.0f} ms CPU in {wall:.1f} s (clock tick "
            f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms), "
            f"{polls} long-poll(s) of 30 s answered in the window",
        )
    ]
