"""`peek watch` / `peek snapshot` against a scripted homeserver: output, positions, auth, errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message


def test_fresh_watch_prints_history_then_live_events_and_saves_position(
    hs: FakeHomeserver, peek, state_file: Path
) -> None:
    hs.history = [message(1), message(2), message(3)]
    hs.chain([message(4), message(5)])
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "2", "--max-events", "4")
    assert result.exit_code == 0, result.stderr
    assert lines(result) == [message(2), message(3), message(4), message(5)]
    pos = saved(state_file)["positions"][HS][ROOM]
    assert pos["token"] == "t1" and pos["last_event_id"] == "$ev5"
    assert saved(state_file)["version"] == 1


def test_json_lines_are_the_servers_objects_unwrapped(hs: FakeHomeserver, peek) -> None:
    odd = message(1, body="ünïcødé \u202e and \x1b[2J")
    odd["unsigned"] = {"age": 5, "nested": [1, 2, {"k": None}]}
    hs.chain([odd])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == odd
    # No raw escape or bidi control reaches the terminal, even in JSON mode.
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout


def test_second_run_resumes_exactly_after_the_last_delivered_event(
    hs: FakeHomeserver, peek, state_file: Path
) -> None:
    hs.chain([message(1), message(2), message(3)], [message(4)])
    first = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "2")
    assert [e["event_id"] for e in lines(first)] == ["$ev1", "$ev2"]
    # Stopped inside the chunk: the chunk's start is kept with the last delivered id.
    pos = saved(state_file)["positions"][HS][ROOM]
    assert (pos["token"], pos["last_event_id"], pos["partial"]) == ("t0", "$ev2", True)
    second = peek("snapshot", ROOM, "-s", HS, "--json")
    assert [e["event_id"] for e in lines(second)] == ["$ev3", "$ev4"]
    assert second.stderr == ""
    third = peek("snapshot", ROOM, "-s", HS, "--json")
    assert third.exit_code == 0 and third.stdout == ""
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "t2"


def test_saved_position_means_no_history_and_no_initial_sync(hs: FakeHomeserver, peek) -> None:
    hs.history = [message(1)]
    hs.chain([message(2)])
    peek("snapshot", ROOM, "-s", HS, "--json")
    before = len(hs.calls("initialSync"))
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.stdout == "" and len(hs.calls("initialSync")) == before == 1


def test_server_replaying_delivered_events_is_deduplicated_with_a_warning(
    hs: FakeHomeserver, peek
) -> None:
    hs.chain([message(1), message(2)])
    peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    # A quirky server answers the saved token with the old events again plus a new one.
    hs.events_by_token["t1"] = {"chunk": [message(1), message(2), message(3)], "end": "t9"}
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert [e["event_id"] for e in lines(result)] == ["$ev3"]
    assert "already delivered" in result.stderr


def test_snapshot_drains_every_chunk_asking_for_big_batches(hs: FakeHomeserver, peek) -> None:
    hs.chain([message(1)], [message(2), message(3)], [message(4)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2", "$ev3", "$ev4"]
    for call in hs.calls("/events"):
        assert "timeout=0" in call.request.url and "limit=1000" in call.request.url


def test_from_and_reset(hs: FakeHomeserver, peek, state_file: Path) -> None:
    hs.chain([message(1)], [message(2)])
    peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    again = peek("snapshot", ROOM, "-s", HS, "--json", "--from", "t1")
    assert [e["event_id"] for e in lines(again)] == ["$ev2"]
    hs.history = [message(0)]
    reset = peek("snapshot", ROOM, "-s", HS, "--json", "--reset", "--history", "1")
    assert [e["event_id"] for e in lines(reset)] == ["$ev0", "$ev1", "$ev2"]


def test_ephemeral_events_only_with_flag(hs: FakeHomeserver, peek) -> None:
    typing = {"type": "m.typing", "room_id": ROOM, "content": {"user_ids": ["@a:hs.test"]}}
    presence = {"type": "m.presence", "sender": "@a:hs.test", "content": {"presence": "online"}}
    hs.chain([typing, message(1), presence])
    plain = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert lines(plain) == [message(1)]
    eph = peek("snapshot", ROOM, "-s", HS, "--json", "--reset", "--ephemeral", "--history", "0")
    assert lines(eph) == [typing, message(1), presence]


def test_pretty_output_survives_ephemeral_and_odd_events(hs: FakeHomeserver, peek) -> None:
    weird = {"type": "m.receipt", "content": {"$x": {}}}
    hs.chain([weird, message(1, body="hello"), {"type": 5, "content": "nope", "event_id": "$z"}])
    result = peek("snapshot", ROOM, "-s", HS, "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert "hello" in result.stdout


def test_guest_is_registered_once_stored_privately_and_sent_as_bearer(
    hs: FakeHomeserver, peek, state_file: Path
) -> None:
    hs.chain([message(1)])
    peek("snapshot", ROOM, "-s", HS, "--json")
    peek("snapshot", ROOM, "-s", HS, "--json")
    assert hs.guests == 1
    creds_file = state_file.with_name("credentials.json")
    creds = json.loads(creds_file.read_text())
    assert creds["homeservers"][HS]["guest"]["access_token"] == "guest-token-1"
    assert stat.S_IMODE(os.stat(creds_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state_file.parent).st_mode) == 0o700
    # The state database and its journal and lock files: 0600, and never a token in them.
    state_files = list(state_file.parent.glob(state_file.name + "*"))
    assert state_file in state_files and len(state_files) >= 2
    for path in state_files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        assert b"guest-token" not in path.read_bytes()
    for call in hs.calls("/events") + hs.calls("initialSync"):
        assert call.request.headers["Authorization"] == "Bearer guest-token-1"
        assert "access_token" not in call.request.url


def test_given_token_is_used_and_no_guest_registered(hs: FakeHomeserver, peek) -> None:
    hs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", env={"PEEK_ACCESS_TOKEN": "secret-tok"})
    assert result.exit_code == 0 and hs.guests == 0
    assert all(
        c.request.headers["Authorization"] == "Bearer secret-tok" for c in hs.calls("/events")
    )


def test_rejected_guest_token_is_replaced_and_the_stream_continues(
    hs: FakeHomeserver, peek
) -> None:
    hs.chain([message(1)])
    peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    hs.events_by_token["t1"] = lambda params: (
        (401, {"errcode": "M_UNKNOWN_TOKEN", "error": "expired"})
        if hs.guests == 1
        else {"chunk": [message(2)], "end": "t2"}
    )
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev2"] and hs.guests == 2


def test_rejected_user_token_exits_5_without_leaking_it(hs: FakeHomeserver, peek) -> None:
    hs.events_by_token["t0"] = (401, {"errcode": "M_UNKNOWN_TOKEN", "error": "bad"})
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0", "--token", "supersecret")
    assert result.exit_code == 5
    assert "rejected" in result.stderr and "supersecret" not in result.stderr + result.stdout


def test_forbidden_room_exits_3(hs: FakeHomeserver, peek) -> None:
    hs.initial_error = (403, {"errcode": "M_FORBIDDEN", "error": "Guest access not allowed"})
    result = peek("watch", ROOM, "-s", HS, "--json")
    assert result.exit_code == 3
    assert "not world-readable" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_alias_exits_4(hs: FakeHomeserver, peek) -> None:
    hs.rsps.add(
        "GET",
        f"{HS}/_matrix/client/v3/directory/room/%23nope%3Ahs.test",
        status=404,
        json={"errcode": "M_NOT_FOUND", "error": "Room alias not found"},
    )
    result = peek("watch", "#nope:hs.test", "-s", HS, "--json")
    assert result.exit_code == 4
    assert result.stderr.startswith("peek: room alias #nope:hs.test not found")


def test_alias_is_resolved_and_remembered(hs: FakeHomeserver, peek, state_file: Path) -> None:
    hs.rsps.add(
        "GET",
        f"{HS}/_matrix/client/v3/directory/room/%23lobby%3Ahs.test",
        json={"room_id": ROOM, "servers": ["hs.test"]},
    )
    hs.chain([message(1)])
    result = peek("snapshot", "#lobby:hs.test", "-s", HS, "--json", "--history", "0")
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    doc = saved(state_file)
    assert doc["positions"][HS][ROOM]["alias"] == "#lobby:hs.test"
    assert doc["aliases"][HS]["#lobby:hs.test"] == ROOM


def test_bad_from_token_names_the_room_and_suggests_reset(hs: FakeHomeserver, peek) -> None:
    hs.events_by_token["garbage"] = (
        400,
        {"errcode": "M_UNKNOWN", "error": "Invalid stream token"},
    )
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--from", "garbage")
    assert result.exit_code == 1
    assert ROOM in result.stderr and "--reset" in result.stderr


def test_refused_token_is_named_as_given_or_as_saved(hs: FakeHomeserver, peek) -> None:
    """A refused `--from` is the user's token: calling it "the saved position" and offering
    --reset (which keeps --from) sent users in a circle."""
    invalid = (400, {"errcode": "M_UNKNOWN", "error": "Invalid stream token"})
    hs.events_by_token["garbage"] = invalid
    given = peek("snapshot", ROOM, "-s", HS, "--json", "--from", "garbage")
    assert given.exit_code == 1
    assert given.stderr.startswith(f"peek: the --from token for {ROOM} was refused")
    assert "leave out --from" in given.stderr and "saved position" not in given.stderr
    hs.events_by_token["t0"] = invalid  # initialSync's token, saved by the first run
    assert peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0").exit_code == 1
    saved_one = peek("snapshot", ROOM, "-s", HS, "--json")
    assert saved_one.exit_code == 1
    assert saved_one.stderr.startswith(f"peek: the saved position for {ROOM} was refused")
    assert "start over with --reset" in saved_one.stderr


def test_dendrite_style_stub_is_not_polled_for_ever(hs: FakeHomeserver, peek) -> None:
    hs.events_by_token["t0"] = {"chunk": [], "start": "", "end": ""}
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--stream", "events")
    assert result.exit_code == 8
    assert "does not implement room peeking" in result.stderr
    assert len(hs.calls("/events")) == 1


def test_non_json_reply_after_retries_exits_1_and_keeps_state(
    hs: FakeHomeserver, peek, state_file: Path
) -> None:
    hs.chain([message(1)])
    peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    before = saved(state_file)
    hs.events_by_token["t1"] = (200, "<html>gateway</html>")
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--max-retries", "0")
    assert result.exit_code == 1 and "not JSON" in result.stderr
    assert saved(state_file) == before


def test_corrupt_state_file_is_reported_and_left_alone(
    hs: FakeHomeserver, peek, state_file: Path
) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_text('{"version": 1, "positions": {')
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 1
    assert str(state_file) in result.stderr and "corrupt" in result.stderr
    assert state_file.read_text() == '{"version": 1, "positions": {'


def test_room_without_server_needs_a_homeserver(peek) -> None:
    result = peek("watch", "!opaqueid", "--json")
    assert result.exit_code == 2 and "--homeserver" in result.stderr


def test_bad_room_argument_is_a_usage_error(peek) -> None:
    result = peek("watch", "lobby", "--json")
    assert result.exit_code == 2 and "not a room" in result.stderr


def test_forgotten_stored_guest_is_replaced_on_a_first_run(
    hs: FakeHomeserver, peek, state_file: Path
) -> None:
    """The server lost the stored guest before any position was saved: initialSync refuses it."""
    state_file.parent.mkdir(parents=True)
    stale = {"access_token": "stale", "user_id": "@old:hs.test"}
    doc = {"version": 1, "homeservers": {HS: {"guest": stale}}}
    state_file.with_name("credentials.json").write_text(json.dumps(doc))
    hs.rejected_tokens.add("stale")
    hs.history = [message(1)]
    hs.chain([])
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert lines(result) == [message(1)] and hs.guests == 1
    stored = json.loads(state_file.with_name("credentials.json").read_text())
    assert stored["homeservers"][HS]["guest"]["access_token"] == "guest-token-1"


def test_a_first_run_during_an_outage_retries_initial_sync(
    hs: FakeHomeserver, peek, monkeypatch
) -> None:
    import peekcli.retry

    waits: list[float] = []
    monkeypatch.setattr(peekcli.retry, "pause", waits.append)
    hs.history = [message(1)]
    hs.chain([])
    failures = iter([(503, {"errcode": "M_UNKNOWN", "error": "down"})] * 2)
    real = hs._initial_sync

    def flaky(request):
        failure = next(failures, None)
        if failure is not None:
            return failure[0], {}, json.dumps(failure[1])
        return real(request)

    hs.initial_sync_handler = flaky
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert lines(result) == [message(1)] and len(waits) == 2
    assert "retrying" in result.stderr and "connection restored" in result.stderr
