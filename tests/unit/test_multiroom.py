"""Several rooms in one run: each followed and saved on its own; a failing room spares the rest."""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from peekcli import retry, signals
from peekcli.errors import EXIT_SIGINT, Stopped
from peekcli.follow.multiroom import RoomJob, follow_rooms, labels
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

HS2 = "https://two.test"
ROOM2 = "!r2:two.test"


@pytest.fixture(autouse=True)
def _no_peek_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEEK_CONFIG", raising=False)


def discoverable(fake: FakeHomeserver) -> FakeHomeserver:
    """No well-known: discovery falls back to https://NAME, which answers /versions."""
    fake.rsps.add(responses.GET, f"{fake.base}/.well-known/matrix/client", status=404)
    fake.rsps.add(
        responses.GET, f"{fake.base}/_matrix/client/versions", json={"versions": ["v1.11"]}
    )
    return fake


@pytest.fixture
def two(hs: FakeHomeserver) -> FakeHomeserver:
    discoverable(hs)
    return discoverable(FakeHomeserver(hs.rsps, base=HS2, room=ROOM2).install())


def test_watch_follows_two_rooms_and_saves_each_position(
    hs: FakeHomeserver, two: FakeHomeserver, peek: Any, state_file: Path
) -> None:
    hs.chain([message(1), message(2)])
    two.chain([message(7, room=ROOM2)], [message(8, room=ROOM2)])
    result = peek("watch", ROOM, ROOM2, "--json", "--history", "0", "--max-events", "2")
    assert result.exit_code == 0, result.stderr
    got = lines(result)
    assert sorted(e["event_id"] for e in got) == ["$ev1", "$ev2", "$ev7", "$ev8"]
    # Interleaved in arrival order, but each room's own order kept; events stay raw.
    assert [e["event_id"] for e in got if e["room_id"] == ROOM2] == ["$ev7", "$ev8"]
    positions = saved(state_file)["positions"]
    assert positions[HS][ROOM]["last_event_id"] == "$ev2"
    assert positions[HS2][ROOM2]["last_event_id"] == "$ev8"
    assert positions[HS2][ROOM2]["token"] == "t2"


def test_text_lines_carry_a_room_label(hs: FakeHomeserver, two: FakeHomeserver, peek: Any) -> None:
    hs.chain([message(1, "from one")])
    two.chain([message(7, "from two", room=ROOM2)])
    result = peek("watch", ROOM, ROOM2, "--history", "0", "--max-events", "1")
    assert result.exit_code == 0, result.stderr
    one = [line for line in result.stdout.splitlines() if "from one" in line]
    other = [line for line in result.stdout.splitlines() if "from two" in line]
    assert len(one) == 1 and "!room" in one[0] and "!r2" not in one[0]
    assert len(other) == 1 and "!r2" in other[0]


def forbid(fake: FakeHomeserver) -> None:
    """A room the guest may not read: initialSync and /messages both answer 403."""
    body = {"errcode": "M_FORBIDDEN", "error": "not allowed"}
    fake.initial_error = (403, body)
    fake.rsps.add(
        responses.GET,
        re.compile(re.escape(fake.base) + r"/_matrix/client/v3/rooms/[^/]+/messages.*"),
        json=body,
        status=403,
    )


def test_forbidden_room_is_reported_and_the_other_goes_on(
    hs: FakeHomeserver, two: FakeHomeserver, peek: Any, state_file: Path
) -> None:
    forbid(two)
    hs.chain([message(1), message(2)])
    result = peek("watch", ROOM2, ROOM, "--json", "--history", "0", "--max-events", "2")
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2"]
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"peek: cannot read {ROOM2}")
    assert result.exit_code == 3  # the first failure's code, once every room has ended
    assert ROOM2 not in saved(state_file)["positions"].get(HS2, {})


def test_unknown_alias_beside_a_good_room(hs: FakeHomeserver, peek: Any) -> None:
    hs.rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/v3/directory/room/%23nope%3Ahs.test",
        json={"errcode": "M_NOT_FOUND", "error": "Room alias not found"},
        status=404,
    )
    hs.chain([message(1)])
    result = peek("watch", "#nope:hs.test", ROOM, "-s", HS, "--json", "--max-events", "1")
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert "#nope:hs.test not found" in result.stderr
    assert result.exit_code == 4


def test_all_rooms_failing_exits_with_the_first_failure(hs: FakeHomeserver, peek: Any) -> None:
    forbid(hs)
    result = peek("watch", ROOM, "!other:hs.test", "-s", HS, "--json")
    assert result.exit_code == 3
    assert len(result.stderr.splitlines()) == 2 and result.stdout == ""


def test_snapshot_drains_several_rooms_in_turn(
    hs: FakeHomeserver, two: FakeHomeserver, peek: Any, state_file: Path
) -> None:
    hs.chain([message(1)], [message(2)])
    two.chain([message(7, room=ROOM2)])
    result = peek("snapshot", ROOM, ROOM2, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2", "$ev7"]
    positions = saved(state_file)["positions"]
    assert (positions[HS][ROOM]["token"], positions[HS2][ROOM2]["token"]) == ("t2", "t1")


def test_the_same_room_twice_is_followed_once(hs: FakeHomeserver, peek: Any) -> None:
    hs.rsps.add(
        responses.GET,
        f"{HS}/_matrix/client/v3/directory/room/%23lobby%3Ahs.test",
        json={"room_id": ROOM},
    )
    hs.chain([message(1)])
    result = peek("snapshot", ROOM, "#lobby:hs.test", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert "#lobby:hs.test is the same room as !room:hs.test" in result.stderr


def test_an_old_room_and_its_known_replacement_are_followed_once(
    hs: FakeHomeserver, peek: Any, state_file: Path
) -> None:
    # A room peek already followed through an upgrade (redirect !old → ROOM), named beside the
    # replacement: one room. Two threads on it, the second would wait for the first's lock.
    from peekcli.state import StateStore

    StateStore(state_file).redirect(HS, "!old:hs.test", ROOM)
    hs.chain([message(1)])
    result = peek("snapshot", "!old:hs.test", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert f"{ROOM} is the same room as !old:hs.test: following it once" in result.stderr


def test_labels_are_short_and_distinct() -> None:
    assert labels(["#lobby:a.org", "#lobby:b.org", "!abcdefghijklmnop:x.org", "junk"]) == [
        "#lobby",
        "#lobby~2",
        "!abcdefghijk",
        "junk",
    ]


def test_a_stop_waits_for_the_chunk_being_delivered_and_saved() -> None:
    """SIGINT lands in the main thread while a room thread is mid-chunk: the run ends only
    after that chunk is written and saved, and no other chunk starts afterwards."""
    log: list[str] = []
    mid_chunk = threading.Event()
    signalled = threading.Event()

    def run(job: RoomJob, lock: Any) -> None:
        if job.label == "busy":
            with lock:
                log.append("write")
                mid_chunk.set()
                signalled.wait(5)
                # Give the main thread every chance to (wrongly) leave before the save.
                threading.Event().wait(0.2)
                log.append("save")
        else:
            mid_chunk.wait(5)
            signalled.wait(5)
            threading.Event().wait(0.4)
            with lock:
                log.append("other chunk")  # must never happen: the main thread holds the lock

    def send_sigint() -> None:
        mid_chunk.wait(5)
        os.kill(os.getpid(), signal.SIGINT)
        signalled.set()

    jobs = [RoomJob("a", "busy", session=object()), RoomJob("b", "idle", session=object())]  # type: ignore[arg-type]
    threading.Thread(target=send_sigint, daemon=True).start()
    with pytest.raises(Stopped) as stop, signals.installed():
        follow_rooms(jobs, run, concurrent=True, failed=lambda *_: None)
    assert stop.value.exit_code == EXIT_SIGINT
    assert log == ["write", "save"]
    threading.Event().wait(0.5)
    assert log == ["write", "save"]


def test_from_token_with_several_rooms_is_a_usage_error(peek: Any) -> None:
    result = peek("watch", ROOM, ROOM2, "--from", "s1", "-s", HS)
    assert result.exit_code == 2
    assert "--from goes with one ROOM" in result.stderr


def test_a_given_token_is_never_sent_to_a_second_homeserver(
    hs: FakeHomeserver, two: FakeHomeserver, peek: Any
) -> None:
    hs.chain([message(1)])
    two.chain([message(7, room=ROOM2)])
    result = peek(
        "snapshot", ROOM, ROOM2, "--json", "--history", "0", env={"PEEK_ACCESS_TOKEN": "tok-a"}
    )
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert result.exit_code == 2
    assert "the given token belongs to" in result.stderr and "tok-a" not in result.stderr
    sent_to_two = [
        c
        for c in hs.rsps.calls
        if c.request.url.startswith(HS2) and c.request.headers.get("Authorization")
    ]
    assert sent_to_two == []


def test_a_room_whose_server_is_down_at_first_is_followed_once_it_answers(
    hs: FakeHomeserver, peek: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other rooms do not wait for it, and it is not given up on: its first contact is
    retried (in its own turn) like any request of the stream."""
    refused = [requests.exceptions.ConnectionError("Connection refused")] * 2

    class Flaky(FakeHomeserver):
        def _register(self, request: Any) -> tuple[int, dict[str, str], str]:
            if refused:
                raise refused.pop(0)
            return super()._register(request)

    discoverable(hs)
    two = discoverable(Flaky(hs.rsps, base=HS2, room=ROOM2).install())
    monkeypatch.setattr(retry, "pause", lambda _s: None)
    hs.chain([message(1)])
    two.chain([message(7, room=ROOM2)])
    result = peek("snapshot", ROOM, ROOM2, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev7"]
    assert "retrying while the other rooms go on" in result.stderr
    assert refused == []


def test_empty_long_poll_replies_leave_the_saved_position_alone(
    hs: FakeHomeserver, peek: Any, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle room costs no state write per reply (a thousand rooms: a thousand writes per
    timeout round), and the position that stays saved still resumes exactly once."""
    monkeypatch.setattr(retry, "pause", lambda _s: None)
    discoverable(hs)
    seen: list[tuple[str, str]] = []

    def quiet(end: str) -> Any:
        def reply(params: dict[str, str]) -> dict[str, Any]:
            pos = saved(state_file)["positions"][HS][ROOM]
            seen.append((pos["token"], pos["updated"]))
            return {"chunk": [], "start": params["from"], "end": end}

        return reply

    # Synapse answers an idle long-poll with a new `end` when other rooms moved the stream.
    hs.events_by_token.update({"t0": quiet("t0a"), "t0a": quiet("t0b")})
    hs.events_by_token["t0b"] = {"chunk": [message(1)], "start": "t0b", "end": "t1"}
    result = peek("watch", ROOM, "--json", "--history", "0", "--max-events", "1")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert len(seen) == 2 and seen[0] == seen[1] and seen[0][0] == "t0"
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "t1"
    # The next run resumes from there, through quiet polls again, and prints only what is new.
    hs.events_by_token.update({"t1": quiet("t1a"), "t1a": quiet("t1b")})
    hs.events_by_token["t1b"] = {"chunk": [message(2)], "start": "t1b", "end": "t2"}
    again = peek("watch", ROOM, "--json", "--max-events", "1")
    assert again.exit_code == 0, again.stderr
    assert [e["event_id"] for e in lines(again)] == ["$ev2"]
    assert seen[2:] == [seen[2]] * 2 and seen[2][0] == "t1"
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "t2"
