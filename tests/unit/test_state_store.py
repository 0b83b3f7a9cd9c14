"""The state database: one row per room, an old JSON state imported once, safe for several
processes, and a save that costs the same with 1 or 1,000 rooms saved."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from peekcli.cli import cli
from peekcli.state import Position, StateStore
from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

OLD_DOC = {
    "version": 1,
    "positions": {
        HS: {
            ROOM: {"token": "t7", "alias": "#lobby:hs.test", "last_event_id": "$ev7"},
            "!two:hs.test": {"token": "u1", "kind": "messages", "updated": "2026-01-01T00:00:00"},
        }
    },
    "aliases": {HS: {"#lobby:hs.test": ROOM}},
    "redirects": {HS: {"!old:hs.test": ROOM}},
    "discovery": {"hs.test": {"base_url": HS, "checked": "2026-01-02T00:00:00+00:00"}},
}


def state_list(state_file: Path | None = None) -> list[dict[str, Any]]:
    args = ["state", "list", "--json"] + (["--state-file", str(state_file)] if state_file else [])
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return lines(result)


def test_the_default_state_json_of_an_earlier_peek_is_imported_once(tmp_path: Path) -> None:
    folder = tmp_path / "xdg-state" / "peek"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps(OLD_DOC))
    rows = state_list()
    assert [(r["room_id"], r["alias"], r["position"], r["kind"]) for r in rows] == [
        (ROOM, "#lobby:hs.test", "t7", "events"),
        ("!two:hs.test", None, "u1", "messages"),
    ]
    # Everything came over, the JSON stays beside as a backup, and is not read again.
    doc = saved(folder / "state.db")
    assert {k: doc[k] for k in ("aliases", "redirects", "discovery")} == {
        k: OLD_DOC[k] for k in ("aliases", "redirects", "discovery")
    }
    assert doc["positions"][HS][ROOM] == {
        "token": "t7",
        "kind": "events",
        "alias": "#lobby:hs.test",
        "last_event_id": "$ev7",
        "partial": False,
    }
    assert not (folder / "state.json").exists()
    assert json.loads((folder / "state.json.imported").read_text()) == OLD_DOC
    (folder / "state.json").write_text(json.dumps({"version": 1, "positions": {}}))
    assert len(state_list()) == 2
    assert stat.S_IMODE(os.stat(folder / "state.db").st_mode) == 0o600


def test_a_json_state_file_given_by_path_becomes_a_database_in_place(
    hs: FakeHomeserver, tmp_path: Path
) -> None:
    state_file = tmp_path / "profile.json"
    state_file.write_text(json.dumps(OLD_DOC))
    hs.chain([message(8)])
    hs.events_by_token["t7"] = hs.events_by_token.pop("t0")
    args = ["snapshot", ROOM, "-s", HS, "--json", "--state-file", str(state_file)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev8"]  # resumed from the imported t7
    assert state_file.read_bytes().startswith(b"SQLite format 3\x00")
    assert saved(state_file)["positions"][HS][ROOM]["token"] == "t1"
    assert json.loads(state_file.with_name("profile.json.imported").read_text()) == OLD_DOC


def test_a_new_state_file_is_never_empty_and_has_every_table(tmp_path: Path) -> None:
    """An empty file would be mistaken for a truncated one by another peek starting now."""
    path = tmp_path / "new" / "state.db"
    StateStore(path).remember_alias(HS, "#a:hs.test", ROOM)
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert saved(path) == {"version": 1, "aliases": {HS: {"#a:hs.test": ROOM}}}
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_a_database_that_lost_its_tables_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).save(HS, ROOM, Position("t1"))
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE positions")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(cli, ["state", "list", "--state-file", str(path)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"peek: state file {path} is corrupt (tables missing); move it aside to start over\n"
    )


def test_a_damaged_database_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).save(HS, ROOM, Position("t1"))
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page's b-tree, scribbled over
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["state", "list", "--state-file", str(path)])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"peek: state file {path} is corrupt (")
    assert "Traceback" not in result.stderr


_WRITER = """
import sys
from pathlib import Path
from peekcli.state import Position, StateStore
store = StateStore(Path(sys.argv[1]))
for n in range(int(sys.argv[3])):
    store.save("https://hs.test", f"!{sys.argv[2]}{n}:hs.test", Position(f"t{n}"))
    store.remember_alias("https://hs.test", f"#{sys.argv[2]}{n}:hs.test", f"!{sys.argv[2]}{n}")
"""


def test_two_processes_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name, "150"])
        for name in ("a", "b", "c")
    ]
    assert [w.wait(60) for w in writers] == [0, 0, 0]
    doc = saved(path)
    assert len(doc["positions"][HS]) == 450 and len(doc["aliases"][HS]) == 450
    assert doc["positions"][HS]["!b149:hs.test"]["token"] == "t149"


def test_kill_9_in_the_middle_of_saves_leaves_a_sound_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).save(HS, ROOM, Position("t0"))
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), "k", "100000"], stderr=subprocess.PIPE
    )
    while len(saved(path).get("aliases", {}).get(HS, {})) < 20:
        assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
    writer.kill()
    writer.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    doc = saved(path)
    # Every save is whole: a room's alias is only written after its position.
    assert set(doc["aliases"][HS]) <= {
        f"#{r[1:].split(':')[0]}:hs.test" for r in doc["positions"][HS]
    }
    assert StateStore(path).get(HS, ROOM) == Position(
        "t0", updated=doc["positions"][HS][ROOM]["updated"]
    )


def _wal_growth(path: Path, rooms: int) -> int:
    store = StateStore(path)
    for n in range(rooms):
        store.save(HS, f"!r{n:04}:hs.test", Position(f"s{n}_0", last_event_id=f"$e{n}"))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    wal = path.with_name(path.name + "-wal")
    before = wal.stat().st_size
    store.save(HS, "!r0000:hs.test", Position("s0_1", last_event_id="$e0b"))
    return wal.stat().st_size - before


def test_saving_a_position_writes_as_much_with_1000_rooms_as_with_1(tmp_path: Path) -> None:
    one = _wal_growth(tmp_path / "one.db", 1)
    thousand = _wal_growth(tmp_path / "thousand.db", 1000)
    assert one > 0
    assert thousand <= one  # the room's own page, not the whole file
