"""Latency: send → line on stdout, `peek watch --json` against a bare `requests` long-poll loop.

The moment Synapse answers a long-poll cannot be observed from outside, so both consumers are
timed over the same path and compared: the bench notes the time, sends a message (the time is in
its body), and timestamps the line when it arrives on the consumer's stdout (an unbuffered pipe
read by a thread of the bench; one clock, one process). Everything except the consumer (the
send, Synapse persisting the event and waking the long-poll, the pipe) is common to both, so the
difference of the medians is what peek adds between the server's answer and the printed line.

Both consumers run for the whole measurement, each on its own room, and messages alternate
between the two rooms in a shuffled order, one at a time with a short pause (both long-polls are
back in place before the next message): neither consumer competes with the other for the CPU,
and drift on a noisy machine hits both alike.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.core import PEEK, Home, Row, Sizes, log, median
from tests.bench.server import BenchServer
from tests.homeserver import User

REPO = Path(__file__).resolve().parents[2]
LIMIT_MS = 2.0
PAUSE = 0.03


class Consumer:
    """A process whose stdout lines are timestamped the moment they are read."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], stderr: Path) -> None:
        self.name = name
        self.lines: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._err = open(stderr, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            bufsize=0,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = b""
        while True:
            data = os.read(fd, 1 << 16)
            now = time.perf_counter_ns()
            if not data:
                return
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                self.lines.put((now, line))

    def expect(self, marker: str, timeout: float = 20.0) -> int:
        """The arrival time (ns) of the line whose body carries `marker`; others are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} did not print {marker!r} (exit {self.proc.poll()})"
                )
            try:
                when, line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            try:
                body = json.loads(line).get("content", {}).get("body", "")
            except ValueError:
                continue
            if isinstance(body, str) and body.startswith(marker):
                return when

    def ready(self, send: Callable[[str], object], timeout: float = 60.0) -> None:
        """Send probes until one comes through: the loop is up and long-polling.

        A message sent before the consumer took its starting position would never be printed.
        """
        deadline = time.monotonic() + timeout
        probe = 0
        while True:
            probe += 1
            send(f"ready {probe}")
            try:
                self.expect("ready ", timeout=1.0)
                break
            except RuntimeError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
        while not self.lines.empty():  # late copies of earlier probes
            self.lines.get()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()


def run(sizes: Sizes, server: BenchServer, alice: User, work: Path) -> list[Row]:
    log(f"latency: {sizes.latency_messages} messages each to peek and to the bare loop")
    hs = server.hs
    peek_room = server.room(alice, [], "latency peek")
    bare_room = server.room(alice, [], "latency bare")
    home = Home.make(work / "latency-home")
    guest = server.guest()
    consumers = {
        "peek": Consumer(
            "peek watch",
            [str(PEEK), "watch", peek_room, "--homeserver", server.url, "--json", "--history", "0"],
            home.env,
            work / "latency-peek.err",
        ),
        "bare": Consumer(
            "bare loop",
            [sys.executable, "-m", "tests.bench.bare", "follow", server.url, bare_room],
            {**home.env, "BENCH_TOKEN": guest.access_token, "PYTHONPATH": str(REPO)},
            work / "latency-bare.err",
        ),
    }
    rooms = {"peek": peek_room, "bare": bare_room}
    samples: dict[str, list[float]] = {"peek": [], "bare": []}
    try:
        for name, consumer in consumers.items():
            consumer.ready(lambda text, room=rooms[name]: hs.send_text(alice, room, text))
        # Warm-up: a few messages through each loop before anything is timed.
        for i in range(3):
            for name, consumer in consumers.items():
                hs.send_text(alice, rooms[name], f"warm-up {i}")
                consumer.expect(f"warm-up {i}")
        order = ["peek", "bare"]
        for i in range(sizes.latency_messages):
            random.shuffle(order)
            for name in order:
                time.sleep(PAUSE)
                sent = time.perf_counter_ns()
                hs.send_text(alice, rooms[name], f"lat {i} {sent}")
                arrived = consumers[name].expect(f"lat {i} ")
                samples[name].append((arrived - sent) / 1e6)
    finally:
        for consumer in consumers.values():
            consumer.stop()
    peek, bare = median(samples["peek"]), median(samples["bare"])
    added = peek - bare

    def p90(values: list[float]) -> float:
        return sorted(values)[int(0.9 * (len(values) - 1))]

    return [
        Row(
            f"latency: send→print, {sizes.latency_messages} messages",
            peek,
            "ms",
            bare,
            "bare requests loop",
            f"{added:+.2f} ms",
            f"≤ +{LIMIT_MS:g} ms",
            added <= LIMIT_MS,
            f"p90 peek {p90(samples['peek']):.1f} ms, bare {p90(samples['bare']):.1f} ms",
        )
    ]
