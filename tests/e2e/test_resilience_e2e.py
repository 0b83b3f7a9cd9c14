"""Never lose the stream, against the real Synapse: restarts, kill -9, locks, pipes and signals.

Every test drives the installed `peek` as a real process. A test that restarts Synapse starts
its own instance; the others use the shared session server.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import re
import signal
import sqlite3
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import requests

from tests.e2e.peekproc import Watcher, json_lines, peek_command, peek_env, run_peek
from tests.homeserver import Homeserver, User
from tests.statefile import saved

#: Events per /events request (peekcli.follow.strategies.BATCH_LIMIT, Synapse's maximum).
CHUNK = 1000
#: The pipe size set for a reader that stops reading: small, so the writer blocks early.
PIPE_SIZE = 4096


# -- helpers -----------------------------------------------------------------------------------


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e.get("type") == "m.room.message"]


def last_saved(hs: Homeserver, room: str, state: Path) -> str | None:
    doc = saved(state)
    return doc["positions"][hs.base_url][room].get("last_event_id")


def prime(hs: Homeserver, room: str, state: Path) -> None:
    """A first snapshot with no history: from now on every run resumes from a saved position."""
    first = run_peek(
        "snapshot", room, "--homeserver", hs.base_url, "--json", "--history", "0", state_file=state
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""


def send_many(hs: Homeserver, user: User, room: str, texts: list[str]) -> dict[str, str]:
    """Send `texts` as fast as the server takes them (many connections); event id → body."""
    local = threading.local()
    base = f"{hs.base_url}/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message"

    def send(i: int) -> tuple[str, str]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {user.access_token}"
        resp = session.put(
            f"{base}/bulk-{os.getpid()}-{time.monotonic_ns()}-{i}",
            json={"msgtype": "m.text", "body": texts[i]},
            timeout=30,
        )
        resp.raise_for_status()
        return resp.json()["event_id"], texts[i]

    with ThreadPoolExecutor(32) as pool:
        return dict(pool.map(send, range(len(texts))))


def timeline(hs: Homeserver, user: User, room: str) -> list[str]:
    """The room's message ids in stream order, read with the sender's own token (not peek)."""
    ids: list[str] = []
    params: dict[str, Any] = {"dir": "b", "limit": 1000}
    while True:
        page = hs.request(
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room, safe='')}/messages",
            user=user,
            params=params,
        )
        ids += [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        if not page["chunk"] or "end" not in page:
            return ids[::-1]
        params["from"] = page["end"]


def pipe_bytes(stream: IO[bytes]) -> int:
    """Bytes waiting in a pipe: how far a writer that nobody reads has got."""
    buf = bytearray(4)
    fcntl.ioctl(stream.fileno(), termios.FIONREAD, buf)
    return int.from_bytes(buf, "little")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def readline(stream: IO[Any], timeout: float = 30) -> Any:
    """One line from a pipe, or fail the test instead of hanging it."""
    box: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("no line within the timeout") from None


class Terminal:
    """A pseudo-terminal for peek's stderr; a thread collects everything peek draws on it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.data = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every writer is gone
                return
            if not chunk:
                return
            with self._lock:
                self.data += chunk

    def text(self) -> bytes:
        with self._lock:
            return bytes(self.data)

    def wait_for(self, needle: bytes, timeout: float = 60) -> None:
        wait_until(lambda: needle in self.text(), f"{needle!r} on the terminal", timeout)


@contextmanager
def state_watchdog(state: Path) -> Iterator[list[int]]:
    """Read the state database over and over while the body runs (as another program would,
    with its own connection): it must always pass SQLite's check and read whole."""
    stop = threading.Event()
    reads = [0]
    broken: list[str] = []

    def watch() -> None:
        while not stop.is_set():
            if not state.exists():
                continue
            try:
                conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)
                try:
                    check = conn.execute("PRAGMA quick_check").fetchone()
                    for (doc,) in conn.execute("SELECT doc FROM positions"):
                        json.loads(doc)
                finally:
                    conn.close()
                if check != ("ok",):
                    broken.append(str(check))
            except (sqlite3.Error, ValueError) as exc:
                broken.append(repr(exc))
            reads[0] += 1
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield reads
    finally:
        stop.set()
        thread.join()
    assert broken == [], f"the state file was read half-written: {broken[:3]}"


# -- server restart ----------------------------------------------------------------------------


def test_synapse_restart_mid_watch_loses_nothing_repeats_nothing_and_says_so_on_the_terminal(
    tmp_path: Path,
) -> None:
    with Homeserver(tmp_path / "synapse") as hs:
        alice = hs.register_user("alice")
        room = hs.create_room(alice, world_readable=True)
        state = tmp_path / "state.json"
        prime(hs, room, state)
        term = Terminal()
        proc = subprocess.Popen(
            [*peek_command(), "watch", room, "-s", hs.base_url, "--json", "--timeout", "1000"],
            env=peek_env(state),
            stdout=subprocess.PIPE,
            stderr=term.slave,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        os.close(term.slave)
        watcher = Watcher(proc)
        threading.Thread(target=watcher._pump, daemon=True).start()
        try:
            for i in range(3):
                hs.send_text(alice, room, f"before {i}")
            assert bodies(watcher.events(3)) == ["before 0", "before 1", "before 2"]

            hs.stop()
            term.wait_for(b"peek: connection lost: ")
            hs.start()  # same port, database and keys
            for i in range(3):
                hs.send_text(alice, room, f"after {i}")  # peek is still backing off
            assert bodies(watcher.events(3, timeout=90)) == ["after 0", "after 1", "after 2"]
            term.wait_for(b"peek: connection restored")
            hs.send_text(alice, room, "final")
            assert bodies(watcher.events(1)) == ["final"]
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            code = proc.wait(20)
        assert code == 130
        assert watcher.rest() == []  # nothing printed twice, nothing else printed

    # What the terminal showed, outage by outage (a stopping server may drop the stream more than
    # once): each status drawn over the last one (\r, erase line) with no newline between, then
    # erased when the stream came back, and one line saying so. The pty turns \n into \r\n.
    shown = term.text().decode()
    status = (
        r"\r\x1b\[Kpeek: (connection lost|still failing \(\d+ attempts\)): [^\r\n]*"
        r"; retrying in [\d.]+ s…"
    )
    outage = re.compile(f"(?:{status})+\r\x1b\\[Kpeek: connection restored")
    *outages, after = shown.split("\r\n")
    assert outages and after == ""
    assert all(outage.fullmatch(line) for line in outages), outages
    assert outages[0].startswith("\r\x1b[Kpeek: connection lost: ")
    assert f"http://127.0.0.1:{hs.port}" in outages[0]


# -- kill -9 -----------------------------------------------------------------------------------


def test_kill_9_during_a_large_drain_then_resume_delivers_every_event(
    synapse: Homeserver, alice: User, fresh_room: Callable[..., str], tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    prime(synapse, room, state)
    # Two chunks: a full one (1000 events) and 100 more, each far more than the pipe holds.
    sent = send_many(synapse, alice, room, [f"bulk {i:04d} " + "x" * 200 for i in range(1100)])
    expected = timeline(synapse, alice, room)
    assert sorted(expected) == sorted(sent)
    snapshot = [*peek_command(), "snapshot", room, "--homeserver", synapse.base_url, "--json"]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            snapshot,
            env=peek_env(state),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        fcntl.fcntl(proc.stdout, fcntl.F_SETPIPE_SZ, PIPE_SIZE)  # a writer nobody reads stops soon
        return proc

    runs: list[tuple[str | None, bytes, str | None]] = []  # (saved before, output, saved after)
    with state_watchdog(state) as reads:
        # Run 1: nobody reads, so peek blocks inside its first chunk: kill it there.
        before = last_saved(synapse, room, state)
        one = start()
        assert one.stdout is not None
        wait_until(lambda: pipe_bytes(one.stdout) >= PIPE_SIZE // 2, "the first run to write")
        one.kill()
        one.wait()
        runs.append((before, one.stdout.read(), last_saved(synapse, room, state)))

        # Run 2: read the first chunk to its end (the event the state file then names), stop
        # reading: peek blocks inside the second chunk and is killed there.
        before = last_saved(synapse, room, state)
        two = start()
        assert two.stdout is not None
        out, read_ids = b"", set()
        while (saved := last_saved(synapse, room, state)) == before or saved not in read_ids:
            line = readline(two.stdout)
            assert line, "the second run ended before saving a chunk"
            out += line
            read_ids.add(json.loads(line)["event_id"])
        wait_until(
            lambda: two.poll() is not None or pipe_bytes(two.stdout) >= PIPE_SIZE // 2,
            "the second run to write its second chunk",
        )
        assert two.poll() is None, "the second run finished before it could be killed"
        two.kill()
        two.wait()
        runs.append((before, out + two.stdout.read(), last_saved(synapse, room, state)))

        # Run 3: resume and finish.
        before = last_saved(synapse, room, state)
        three = run_peek(*snapshot[1:], state_file=state)
        assert three.returncode == 0, three.stderr
        runs.append((before, three.stdout.encode(), last_saved(synapse, room, state)))
    assert reads[0] > 10

    position = 0
    delivered: list[str] = []
    for n, (saved_before, output, saved_after) in enumerate(runs, 1):
        text = output.decode()
        complete, _, torn = text.rpartition("\n")
        events = [json.loads(line) for line in complete.splitlines()] if complete else []
        assert not torn or n < 3  # kill -9 may cut a line short; the next run repeats it
        ids = [e["event_id"] for e in events]
        # Each run starts exactly after the last saved event and prints the stream in order.
        start_at = 0 if saved_before is None else expected.index(saved_before) + 1
        assert start_at == position
        assert ids == expected[start_at : start_at + len(ids)], f"run {n} skipped or reordered"
        for event in events:  # event by event against what was sent
            assert event["content"]["body"] == sent[event["event_id"]]
            assert event["room_id"] == room and event["sender"] == alice.user_id
        # The saved position never covers more than what the run wrote; what it wrote beyond it
        # (the unsaved last chunk) is repeated by the next run, and that is all that repeats.
        end = start_at if saved_after is None else expected.index(saved_after) + 1
        assert start_at <= end <= start_at + len(ids)
        assert start_at + len(ids) - end <= CHUNK
        delivered += ids[: end - start_at]
        position = end
    # The kills landed where they were meant to: inside the first chunk (some output, nothing
    # saved), and inside the second (the first saved, the stream not finished).
    assert runs[0][1].count(b"\n") > 0 and runs[0][2] == runs[0][0]
    assert runs[1][2] != runs[1][0] and expected.index(str(runs[1][2])) + 1 < len(expected)
    assert delivered == expected  # every event, once, in order
    again = run_peek(*snapshot[1:], state_file=state)
    assert (again.returncode, again.stdout) == (0, "")


# -- locks -------------------------------------------------------------------------------------


def test_two_snapshots_of_one_room_take_turns_and_no_wait_exits_6(
    synapse: Homeserver, alice: User, fresh_room: Callable[..., str], tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    prime(synapse, room, state)
    texts = [f"big {i} " + "y" * 3000 for i in range(12)]
    for text in texts:
        synapse.send_text(alice, room, text)
    snapshot = ["snapshot", room, "--homeserver", synapse.base_url, "--json"]

    # The first snapshot holds the room: its reader is not reading, so it blocks mid-drain.
    first = subprocess.Popen(
        [*peek_command(), *snapshot],
        env=peek_env(state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    second: subprocess.Popen[str] | None = None
    try:
        assert first.stdout is not None
        fcntl.fcntl(first.stdout, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        wait_until(lambda: pipe_bytes(first.stdout) >= PIPE_SIZE // 2, "the first snapshot")

        busy = run_peek(*snapshot, "--no-wait", state_file=state)
        assert busy.returncode == 6
        assert busy.stdout == ""
        assert busy.stderr == f"peek: another peek is following {room} with this state file\n"

        second = subprocess.Popen(
            [*peek_command(), *snapshot],
            env=peek_env(state),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert second.stderr is not None
        assert readline(second.stderr) == f"peek: waiting for another peek following {room}…\n"
        assert second.poll() is None
        synapse.send_text(alice, room, "late")  # goes to whichever run reads on after it

        out1, err1 = first.communicate(timeout=60)
        out2, err2 = second.communicate(timeout=60)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert (first.returncode, err1) == (0, "")
    assert (second.returncode, err2) == (0, "")
    # Together, in order, each event exactly once.
    assert bodies(json_lines(out1)) + bodies(json_lines(out2)) == [*texts, "late"]


# -- pipes and signals -------------------------------------------------------------------------


def test_watch_into_head_exits_141_quietly_and_saves_only_what_was_written(
    synapse: Homeserver, alice: User, fresh_room: Callable[..., str], tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    prime(synapse, room, state)
    # peek watch … --json | head -n 3, as a shell would wire it.
    peek = subprocess.Popen(
        [*peek_command(), "watch", room, "-s", synapse.base_url, "--json", "--timeout", "1000"],
        env=peek_env(state),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert peek.stdout is not None and peek.stderr is not None
    head = subprocess.Popen(["head", "-n", "3"], stdin=peek.stdout, stdout=subprocess.PIPE)
    peek.stdout.close()  # only head holds the reading end now
    try:
        ids = [synapse.send_text(alice, room, f"line {i}") for i in range(3)]
        head_out, _ = head.communicate(timeout=30)  # head printed three lines and left
        assert head.returncode == 0
        assert [e["event_id"] for e in json_lines(head_out.decode())] == ids
        later = synapse.send_text(alice, room, "nobody reads this")
        code = peek.wait(30)  # the write of `later` finds the pipe closed
        err = peek.stderr.read()
    finally:
        if peek.poll() is None:
            peek.kill()
    assert code == 141
    assert err == b""  # no traceback, no "Exception ignored"
    assert last_saved(synapse, room, state) == ids[-1]
    after = run_peek("snapshot", room, "--homeserver", synapse.base_url, "--json", state_file=state)
    assert [e["event_id"] for e in json_lines(after.stdout)] == [later]


def test_sigterm_exits_143_with_the_position_of_everything_printed_saved(
    synapse: Homeserver, alice: User, fresh_room: Callable[..., str], tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    prime(synapse, room, state)
    hs = ["--homeserver", synapse.base_url]
    watcher = Watcher.start(room, *hs, "--json", "--timeout", "1000", state_file=state)
    ids = [synapse.send_text(alice, room, f"term {i}") for i in range(3)]
    assert [e["event_id"] for e in watcher.events(3)] == ids
    code, err = watcher.stop(signal.SIGTERM)
    assert (code, err) == (143, "")
    assert last_saved(synapse, room, state) == ids[-1]
    new = synapse.send_text(alice, room, "after the stop")
    after = run_peek("snapshot", room, *hs, "--json", state_file=state)
    assert [e["event_id"] for e in json_lines(after.stdout)] == [new]


def test_sigint_interrupts_a_long_poll_at_once(
    synapse: Homeserver, alice: User, fresh_room: Callable[..., str], tmp_path: Path
) -> None:
    room = fresh_room()
    state = tmp_path / "state.json"
    prime(synapse, room, state)
    # A 60 s long-poll: were the signal to wait for the request, it would outlast the stop below.
    watcher = Watcher.start(
        room, "--homeserver", synapse.base_url, "--json", "--timeout", "60000", state_file=state
    )
    first = synapse.send_text(alice, room, "one")
    assert [e["event_id"] for e in watcher.events(1)] == [first]
    wait_until(lambda: last_saved(synapse, room, state) == first, "the position to be saved")
    time.sleep(0.3)  # let it settle into the next long-poll
    code, err = watcher.stop(signal.SIGINT, timeout=20)
    assert (code, err) == (130, "")
    assert last_saved(synapse, room, state) == first
