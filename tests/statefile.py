"""Read and edit a peek state database the way a user with `sqlite3` would, for assertions.

`saved()` gives the database back in the shape of the JSON state file of earlier versions
(`{"version": 1, "positions": {homeserver: {room: {...}}}, "aliases": …}`), so tests can say
what was saved without going through peek's own reading code.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


def _connect(path: Path) -> sqlite3.Connection:
    assert path.read_bytes()[:16] == b"SQLite format 3\x00", f"{path} is not a SQLite database"
    return sqlite3.connect(path, timeout=30)


def saved(path: Path) -> dict[str, Any]:
    """The whole state, as a JSON-like document."""
    conn = _connect(path)
    try:
        doc: dict[str, Any] = {"version": conn.execute("PRAGMA user_version").fetchone()[0]}
        for hs, room, text in conn.execute("SELECT homeserver, room_id, doc FROM positions"):
            doc.setdefault("positions", {}).setdefault(hs, {})[room] = json.loads(text)
        for table in ("aliases", "redirects"):
            for hs, key, value in conn.execute(f"SELECT * FROM {table}"):
                doc.setdefault(table, {}).setdefault(hs, {})[key] = value
        for name, url, checked in conn.execute("SELECT * FROM discovery"):
            doc.setdefault("discovery", {})[name] = {"base_url": url, "checked": checked}
        return doc
    finally:
        conn.close()


def write_saved(path: Path, doc: dict[str, Any]) -> None:
    """Replace the whole state by `doc` (a hand edit), in one transaction."""
    conn = _connect(path)
    try:
        with conn:
            for table in ("positions", "aliases", "redirects", "discovery"):
                conn.execute(f"DELETE FROM {table}")
            for hs, rooms in doc.get("positions", {}).items():
                for room, entry in rooms.items():
                    conn.execute(
                        "INSERT INTO positions VALUES (?, ?, ?)", (hs, room, json.dumps(entry))
                    )
            for table in ("aliases", "redirects"):
                for hs, entries in doc.get(table, {}).items():
                    for key, value in entries.items():
                        conn.execute(f"INSERT INTO {table} VALUES (?, ?, ?)", (hs, key, value))
            for name, entry in doc.get("discovery", {}).items():
                conn.execute(
                    "INSERT INTO discovery VALUES (?, ?, ?)",
                    (name, entry["base_url"], entry.get("checked")),
                )
    finally:
        conn.close()


def saved_position(path: Path, homeserver: str, room: str) -> dict[str, Any] | None:
    """One room's saved position (None if there is none yet, or no state file)."""
    if not path.exists():
        return None
    conn = _connect(path)
    try:
        row = conn.execute(
            "SELECT doc FROM positions WHERE homeserver = ? AND room_id = ?", (homeserver, room)
        ).fetchone()
        return json.loads(row[0]) if row else None
    finally:
        conn.close()
