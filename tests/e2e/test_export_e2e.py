"""`peek export` against the real Synapse: a room of over a thousand events, formats, resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.e2e.forward import forward
from tests.e2e.peekproc import json_lines, peek_command, peek_env, run_peek
from tests.homeserver import Homeserver, User

#: Two /messages pages of 1000 (a real page boundary; three pages and their order are the unit
#: tests' in tests/unit/test_export.py): each event costs Synapse ~15 ms of CPU to take.
BIG = 1100
SENDERS = 16


@dataclass
class Sent:
    """What the test sent: event id → (body, started, finished) on the monotonic clock."""

    room: str
    events: dict[str, tuple[str, float, float]] = field(default_factory=dict)


def _send_many(hs: Homeserver, user: User, room: str, bodies: list[str]) -> Sent:
    """Send fast: SENDERS threads, each with its own keep-alive session, each in order."""
    sent = Sent(room)
    lock = threading.Lock()
    url = f"{hs.base_url}/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message/"

    def worker(mine: list[str]) -> None:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {user.access_token}"
            for body in mine:
                began = time.monotonic()
                resp = http.put(url + uuid.uuid4().hex, json={"msgtype": "m.text", "body": body})
                resp.raise_for_status()
                with lock:
                    sent.events[resp.json()["event_id"]] = (body, began, time.monotonic())

    threads = [threading.Thread(target=worker, args=(bodies[i::SENDERS],)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent.events) == len(bodies)
    return sent


@pytest.fixture(scope="module")
def big_room(synapse: Homeserver, alice: User) -> Sent:
    """BIG messages; "pivot" (sent alone) is later than all before it and earlier than the rest."""
    room = synapse.create_room(alice, world_readable=True, name="Big")
    cut = BIG * 2 // 3
    sent = _send_many(synapse, alice, room, [f"message {i}" for i in range(cut)])
    began = time.monotonic()
    pivot = synapse.send_text(alice, room, "pivot")
    sent.events[pivot] = ("pivot", began, time.monotonic())
    later = _send_many(synapse, alice, room, [f"message {i}" for i in range(cut, BIG - 1)])
    sent.events.update(later.events)
    return sent


def _stable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events without `age` (how long ago, so it differs between two reads)."""
    out = []
    for event in events:
        event = {k: v for k, v in event.items() if k != "age"}
        if isinstance(event.get("unsigned"), dict):
            event["unsigned"] = {k: v for k, v in event["unsigned"].items() if k != "age"}
        out.append(event)
    return out


def _messages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "m.room.message"]


def _export(
    hs: Homeserver, room: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    result = run_peek(
        "export", room, "--homeserver", hs.base_url, *args, state_file=tmp_path / "state.json"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_jsonl_export_is_every_sent_event_once_and_in_order(
    synapse: Homeserver, big_room: Sent, tmp_path: Path
) -> None:
    result = _export(synapse, big_room.room, tmp_path)
    assert result.stderr == ""  # not a terminal: no progress line, only data on stdout
    events = json_lines(result.stdout)
    got = _messages(events)
    assert [e["event_id"] for e in got if e["event_id"] in big_room.events] == [
        e["event_id"] for e in got
    ]
    assert len(got) == BIG and {e["event_id"] for e in got} == set(big_room.events)
    assert all(e["room_id"] == big_room.room for e in events)
    for event in got:
        assert event["content"]["body"] == big_room.events[event["event_id"]][0]
    # In order: an event whose send finished before another's began comes before it.
    latest_start = float("-inf")
    for event in got:
        _body, began, finished = big_room.events[event["event_id"]]
        assert finished > latest_start, f"{event['event_id']} is out of order"
        latest_start = max(latest_start, began)
    # The room's state events before the messages come too, oldest first.
    assert events[0]["type"] != "m.room.message"


def test_since_limit_and_the_file_output(
    synapse: Homeserver, big_room: Sent, tmp_path: Path
) -> None:
    full = json_lines(_export(synapse, big_room.room, tmp_path).stdout)
    at = next(i for i, e in enumerate(full) if e["content"].get("body") == "pivot")
    pivot = full[at]["origin_server_ts"]
    since = datetime.fromtimestamp(pivot / 1000, UTC).isoformat(timespec="milliseconds")
    expected = full[at:]
    assert all(e["origin_server_ts"] < pivot for e in full[:at])  # what makes it a clean cut
    assert 0 < len(expected) < len(full)
    out = tmp_path / "since.jsonl"
    _export(synapse, big_room.room, tmp_path, "--since", since, "-o", str(out))
    assert _stable(json_lines(out.read_text())) == _stable(expected)
    assert not out.with_name("since.jsonl.part").exists()
    assert not out.with_name("since.jsonl.part.json").exists()
    limited = _export(synapse, big_room.room, tmp_path, "--limit", "1050")  # from both pages
    assert _stable(json_lines(limited.stdout)) == _stable(full[-1050:])


def test_text_and_html_render_the_history_and_escape_hostile_text(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    room = fresh_room(name="Render <b>me</b>")
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    synapse.send_text(alice, room, "hello there")
    synapse.send_text(alice, room, hostile)
    synapse.send_event(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": hostile,
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>bold</b><script>alert(2)</script>",
        },
    )
    text = _export(synapse, room, tmp_path, "--format", "text").stdout
    assert re.search(r"^\d\d:\d\d:\d\d alice: hello there$", text, re.M), text
    assert "\x1b" not in text  # no colour
    html_out = tmp_path / "room.html"
    _export(synapse, room, tmp_path, "--format", "html", "-o", str(html_out))
    page = html_out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in page
    assert "hello there" in page and ">bold<" in page
    assert "<title>Render &lt;b&gt;me&lt;/b&gt;</title>" in page


def test_follow_predecessors_exports_the_upgraded_room_oldest_room_first(
    synapse: Homeserver, alice: User, fresh_room, tmp_path: Path
) -> None:
    old = fresh_room()
    for i in range(3):
        synapse.send_text(alice, old, f"old {i}")
    path = f"/_matrix/client/v3/rooms/{quote(old, safe='')}/upgrade"
    new = synapse.request("POST", path, user=alice, json_body={"new_version": "12"})[
        "replacement_room"
    ]
    for i in range(2):
        synapse.send_text(alice, new, f"new {i}")
    alone = json_lines(_export(synapse, new, tmp_path).stdout)
    assert [e["content"]["body"] for e in _messages(alone)] == ["new 0", "new 1"]
    both = json_lines(_export(synapse, new, tmp_path, "--follow-predecessors").stdout)
    assert [(e["room_id"], e["content"]["body"]) for e in _messages(both)] == [
        (old, "old 0"),
        (old, "old 1"),
        (old, "old 2"),
        (new, "new 0"),
        (new, "new 1"),
    ]
    rooms = [e["room_id"] for e in both]
    assert rooms.index(new) > len(rooms) - 1 - rooms[::-1].index(old)  # all of old, then new
    assert any(e["type"] == "m.room.tombstone" for e in both)


# -- an interrupted export, resumed --------------------------------------------------------------


class _Gate:
    """A proxy in front of Synapse that lets `allowed` /messages requests through, then holds
    the next ones until `open()`: a deterministic place to kill peek in the middle of an export."""

    def __init__(self, upstream: str, allowed: int) -> None:
        self.upstream = upstream
        self.allowed = allowed
        self.messages: list[str] = []
        self.held = threading.Event()
        self.opened = threading.Event()
        lock = threading.Lock()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return None

            def _forward(self) -> None:
                if "/messages" in self.path:
                    with lock:
                        gate.messages.append(self.path)
                        index = len(gate.messages)
                    if index > gate.allowed and not gate.opened.is_set():
                        gate.held.set()
                        gate.opened.wait(30)
                forward(self, gate.upstream, timeout=30)

            do_GET = do_POST = do_PUT = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate(synapse: Homeserver) -> Iterator[_Gate]:
    proxy = _Gate(synapse.base_url, allowed=1)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.open()
        proxy.server.shutdown()
        proxy.server.server_close()


def test_an_export_killed_midway_resumes_without_duplicates(
    synapse: Homeserver, big_room: Sent, gate: _Gate, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    out = tmp_path / "big.jsonl"
    args = ["export", big_room.room, "--homeserver", gate.url, "-o", str(out)]
    proc = subprocess.Popen(
        [*peek_command(), *args],
        env=peek_env(state),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert gate.held.wait(60), "peek never asked for a second page"
        os.kill(proc.pid, signal.SIGKILL)  # page 1 is committed, page 2 is in flight
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.open()
        proc.communicate()
    part = out.with_name("big.jsonl.part")
    sidecar = json.loads(out.with_name("big.jsonl.part.json").read_text())
    assert not out.exists()
    assert sidecar["count"] > 0 and part.stat().st_size >= sum(n for _o, n in sidecar["segments"])
    before = len(gate.messages)

    resumed = run_peek(*args, "--resume", state_file=state)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr
    # The resumed run went on from the saved page token, not from the room's end again.
    assert "from=" in gate.messages[before]
    assert not part.exists()
    events = json_lines(out.read_text())
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event was written twice"
    full = json_lines(_export(synapse, big_room.room, tmp_path).stdout)
    assert _stable(events) == _stable(full)
