"""A hundred rooms from one process, against the real Synapse: every guarantee still holds.

One run follows 100 rooms listed in a file, under a soft open-file limit below the room count;
a kill -9, a second peek at once, Ctrl-C and the next run each keep every event exactly once.
"""

from __future__ import annotations

import json
import queue
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e.peekproc import peek_command, peek_env, run_peek
from tests.homeserver import Homeserver, User
from tests.statefile import saved

ROOMS = 100
T = TypeVar("T")


def side_by_side(call: Callable[[int], T], count: int = ROOMS) -> list[T]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(call, range(count)))


class Follower:
    """`peek watch --rooms-from …` as a process (soft open-file limit: 64), lines collected."""

    def __init__(self, listing: Path, state: Path, *extra: str) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

        def low_limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

        self.proc = subprocess.Popen(
            [*peek_command(), "watch", "--rooms-from", str(listing), "--json", *extra],
            env=peek_env(state),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=low_limit,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_errors, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _pump_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)

    def events(self, n: int, timeout: float = 60) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            try:
                out.append(
                    json.loads(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
                )
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"got {len(out)} of {n} events; {self.errors[-3:]}"
                    ) from None
        return out

    def wait_for_stderr(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.errors):
            assert time.monotonic() < deadline, f"{text!r} not on stderr: {self.errors[-3:]}"
            assert self.proc.poll() is None, self.errors
            time.sleep(0.05)

    def rest(self) -> list[dict[str, Any]]:
        out = []
        while not self.lines.empty():
            out.append(json.loads(self.lines.get()))
        return out


def bodies(events: Sequence[dict[str, Any]]) -> list[str]:
    return sorted(e["content"]["body"] for e in events if e.get("type") == "m.room.message")


def saved_ids(hs: Homeserver, state: Path) -> dict[str, str | None]:
    positions = saved(state).get("positions", {}).get(hs.base_url, {})
    return {room: pos.get("last_event_id") for room, pos in positions.items()}


@pytest.mark.e2e
def test_a_hundred_rooms_exactly_once_through_kill_9_two_peeks_and_ctrl_c(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    rooms = side_by_side(lambda n: synapse.create_room(alice))
    listing = tmp_path / "rooms.txt"
    listing.write_text("# a hundred rooms\n" + "\n".join(rooms) + "\n")
    state = tmp_path / "state.db"
    hs = ("--homeserver", synapse.base_url)

    def send(tag: str) -> list[str]:
        return side_by_side(lambda n: synapse.send_text(alice, rooms[n], f"{tag}{n}"))

    def expected(tag: str) -> list[str]:
        return sorted(f"{tag}{n}" for n in range(ROOMS))

    # A first snapshot sets every room's position (nothing shown: --history 0).
    first = run_peek(
        "snapshot", "--rooms-from", str(listing), *hs, "--json", "--history", "0",
        state_file=state,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stderr == f"peek: draining {ROOMS} rooms\n"
    assert len(saved_ids(synapse, state)) == ROOMS

    # One process follows them all, under a soft limit of 64 open files.
    one = Follower(listing, state, *hs)
    one.wait_for_stderr(f"following {ROOMS} rooms")
    a_ids = send("a")
    assert bodies(one.events(ROOMS)) == expected("a")
    deadline = time.monotonic() + 30
    while set(saved_ids(synapse, state).values()) != set(a_ids):
        assert time.monotonic() < deadline, "positions not saved"
        time.sleep(0.05)
    one.proc.kill()  # kill -9: the kernel drops its room locks
    one.proc.wait()

    # Two peeks at once: the second finds every room held (--no-wait: exit 6, state untouched).
    two = Follower(listing, state, *hs)
    two.wait_for_stderr(f"following {ROOMS} rooms")
    busy = run_peek(
        "watch", "--rooms-from", str(listing), *hs, "--json", "--no-wait", state_file=state
    )
    assert busy.returncode == 6
    assert busy.stdout == ""
    assert busy.stderr.splitlines()[-1].startswith(f"peek: following 0 rooms; {ROOMS} failed: ")
    b_ids = send("b")
    got = two.events(ROOMS)
    assert bodies(got) == expected("b")  # nothing from before the kill again, nothing lost
    # Ctrl-C: exit 130 with every printed event's position saved.
    two.proc.send_signal(signal.SIGINT)
    assert two.proc.wait(30) == 130
    assert two.rest() == []
    assert set(saved_ids(synapse, state).values()) == set(b_ids)

    # The next run resumes every room exactly where it stopped.
    send("c")
    last = run_peek("snapshot", "--rooms-from", str(listing), *hs, "--json", state_file=state)
    assert last.returncode == 0, last.stderr
    assert bodies([json.loads(line) for line in last.stdout.splitlines()]) == expected("c")
