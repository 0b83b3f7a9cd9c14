"""Every homeserver's quirks, reproduced with `responses`: peek follows or says why it cannot."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from peekcli.errors import NetworkError, Stopped
from peekcli.follow.follower import Follower
from peekcli.follow.plan import Hooks
from peekcli.follow.strategies import (
    POLL_MAX_INTERVAL,
    AutoStrategy,
    Chunk,
    EventsStrategy,
    MessagesStrategy,
)
from peekcli.matrix.client import MatrixClient
from peekcli.retry import RetryPolicy
from peekcli.state import Position, StateStore
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, message
from tests.unit.simhs import SimServer, messages


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def server(rsps: responses.RequestsMock, software: str, **kw: Any) -> SimServer:
    return SimServer(rsps, software, **kw).install()


def ids(result: Any) -> list[str]:
    return [e["event_id"] for e in lines(result)]


def err_lines(result: Any) -> list[str]:
    return result.stderr.strip().splitlines()


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.flushes = 0

    def write(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def flush(self) -> None:
        self.flushes += 1

    def reader_gone(self) -> bool:
        return False


# -- Dendrite: /events is a stub, initialSync refused to guests ------------------------------------


def test_dendrite_stub_falls_back_to_messages_with_one_warning_naming_the_server(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    # This Dendrite serves initialSync to the identity (a logged-in user, say).
    sim = server(
        rsps,
        "dendrite",
        timeline=messages(1, 3),
        after_start=messages(4, 5),
        initial_sync_refused=False,
    )
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "1")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev3", "$ev4", "$ev5"]
    warning = err_lines(result)
    assert len(warning) == 1
    assert "Dendrite 0.13.8" in warning[0] and "/messages" in warning[0]
    assert "does not implement room peeking" in warning[0]
    assert len(sim.calls("/events")) == 1  # asked once, never polled again
    assert saved(state_file)["positions"][HS][ROOM]["kind"] == "messages"

    # The next run knows: straight to /messages, no warning, exactly the new event.
    sim.add(message(6))
    again = peek("snapshot", ROOM, "-s", HS, "--json")
    assert (again.exit_code, ids(again), again.stderr) == (0, ["$ev6"], "")
    assert len(sim.calls("/events")) == 1


def test_dendrite_with_stream_events_exits_8_in_one_line_saying_what_to_do(
    rsps: responses.RequestsMock, peek: Any
) -> None:
    sim = server(rsps, "dendrite", timeline=messages(1, 2), initial_sync_refused=False)
    result = peek("watch", ROOM, "-s", HS, "--json", "--stream", "events", "--history", "0")
    assert result.exit_code == 8
    assert len(err_lines(result)) == 1
    line = err_lines(result)[0]
    assert "Dendrite 0.13.8" in line and "does not implement room peeking" in line
    assert "--stream messages" in line
    assert len(sim.calls("/events")) == 1 and sim.calls("/messages") == []


def test_dendrite_refusing_initial_sync_to_guests_starts_from_messages(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    sim = server(rsps, "dendrite", timeline=messages(1, 5), after_start=messages(6, 6))
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "2")
    assert result.exit_code == 0, result.stderr
    # History from /messages?dir=b (newest first on the wire), printed oldest first.
    assert ids(result) == ["$ev4", "$ev5", "$ev6"]
    assert sim.calls("/events") == []  # no /events token without initialSync: never asked
    assert len(err_lines(result)) == 1 and "initialSync" in result.stderr
    assert "M_GUEST_ACCESS_FORBIDDEN" in result.stderr
    assert saved(state_file)["positions"][HS][ROOM]["kind"] == "messages"


# -- conduwuit / continuwuity / Conduit: no /events at all -----------------------------------------


@pytest.mark.parametrize("software", ["conduwuit", "continuwuity"])
def test_unrecognized_events_falls_back_and_watch_delivers_live_events(
    rsps: responses.RequestsMock, peek: Any, software: str
) -> None:
    sim = server(rsps, software, timeline=messages(1, 2), after_start=messages(3, 4))
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "1", "--max-events", "3")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev2", "$ev3", "$ev4"]
    assert "M_UNRECOGNIZED" in result.stderr and software in result.stderr
    assert len(sim.calls("/events")) == 1
    # initialSync's token went on to /messages (it is the only token such a server has).
    assert "from=m2" in sim.calls("/messages")[0].request.url


def test_conduit_without_events_and_with_an_initial_sync_stub_still_follows(
    rsps: responses.RequestsMock, peek: Any
) -> None:
    sim = server(rsps, "conduit", timeline=messages(1, 3), after_start=messages(4, 4))
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "1")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == ["$ev3", "$ev4"]
    assert sim.calls("/events") == [] and "Conduit 0.10.0" in result.stderr


def test_no_usable_fallback_exits_8_with_one_error_line(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    sim = server(rsps, "conduwuit", timeline=messages(1, 2))
    sim.messages_error = (404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 8
    *_, last = err_lines(result)
    assert "conduwuit 0.4.6" in last and "/messages failed" in last
    assert "--homeserver" in last and "peek doctor" in last
    assert "Traceback" not in result.stderr
    assert len(sim.calls("/events")) == 1 and len(sim.calls("/messages")) == 1
    assert len(sim.calls("/federation/v1/version")) == 1  # asked once for warning and error


def test_the_warning_names_only_the_url_when_the_server_hides_its_software(
    rsps: responses.RequestsMock, peek: Any
) -> None:
    server(rsps, "conduwuit", timeline=messages(1, 1), after_start=messages(2, 2), federation=False)
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0 and ids(result) == ["$ev2"]
    assert err_lines(result)[0].startswith(f"peek: {HS} does not implement room peeking")


# -- tuwunel: limit ignored, a missing `from` replays the room -------------------------------------


def test_tuwunel_50_event_batches_are_drained_to_an_empty_chunk(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    sim = server(rsps, "tuwunel", after_start=messages(1, 120))
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert ids(result) == [f"$ev{i}" for i in range(1, 121)]
    calls = sim.calls("/events")
    assert len(calls) == 4  # 50 + 50 + 20, then the empty chunk that ends the drain
    assert all(SimServer.params(c.request).get("from") for c in calls)
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "s120"


def test_tuwunel_is_never_asked_without_from(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    sim = server(rsps, "tuwunel", timeline=messages(1, 3))
    StateStore(state_file).save(HS, ROOM, Position("", "events"))
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 1 and "--reset" in result.stderr
    assert result.stdout == ""  # no replay of the room
    assert sim.calls("/events") == []


# -- Construct: event ids as tokens, ≤ 32 events per batch, short long-polls ----------------------


def test_construct_event_id_tokens_are_opaque_and_resume_exactly(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    sim = server(rsps, "construct", timeline=messages(1, 1), after_start=messages(2, 41))
    first = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert first.exit_code == 0, first.stderr
    assert ids(first) == [f"$ev{i}" for i in range(2, 42)]
    assert len(sim.calls("/events")) == 3  # 32 + 8 + the empty end
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "$ev41"
    sim.add(message(42))
    second = peek("snapshot", ROOM, "-s", HS, "--json")
    assert (second.exit_code, ids(second)) == (0, ["$ev42"])
    # The `$` and `:` of the token travel percent-encoded and arrive intact.
    assert SimServer.params(sim.calls("/events")[-2].request)["from"] == "$ev41"


class FakeClock:
    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def follower(
    tmp_path: Path, strategy: Any, sleeps: list[float], clock: Any, **kw: Any
) -> tuple[Follower, ListSink, list[str]]:
    sink = ListSink()
    notes: list[str] = []
    hooks = Hooks(status=lambda m: notes.append(f"status {m}"), warn=lambda m: notes.append(m))
    f = Follower(
        store=StateStore(tmp_path / "state.json"),
        homeserver=HS,
        room_id=ROOM,
        strategy=strategy,
        sink=sink,
        retry=RetryPolicy(max_retries=2, rand=lambda a, b: 0.0),
        hooks=hooks,
        sleep=sleeps.append,
        clock=clock,
        **kw,
    )
    return f, sink, notes


def test_construct_answering_early_with_nothing_is_not_an_error(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    """Construct clamps the long-poll to 5–15 s: an empty answer after 5 s is just 'no news'."""
    polls = 0

    def on_poll(sim: SimServer) -> None:
        nonlocal polls
        polls += 1
        if polls == 3:
            sim.add(message(2))

    sim = server(rsps, "construct", timeline=messages(1, 1), on_poll=on_poll)
    clock = FakeClock(step=2.5)  # each request takes 5 s of the 30 s asked (two clock reads)
    strategy = EventsStrategy(MatrixClient(HS), ROOM, 30_000, clock=clock)
    sleeps: list[float] = []
    f, sink, notes = follower(tmp_path, strategy, sleeps, clock, max_events=1)
    f.run(Position("$ev1", "events"), drain=False)
    assert [e["event_id"] for e in sink.events] == ["$ev2"]
    assert sleeps == [] and notes == []  # no pause, no "connection lost"
    assert [SimServer.params(c.request)["timeout"] for c in sim.calls("/events")] == ["30000"] * 3


def test_an_empty_long_poll_answered_at_once_is_still_paced(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    polls = 0

    def on_poll(sim: SimServer) -> None:
        nonlocal polls
        polls += 1
        if polls == 2:
            sim.add(message(2))

    server(rsps, "synapse", timeline=messages(1, 1), on_poll=on_poll)
    clock = FakeClock(step=0.01)
    strategy = EventsStrategy(MatrixClient(HS), ROOM, 30_000, clock=clock)
    sleeps: list[float] = []
    f, sink, _ = follower(tmp_path, strategy, sleeps, clock, max_events=1)
    f.run(Position("s1", "events"), drain=False)
    assert sleeps == [1.0] and len(sink.events) == 1


def test_read_timeout_grows_when_the_server_holds_polls_longer_than_asked(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    # Registered first, so it answers the first poll only: it outlasts our read timeout.
    rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/v3/events",
        body=requests.exceptions.ReadTimeout("held"),
    )
    server(rsps, "synapse", timeline=messages(1, 2))
    clock = FakeClock(step=50.0)  # started → failed: 50 s later, past the 30 + 15 s asked
    strategy = EventsStrategy(MatrixClient(HS), ROOM, 30_000, clock=clock)
    sleeps: list[float] = []
    f, sink, notes = follower(tmp_path, strategy, sleeps, clock, max_events=1)
    f.run(Position("s1", "events"), drain=False)
    polls = [c.request for c in rsps.calls if "/events" in c.request.url]
    assert polls[0].req_kwargs["timeout"][1] == 45.0
    # The retry asks without waiting (a quick probe); the next long-poll gets twice the margin.
    assert "timeout=0" in polls[1].url and strategy.read_margin == 30.0
    assert [e["event_id"] for e in sink.events] == ["$ev2"]
    assert any("did not answer in time" in n for n in notes)


def test_a_quick_failure_does_not_stretch_the_read_timeout(
    rsps: responses.RequestsMock,
) -> None:
    rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/v3/events",
        body=requests.exceptions.ConnectionError("refused"),
    )
    strategy = EventsStrategy(MatrixClient(HS), ROOM, 30_000, clock=FakeClock(step=0.1))
    with pytest.raises(NetworkError):
        strategy.fetch("s1", drain=False)
    assert strategy.read_margin == 15.0


# -- /messages polling ---------------------------------------------------------------------------


def test_polling_backs_off_while_quiet_and_snaps_back_on_traffic(
    rsps: responses.RequestsMock,
) -> None:
    sim = server(rsps, "synapse", timeline=messages(1, 1))
    sleeps: list[float] = []
    strategy = MessagesStrategy(MatrixClient(HS), ROOM, 2.0, sleep=sleeps.append)
    token = "m1"
    for _ in range(9):
        chunk = strategy.fetch(token, drain=False)
        assert chunk.events == [] and chunk.end == token  # no `end`: ask the same from again
    assert sleeps == [2.0, 3.0, 4.5, 6.75, 10.125, 15.1875, 22.78125, 30.0, 30.0]
    assert max(sleeps) == POLL_MAX_INTERVAL
    sim.add(message(2))
    chunk = strategy.fetch(token, drain=False)
    assert [e["event_id"] for e in chunk.events] == ["$ev2"] and chunk.end == "m2"
    assert len(sleeps) == 9  # traffic: no sleep …
    strategy.fetch("m2", drain=False)
    assert sleeps[-1] == 2.0  # … and the next quiet poll waits the base interval again
    assert all(SimServer.params(c.request)["from"] for c in sim.calls("/messages"))


def test_a_longer_poll_interval_than_the_cap_is_kept(rsps: responses.RequestsMock) -> None:
    server(rsps, "synapse", timeline=messages(1, 1))
    sleeps: list[float] = []
    strategy = MessagesStrategy(MatrixClient(HS), ROOM, 45.0, sleep=sleeps.append)
    strategy.fetch("m1", drain=False)
    strategy.fetch("m1", drain=False)
    assert sleeps == [45.0, 45.0]


def test_a_drain_never_sleeps(rsps: responses.RequestsMock, peek: Any) -> None:
    sim = server(rsps, "synapse", timeline=messages(1, 1), after_start=messages(2, 4))
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0", "--stream", "messages")
    assert result.exit_code == 0 and ids(result) == ["$ev2", "$ev3", "$ev4"]
    assert sim.calls("/events") == []
    # One page with the events, one empty page (no `end`) that ends the drain.
    assert len([c for c in sim.calls("/messages") if "dir=f" in c.request.url]) == 2


def test_a_reply_with_events_but_no_end_is_not_delivered_twice(
    rsps: responses.RequestsMock,
) -> None:
    pages = [
        {"chunk": [message(1)]},
        {"chunk": [message(1), message(2)]},
        {"chunk": [message(1), message(2)]},
    ]
    rsps.add_callback(
        responses.GET,
        re.compile(r".*/messages.*"),
        callback=lambda r: (200, {}, json.dumps({**pages.pop(0), "start": "m0"})),
    )
    sleeps: list[float] = []
    strategy = MessagesStrategy(MatrixClient(HS), ROOM, 2.0, sleep=sleeps.append)
    got = [strategy.fetch("m0", drain=False) for _ in range(3)]
    assert [[e["event_id"] for e in c.events] for c in got] == [["$ev1"], ["$ev2"], []]
    assert all(c.end == "m0" for c in got) and sleeps == [2.0]


def test_a_signal_during_the_poll_sleep_stops_with_the_position_saved(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    server(rsps, "synapse", timeline=messages(1, 3))

    def sleep(seconds: float) -> None:
        raise Stopped(130)

    strategy = MessagesStrategy(MatrixClient(HS), ROOM, 2.0, sleep=sleep)
    f, sink, _ = follower(tmp_path, strategy, [], FakeClock(1.0))
    with pytest.raises(Stopped):
        f.run(Position("m1", "messages"), drain=False)
    assert [e["event_id"] for e in sink.events] == ["$ev2", "$ev3"]
    pos = StateStore(tmp_path / "state.json").get(HS, ROOM)
    assert pos is not None and (pos.token, pos.kind, pos.last_event_id) == (
        "m3",
        "messages",
        "$ev3",
    )


def test_watch_stopped_mid_chunk_resumes_exactly_in_messages_mode(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    server(rsps, "synapse", timeline=messages(1, 1), after_start=messages(2, 5))
    args = ("--json", "--stream", "messages")
    first = peek("watch", ROOM, "-s", HS, *args, "--history", "0", "--max-events", "2")
    assert ids(first) == ["$ev2", "$ev3"]
    pos = saved(state_file)["positions"][HS][ROOM]
    assert (pos["kind"], pos["partial"], pos["last_event_id"]) == ("messages", True, "$ev3")
    second = peek("snapshot", ROOM, "-s", HS, *args)
    assert (ids(second), second.stderr) == (["$ev4", "$ev5"], "")


# -- the saved token's kind decides the endpoint ---------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "stream", "wrong"),
    [("messages", "events", "/events"), ("events", "messages", "/messages")],
)
def test_a_saved_token_is_never_sent_to_the_other_endpoint(
    rsps: responses.RequestsMock, peek: Any, state_file: Path, kind: str, stream: str, wrong: str
) -> None:
    sim = server(rsps, "synapse", timeline=messages(1, 3))
    StateStore(state_file).save(HS, ROOM, Position("s1", kind))
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--stream", stream)
    assert result.exit_code == 2
    assert f"--stream {kind}" in result.stderr and "--reset" in result.stderr
    assert sim.calls(wrong) == [] and result.stdout == ""
    assert saved(state_file)["positions"][HS][ROOM]["kind"] == kind


def test_auto_resumes_a_messages_position_with_messages(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    sim = server(rsps, "synapse", timeline=messages(1, 3))
    StateStore(state_file).save(HS, ROOM, Position("m1", "messages"))
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert (result.exit_code, ids(result)) == (0, ["$ev2", "$ev3"])
    assert sim.calls("/events") == []


def test_reset_lets_an_explicit_stream_start_over(
    rsps: responses.RequestsMock, peek: Any, state_file: Path
) -> None:
    server(rsps, "synapse", timeline=messages(1, 3))
    StateStore(state_file).save(HS, ROOM, Position("m1", "messages"))
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--stream", "events", "--reset")
    assert result.exit_code == 0, result.stderr
    assert saved(state_file)["positions"][HS][ROOM]["kind"] == "events"


def test_auto_does_not_switch_endpoints_once_events_worked(
    rsps: responses.RequestsMock,
) -> None:
    """A stream that worked and then says M_UNRECOGNIZED is an error, not a reason to switch."""
    replies = [
        (200, {"chunk": [message(2)], "start": "s1", "end": "s2"}),
        (404, {"errcode": "M_UNRECOGNIZED", "error": "gone"}),
    ]
    rsps.add_callback(
        responses.GET,
        f"{HS}/_matrix/client/v3/events",
        callback=lambda r: (replies[0][0], {}, json.dumps(replies.pop(0)[1])),
    )
    client = MatrixClient(HS)
    fell: list[Any] = []
    auto = AutoStrategy(
        EventsStrategy(client, ROOM, 0), MessagesStrategy(client, ROOM), on_fallback=fell.append
    )
    assert isinstance(auto.fetch("s1", drain=True), Chunk)
    with pytest.raises(Exception, match="M_UNRECOGNIZED"):
        auto.fetch("s2", drain=True)
    assert fell == [] and auto.kind == "events"
