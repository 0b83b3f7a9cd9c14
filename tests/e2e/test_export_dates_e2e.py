"""`peek export --until` against the real Synapse: the walk starts at the date, not at today."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.peekproc import json_lines, run_peek
from tests.homeserver import Homeserver, User


def test_until_jumps_with_timestamp_to_event(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    room = synapse.create_room(alice, world_readable=True, name="Dates")
    ids = [synapse.send_text(alice, room, f"message {i}") for i in range(12)]
    base = ["export", room, "--homeserver", synapse.base_url]
    full = json_lines(run_peek(*base, state_file=tmp_path / "s").stdout)
    cut = next(e["origin_server_ts"] for e in full if e["event_id"] == ids[5])
    until = datetime.fromtimestamp(cut / 1000, UTC).isoformat(timespec="milliseconds")
    wanted = [e["event_id"] for e in full if e["origin_server_ts"] <= cut]
    assert ids[5] in wanted and ids[6] not in wanted
    # Synapse answers timestamp_to_event to members only (403 to a guest): alice's token.
    member = run_peek(
        "-v",
        *base,
        "--until",
        until,
        state_file=tmp_path / "s",
        PEEK_ACCESS_TOKEN=alice.access_token,
    )
    assert member.returncode == 0, member.stderr
    as_member = json_lines(
        run_peek(*base, state_file=tmp_path / "s", PEEK_ACCESS_TOKEN=alice.access_token).stdout
    )  # a member sees the room's first events too, from before it was world-readable
    assert [e["event_id"] for e in json_lines(member.stdout)] == [
        e["event_id"] for e in as_member if e["origin_server_ts"] <= cut
    ]
    log = member.stderr
    assert "/timestamp_to_event → 200" in log, log
    assert "→ 200" in log.split("/context/", 1)[1].split("\n", 1)[0]
    # The first page starts at the date: none of the six later messages is fetched.
    assert log.count("/messages → 200") <= 2
    # A guest is refused the jump and walks back from the end: the same events.
    guest = run_peek("-v", *base, "--until", until, state_file=tmp_path / "s")
    assert guest.returncode == 0, guest.stderr
    assert [e["event_id"] for e in json_lines(guest.stdout)] == wanted
    assert "/timestamp_to_event → 403" in guest.stderr
