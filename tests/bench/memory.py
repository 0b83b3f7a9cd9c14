"""Memory: peak RSS growth while following a room for N events (default 100,000).

Sending 100,000 events through Synapse would take most of an hour on 2 cores and measure
Synapse, so the room is fed in-process: peek's own stream loop (`Follower`, with a real
`StateStore` saving after every chunk) reads from a fake strategy that makes 1,000-event chunks
on the fly (`synthetic_event` with ever-new event ids and 5,000 distinct senders, so the
renderer's name and event caches, bounded by `max_cache`, fill and evict) and writes to
/dev/null through the JSON sink or the pretty sink. Each path runs in its own fresh process
(`python -m tests.bench.memory json|pretty N`): after a warm-up of 2 chunks (every code path
loaded, allocator pools in use) the peak RSS (`VmHWM`) is read, the N events follow, and the
growth of the peak is the figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.bench.core import Row, Sizes, log

REPO = Path(__file__).resolve().parents[2]
CHUNK = 1000
WARMUP = 2 * CHUNK
SENDERS = 5000
LIMIT_MB = 10.0


def _status(field: str) -> int:
    """A `/proc/self/status` figure in kB (VmHWM: peak resident set, VmRSS: current)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class FakeStrategy:
    """Chunks of `synthetic_event`s: token = number of events handed out so far."""

    kind = "events"

    def __init__(self, total: int) -> None:
        self.total = total

    def fetch(self, token: str, *, drain: bool) -> Any:
        from peekcli.follow.strategies import Chunk
        from tests.bench.render import synthetic_event

        start = int(token)
        stop = min(start + CHUNK, self.total)
        events = [synthetic_event(n, users=SENDERS) for n in range(start, stop)]
        return Chunk(events, token, str(stop))


def child(mode: str, events: int) -> dict[str, int]:
    from peekcli.follow.follower import Follower
    from peekcli.state import Position, StateStore

    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "wb") as devnull_b:
        devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        if mode == "json":
            from peekcli.sinks.jsonl import JsonLinesSink

            sink: Any = JsonLinesSink(devnull_b)
        else:
            from peekcli.render.pretty import PrettyRenderer
            from peekcli.sinks.terminal import PrettySink, make_console

            sink = PrettySink(make_console(devnull, None), PrettyRenderer(homeserver="https://hs"))
        strategy = FakeStrategy(WARMUP)
        follower = Follower(
            store=StateStore(Path(tmp) / "state.json"),
            homeserver="https://hs.example.org",
            room_id="!room:example.org",
            strategy=strategy,
            sink=sink,
        )
        follower.run(Position("0"), drain=True)
        warm_hwm, warm_rss = _status("VmHWM"), _status("VmRSS")
        strategy.total = WARMUP + events
        follower.run(Position(str(WARMUP)), drain=True)
        devnull.close()
        return {
            "delivered": follower.delivered,
            "warm_hwm": warm_hwm,
            "warm_rss": warm_rss,
            "end_hwm": _status("VmHWM"),
            "end_rss": _status("VmRSS"),
        }


def run(sizes: Sizes) -> list[Row]:
    rows = []
    for mode in ("json", "pretty"):
        log(f"memory: following {sizes.memory_events:,} events, {mode} output")
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.memory", mode, str(sizes.memory_events)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"memory child ({mode}) failed: {out.stderr[-2000:]}")
        got = json.loads(out.stdout)
        if got["delivered"] != WARMUP + sizes.memory_events:
            raise RuntimeError(f"memory child ({mode}) delivered {got['delivered']} events")
        growth = (got["end_hwm"] - got["warm_hwm"]) / 1024
        rows.append(
            Row(
                f"memory: peak RSS growth, {sizes.memory_events:,} events, {mode}",
                growth,
                "MB",
                got["warm_hwm"] / 1024,
                "peak after warm-up",
                "",
                f"< {LIMIT_MB:g} MB",
                growth < LIMIT_MB,
                f"RSS {got['warm_rss'] / 1024:.1f} → {got['end_rss'] / 1024:.1f} MB",
            )
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], int(sys.argv[2]))))
