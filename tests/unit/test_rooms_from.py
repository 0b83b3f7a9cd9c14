"""`--rooms-from FILE`: many rooms in one run, opened several at a time, one guest per server,
one summary line; `snapshot` drains them several at a time; a shared backoff per server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import responses
from click.testing import CliRunner, Result

from peekcli import retry
from peekcli.cli import cli
from peekcli.errors import NetworkError
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, message

Reply = tuple[int, dict[str, str], str]


def room(n: int) -> str:
    return f"!r{n}:hs.test"


@dataclass
class ManyRooms:
    """One homeserver with any number of rooms: room n holds messages 1000n+1 … 1000n+k."""

    rsps: responses.RequestsMock
    per_room: int = 1
    forbidden: set[str] = field(default_factory=set)
    guests: int = 0
    #: /events answers 503 while this returns True (called with the room id)
    down: Any = None
    failures: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    most_in_flight: int = 0
    #: called inside every /events request (to hold it while others arrive)
    during_events: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the `timeout` parameter of every /events request
    timeouts: list[str] = field(default_factory=list)

    def install(self) -> ManyRooms:
        api = re.escape(HS) + r"/_matrix/client/v3"
        self.rsps.add_callback(responses.POST, f"{HS}/_matrix/client/v3/register", self._register)
        self.rsps.add_callback(
            responses.GET, re.compile(api + r"/rooms/([^/]+)/initialSync.*"), self._initial
        )
        self.rsps.add_callback(responses.GET, re.compile(api + r"/events.*"), self._events)
        return self

    def events_of(self, room_id: str) -> list[dict[str, Any]]:
        n = int(room_id[2:].split(":")[0])
        return [message(1000 * n + i, room=room_id) for i in range(1, self.per_room + 1)]

    def _register(self, request: Any) -> Reply:
        with self.lock:
            self.guests += 1
        body = {"user_id": "@g:hs.test", "access_token": f"guest-{self.guests}", "device_id": "D"}
        return 200, {}, json.dumps(body)

    def _initial(self, request: Any) -> Reply:
        room_id = unquote(urlsplit(request.url).path.split("/")[-2])
        if room_id in self.forbidden:
            return 403, {}, json.dumps({"errcode": "M_FORBIDDEN", "error": "not allowed"})
        body = {
            "room_id": room_id,
            "messages": {"chunk": [], "start": "s", "end": f"{room_id}|0"},
            "state": [],
        }
        return 200, {}, json.dumps(body)

    def _events(self, request: Any) -> Reply:
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        room_id, at = params["from"].split("|")
        with self.lock:
            self.timeouts.append(params.get("timeout", ""))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.during_events is not None:
                self.during_events(room_id)
            if self.down is not None and self.down(room_id):
                with self.lock:
                    self.failures[room_id] = self.failures.get(room_id, 0) + 1
                return 503, {}, json.dumps({"errcode": "M_UNKNOWN", "error": "down"})
            events = self.events_of(room_id)[int(at) :]
            end = f"{room_id}|{int(at) + len(events)}"
            return 200, {}, json.dumps({"chunk": events, "start": params["from"], "end": end})
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def server() -> Iterator[ManyRooms]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield ManyRooms(rsps).install()


def run(state_file: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        [*args, "-s", HS, "--state-file", str(state_file)],
        input=input,
        catch_exceptions=False,
    )


def test_watch_follows_every_room_listed_in_a_file(
    server: ManyRooms, state_file: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "rooms.txt"
    body = "\n".join(room(n) for n in range(40))
    listing.write_text(f"# rooms of hs.test\n\n{body}\n   \n# the end\n")
    result = run(
        state_file, "watch", "--rooms-from", str(listing), "--json", "--history", "0",
        "--max-events", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    got = sorted(e["event_id"] for e in lines(result))
    assert got == sorted(f"$ev{1000 * n + 1}" for n in range(40))
    assert result.stderr == "peek: following 40 rooms\n"
    assert server.guests == 1  # one guest for the homeserver, not one per room
    positions = saved(state_file)["positions"][HS]
    assert {r: p["token"] for r, p in positions.items()} == {
        room(n): f"{room(n)}|1" for n in range(40)
    }


def test_quiet_silences_the_room_threads_too(
    server: ManyRooms, state_file: Path, tmp_path: Path
) -> None:
    """`-q` is the run's setting, not the main thread's: the summary line, said by the room that
    goes live last in its own thread, was printed under `-q` all the same."""
    listing = tmp_path / "rooms.txt"
    listing.write_text("".join(f"{room(n)}\n" for n in range(3)))
    args = ["watch", "--rooms-from", str(listing), "--json", "--history", "0", "--max-events", "1"]
    result = CliRunner().invoke(
        cli, ["-q", *args, "-s", HS, "--state-file", str(state_file)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    assert len(lines(result)) == 3
    assert result.stderr == ""


def test_rooms_from_stdin_together_with_room_arguments(server: ManyRooms, state_file: Path) -> None:
    result = run(
        state_file, "snapshot", room(0), "--rooms-from", "-", "--json", "--history", "0",
        input=f"{room(1)}\n{room(2)}  # a comment after the room\n{room(0)}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert sorted(e["room_id"] for e in lines(result)) == [room(0), room(1), room(2)]
    assert result.stderr == "peek: draining 3 rooms\n"


def test_rooms_that_fail_are_named_in_the_summary_and_the_rest_go_on(
    server: ManyRooms, state_file: Path
) -> None:
    server.forbidden = {room(3), room(7)}
    listing = "\n".join(room(n) for n in range(10))
    result = run(
        state_file, "watch", "--rooms-from", "-", "--json", "--history", "0",
        "--max-events", "1", input=listing,
    )  # fmt: skip
    assert result.exit_code == 3
    assert len(lines(result)) == 8
    *each, summary = result.stderr.splitlines()
    assert len(each) == 2 and all("not world-readable" in line for line in each)
    assert summary == f"peek: following 8 rooms; 2 failed: {room(3)}, {room(7)}"


@pytest.mark.parametrize(
    ("content", "message"),
    [("\n# nothing\n\n", "no rooms in"), (None, "cannot read")],
)
def test_an_empty_or_unreadable_room_list_is_a_usage_error(
    state_file: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    listing = tmp_path / "rooms.txt"
    if content is not None:
        listing.write_text(content)
    result = run(state_file, "watch", "--rooms-from", str(listing))
    assert result.exit_code == 2
    assert message in result.stderr and str(listing) in result.stderr


def test_no_room_at_all_is_a_usage_error(state_file: Path) -> None:
    result = run(state_file, "watch")
    assert result.exit_code == 2 and "--rooms-from" in result.stderr


def test_snapshot_drains_several_rooms_at_a_time_but_a_bounded_number(
    server: ManyRooms, state_file: Path
) -> None:
    server.per_room = 3
    arrived = threading.Event()
    second: set[str] = set()

    def hold(room_id: str) -> None:
        # The first request waits until another room's request arrives: drained one after
        # another, that never happens (and the test fails on the timeout).
        with server.lock:
            second.add(room_id)
            if len(second) > 1:
                arrived.set()
        arrived.wait(10)

    server.during_events = hold
    listing = "\n".join(room(n) for n in range(30))
    result = run(
        state_file, "snapshot", "--rooms-from", "-", "--json", "--history", "0", input=listing
    )
    assert result.exit_code == 0, result.stderr
    assert arrived.is_set()
    assert len(lines(result)) == 90
    assert 1 < server.most_in_flight <= 8
    events = lines(result)
    for n in range(30):  # each room's events in order
        mine = [e["event_id"] for e in events if e["room_id"] == room(n)]
        assert mine == [f"$ev{1000 * n + i}" for i in (1, 2, 3)]


def test_after_an_outage_one_room_probes_and_the_others_resume_with_jitter(
    server: ManyRooms, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand rooms must not retry in lockstep: while the server is down, one room probes
    (with the usual backoff); the others wait for it, then resume each after a random pause."""
    pauses: list[float] = []
    monkeypatch.setattr(retry, "pause", pauses.append)
    monkeypatch.setattr(retry, "jitter", lambda low, high: high)
    rooms = 20
    everyone = threading.Event()
    seen: set[str] = set()

    def first_wave(room_id: str) -> None:
        # Every room's first request is held until all have arrived: they all fail together.
        with server.lock:
            seen.add(room_id)
            if len(seen) == rooms:
                everyone.set()
        everyone.wait(10)

    retries = [0]

    def down(room_id: str) -> bool:
        # Down for every room's first request, and for the next two retries, whoever sends them.
        if room_id not in server.failures:
            return True
        retries[0] += 1
        return retries[0] <= 2

    server.during_events = first_wave
    server.down = down
    listing = "\n".join(room(n) for n in range(rooms))
    result = run(
        state_file, "watch", "--rooms-from", "-", "--json", "--history", "0",
        "--max-events", "1", input=listing,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(lines(result)) == rooms, result.stderr
    tries = sorted(server.failures.values())
    assert tries == [1] * (rooms - 1) + [3]  # the probe alone retried while the server was down
    # Only the probe backed off and said so; the others waited for it, then resumed after a
    # random share of the spread (here its maximum: 20 rooms spread over 0.04 s), as they had
    # started their long-polls.
    assert [line.split("retrying in ")[1] for line in result.stderr.splitlines()
            if "retrying in" in line] == ["1 s…", "2 s…", "4 s…"]  # fmt: skip
    assert pauses.count(0.04) >= rooms - 1
    assert result.stderr.count("connection restored") == 1


@pytest.mark.parametrize(
    ("rooms", "given", "asked"),
    [(40, None, 30_000), (100, None, 50_000), (100, "20000", 20_000)],
)
def test_many_rooms_ask_longer_long_polls_unless_told(
    server: ManyRooms, state_file: Path, rooms: int, given: str | None, asked: int
) -> None:
    """A thousand rooms at 30 s would be 33 idle replies a second: from 60 rooms on, each poll
    asks for 500 ms per room (1,000 rooms: 500 s), so the idle replies stay ~2 a second."""
    listing = "\n".join(room(n) for n in range(rooms))
    extra = ["--timeout", given] if given else []
    result = run(
        state_file, "watch", "--rooms-from", "-", "--json", "--history", "0", "--max-events", "1",
        *extra, input=listing,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(lines(result)) == rooms
    assert set(server.timeouts) == {str(asked)}


def test_a_long_poll_cut_short_brings_every_room_back_to_30_s() -> None:
    """A proxy that cuts polls at 60 s (nginx's default) answers 504: the rooms of that server
    go back to the usual 30 s, and the user is told once."""
    from peekcli.follow.strategies import EventsStrategy, LongPoll
    from peekcli.matrix.client import MatrixClient

    asked: list[str] = []

    def events(request: Any) -> Reply:
        params = parse_qs(urlsplit(request.url).query)
        asked.append(params["timeout"][0])
        if len(asked) == 1:
            return 504, {}, "<html>504 Gateway Time-out</html>"
        return 200, {}, json.dumps({"chunk": [], "start": "a", "end": "a"})

    told: list[float] = []
    poll = LongPoll(500_000, told.append)
    clock = iter([0.0, 60.0, 100.0, 100.5, 200.0, 200.5])
    client = MatrixClient(HS)
    one, two = (EventsStrategy(client, room(n), 30_000, lambda: next(clock), poll) for n in (1, 2))
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.GET, re.compile(re.escape(HS) + r"/_matrix/client/v3/events.*"),
                          events)  # fmt: skip
        with pytest.raises(NetworkError):
            one.fetch("a", drain=False)
        two.fetch("a", drain=False)
        one.fetch("a", drain=False)
    assert asked == ["500000", "30000", "30000"]
    assert told == [60.0]
