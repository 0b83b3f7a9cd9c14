"""The state database (positions) and the credentials file.

State: one SQLite database (WAL, one row per room). Saving a room's position is one small
transaction, whatever the number of rooms: atomic and crash/kill-safe by SQLite's journal, safe for
several peek processes by SQLite's locking. Room locks are byte-range locks in one `NAME.lock` file
beside the state file: no open file per room, and scoped to the state file they protect. A JSON
state file from an earlier peek is imported once (and kept as `NAME.imported`).

Credentials: a small JSON document, read-modify-write under an exclusive `flock` on a sibling
`.lock` file, written to a temp file in the same directory, fsynced and moved into place with
`os.replace`: a crash, a kill or a full disk leaves the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from peekcli.errors import AlreadyFollowed, BusyError, StateFileError, StateNotWritable

SCHEMA_VERSION = 1
#: Sections that map a key (homeserver, server name) to an object.
_MAPS = ("positions", "aliases", "homeservers", "discovery", "redirects")
T = TypeVar("T")
Doc = dict[str, Any]


def _notice(message: str) -> None:
    import sys

    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"peek: {message}\n")
        sys.stderr.flush()


#: Where a wait for a lock held by another process is told: the run's own notice (so `peek -q`
#: silences it), given to the store; a plain line on stderr where none was given.
Notice = Callable[[str], None]
#: How often a wait for a lock held elsewhere looks again (and for a stop signal).
LOCK_POLL = 0.1
#: A wait longer than this is announced.
NOTICE_AFTER = 1.0


def wait_for(
    try_once: Callable[[], bool], what: str, limit: float | None = None, notice: Notice = _notice
) -> None:
    """Call `try_once` until it succeeds: say once (`notice`) that peek waits for `what`, give up at
    once on SIGINT/SIGTERM (even inside a deferred section: nothing is written yet) or, with a
    `limit`, after that many seconds (StateFileError)."""
    from peekcli import signals

    if try_once():
        return
    started = time.monotonic()
    told = False
    while True:
        signals.stop_now()
        waited = time.monotonic() - started
        if limit is not None and waited > limit:
            raise StateFileError(
                f"gave up waiting for {what}: another process held it {limit:.0f} s"
            )
        if not told and waited >= NOTICE_AFTER:  # not for the moments of a busy neighbour
            notice(f"waiting for {what} (held by another process)…")
            told = True
        time.sleep(LOCK_POLL)
        if try_once():
            return


def make_private_dir(path: Path) -> None:
    """Create `path` and its missing parents 0700 (`mkdir -p` would make the parents with the
    umask alone: 0777 under umask 000)."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateFileError(f"cannot create {directory}: {exc.strerror}") from None


#: What a write into a folder this user may not write to fails with.
READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def read_only(path: Path, what: str, strerror: str | None) -> StateNotWritable:
    """The one message for a save refused because `path`'s folder is read-only."""
    return StateNotWritable(f"cannot save the {what}: {path.parent} is read-only ({strerror})")


def open_lock_file(path: Path, what: str = "state file") -> int:
    """The lock file's descriptor, never through a symbolic link (one planted in a shared
    directory would make peek create or lock a file of the attacker's choosing)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateFileError(f"the lock file {path} is a symbolic link: refused") from None
        if exc.errno in READ_ONLY_ERRNOS:
            raise read_only(path, what, exc.strerror) from None
        raise StateFileError(f"cannot open the lock file {path}: {exc.strerror}") from None


def default_state_path() -> Path:
    import platformdirs

    return platformdirs.user_state_path("peek") / "state.db"


def credentials_path_for(state_path: Path) -> Path:
    """Credentials live beside the state file, so `--state-file` isolates both (tests, profiles)."""
    env = os.environ.get("PEEK_CREDENTIALS_FILE")
    return Path(env) if env else state_path.with_name("credentials.json")


@dataclass
class Position:
    """Where a room's stream stands: resume by asking for events after `token`.

    `last_event_id` is the id of the last event delivered. When `token` is the start of a chunk
    that was only partly delivered (stopped by `--max-events`, a signal or a closed pipe), the
    next run fetches that chunk again and skips everything up to and including this event.
    """

    token: str
    kind: str = "events"
    last_event_id: str | None = None
    alias: str | None = None
    partial: bool = False
    updated: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: Any) -> Position | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("token"), str):
            return None
        known = {k: doc.get(k) for k in ("kind", "last_event_id", "alias", "partial", "updated")}
        extra = {k: v for k, v in doc.items() if k not in known and k != "token"}
        return cls(
            token=doc["token"],
            kind=known["kind"] if isinstance(known["kind"], str) else "events",
            last_event_id=known["last_event_id"]
            if isinstance(known["last_event_id"], str)
            else None,
            alias=known["alias"] if isinstance(known["alias"], str) else None,
            partial=known["partial"] is True,
            updated=known["updated"] if isinstance(known["updated"], str) else None,
            extra=extra,
        )

    def to_doc(self) -> Doc:
        doc = asdict(self)
        extra = doc.pop("extra")
        return {**extra, **{k: v for k, v in doc.items() if v is not None}}


class JsonFile:
    """A locked, atomically replaced JSON document with a `version` field."""

    def __init__(self, path: Path, what: str, notice: Notice = _notice) -> None:
        self.path = path
        self.what = what
        self.lock_path = path.with_name(path.name + ".lock")
        self.notice = notice

    def _ensure_dir(self) -> None:
        make_private_dir(self.path.parent)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's exclusive lock (short: one read-modify-write)."""
        self._ensure_dir()
        fd = open_lock_file(self.lock_path, self.what)

        def take() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            wait_for(take, f"the lock of {self.what} {self.path}", notice=self.notice)
            self._remove_stale_temps()
            yield
        finally:
            os.close(fd)

    def _remove_stale_temps(self) -> None:
        """Temp files a killed writer left (`.NAME.*.tmp`): under the lock none is being written."""
        with contextlib.suppress(OSError):
            for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                with contextlib.suppress(OSError):
                    if tmp.is_file() and not tmp.is_symlink():
                        tmp.unlink()

    def read(self) -> Doc:
        """The document, or an empty one if the file does not exist yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": SCHEMA_VERSION}
        except OSError as exc:
            raise StateFileError(f"cannot read {self.what} {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            raise StateFileError(
                f"{self.what} {self.path} is corrupt ({why}); move it aside to start over"
            ) from None
        if not isinstance(doc, dict):
            raise StateFileError(
                f"{self.what} {self.path} is corrupt (not a JSON object); move it aside to "
                "start over"
            )
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise StateFileError(
                f"{self.what} {self.path} is corrupt (no schema version); move it aside to "
                "start over"
            )
        if version > SCHEMA_VERSION:
            raise StateFileError(
                f"{self.what} {self.path} has schema version {version!r}; this peek reads "
                f"version {SCHEMA_VERSION} (upgrade peek)"
            )
        for key in _MAPS:
            # Readers index these two levels deep: a wrong shape is corruption, not a crash.
            section = doc.get(key, {})
            if not isinstance(section, dict) or not all(
                isinstance(v, dict) for v in section.values()
            ):
                raise StateFileError(
                    f"{self.what} {self.path} is corrupt ({key!r} has the wrong shape); move it "
                    "aside to start over"
                )
        return doc

    def _write(self, doc: Doc) -> None:
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        tmp_name: str | None = None
        try:
            fd, tmp_name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, self.path)
            tmp_name = None
            _fsync_dir(self.path.parent)
        except OSError as exc:
            if exc.errno in READ_ONLY_ERRNOS:
                raise read_only(self.path, self.what, exc.strerror) from None
            reason = "disk full" if exc.errno == errno.ENOSPC else exc.strerror
            raise StateFileError(f"cannot write {self.what} {self.path}: {reason}") from None
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def update(self, change: Callable[[Doc], T]) -> T:
        """Apply `change` to the current document under the lock and write it back atomically."""
        with self.locked():
            doc = self.read()
            result = change(doc)
            doc["version"] = SCHEMA_VERSION
            self._write(doc)
            return result


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


#: The first bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
#: How long a write waits for another process's transaction (each is one small row) before
#: the state file is reported as stuck.
BUSY_TIMEOUT = 60.0
#: Byte 0 of the lock file serialises the one-time JSON import; rooms lock bytes from 1 on.
_IMPORT_BYTE = 0
_ROOM_BYTES = 1 << 62

_TABLES = (
    "CREATE TABLE IF NOT EXISTS positions (homeserver TEXT NOT NULL, room_id TEXT NOT NULL,"
    " doc TEXT NOT NULL, PRIMARY KEY (homeserver, room_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS aliases (homeserver TEXT NOT NULL, alias TEXT NOT NULL,"
    " room_id TEXT NOT NULL, PRIMARY KEY (homeserver, alias)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS redirects (homeserver TEXT NOT NULL, old_room TEXT NOT NULL,"
    " new_room TEXT NOT NULL, PRIMARY KEY (homeserver, old_room)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS discovery (server_name TEXT NOT NULL PRIMARY KEY,"
    " base_url TEXT NOT NULL, checked TEXT) WITHOUT ROWID",
)
Row = tuple[Any, ...]


def legacy_json_path(path: Path) -> Path | None:
    """The JSON state an earlier peek kept where the default database now lives, if any."""
    return path.with_name("state.json") if path.name == "state.db" else None


class _Database:
    """One SQLite connection and one lock file per state file, shared by the process's threads.

    One connection (not one per room or thread) keeps a thousand rooms at three open files;
    `guard` serialises the threads, SQLite's own locking serialises processes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.guard = threading.RLock()
        #: The run's notice for a wait on another process (set by the store that opens it).
        self.notice: Notice = _notice
        self.conn: sqlite3.Connection | None = None
        self.lock_fd: int | None = None
        #: Byte offsets of the room locks this process holds (threads of one run).
        self.held: set[int] = set()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self.conn is not None:
                self.conn.close()
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)

    # -- opening ------------------------------------------------------------------------------

    def _ensure_dir(self) -> None:
        make_private_dir(self.path.parent)

    def connection(self, *, create: bool) -> sqlite3.Connection | None:
        """The open connection; None when there is no state yet and `create` is false."""
        with self.guard:
            if self.conn is not None:
                return self.conn
            legacy = self._legacy_source()
            if not create and legacy is None and not self.path.exists():
                return None  # looking never creates anything
            self._ensure_dir()
            if legacy is not None:
                self._import(legacy)
            elif not self.path.exists():
                self._create()
            with self.errors("open"):
                # A short busy timeout: waits for another process are peek's (`_busy`), which
                # say so and stay interruptible; SQLite's own would be silent.
                conn = sqlite3.connect(
                    self.path, timeout=LOCK_POLL, isolation_level=None, check_same_thread=False
                )
                try:
                    self._busy(lambda: self._prepare(conn))
                except StateNotWritable:
                    conn.close()
                    if create:
                        raise
                    conn = self._read_only()
                except BaseException:
                    conn.close()
                    raise
            self.conn = conn
            return conn

    def _read_only(self) -> sqlite3.Connection:
        """A connection that only reads, for a state file in a folder this user may not write
        to (a cron job's state, read by another user's `peek rooms`): SQLite cannot make the
        WAL's -shm file beside it, so it opens the file read-only, or when even that needs the
        -shm file, as immutable (what other processes add meanwhile may then go unseen; this
        run reads a cache and saves nothing, so that is the price of working read-only)."""
        try:
            return self._open_read_only("mode=ro")
        except StateFileError:
            return self._open_read_only("mode=ro&immutable=1")

    def _open_read_only(self, query: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            f"{self.path.absolute().as_uri()}?{query}", uri=True, timeout=LOCK_POLL,
            isolation_level=None, check_same_thread=False,
        )  # fmt: skip
        try:
            version = self._busy(lambda: conn.execute("PRAGMA user_version").fetchone()[0])
            if version != SCHEMA_VERSION:  # an upgrade (or a newer peek's file) would write
                raise read_only(self.path, "state file", f"schema version {version}")
            self._busy(lambda: self._check(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when save() returns (power loss included), as with the
        # fsynced JSON file before; the cost is one fsync per save, whatever the room count.
        conn.execute("PRAGMA synchronous=FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            self._check(conn)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateFileError(
                    f"state file {self.path} has schema version {version}; this peek reads "
                    f"version {SCHEMA_VERSION} (upgrade peek)"
                )
            _create_tables(conn)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._check(conn)

    def _check(self, conn: sqlite3.Connection) -> None:
        """A database of the right version whose tables some other program dropped is corrupt."""
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not {"positions", "aliases", "redirects", "discovery"} <= names:
            raise StateFileError(
                f"state file {self.path} is corrupt (tables missing); move it aside to start over"
            )

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """SQLite's exceptions as one clear line each."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "readonly database" in text:  # its -wal/-shm cannot be made beside it
                raise read_only(self.path, "state file", "attempt to write") from None
            if "locked" in text or "busy" in text:
                reason = f"another process held it for {BUSY_TIMEOUT:.0f} s"
            elif "full" in text:
                reason = "disk full"
            else:
                reason = text
            raise StateFileError(f"cannot {doing} state file {self.path}: {reason}") from None
        except sqlite3.DatabaseError as exc:  # not a database, malformed pages
            raise StateFileError(
                f"state file {self.path} is corrupt ({exc}); move it aside to start over"
            ) from None

    # -- one-time import of the JSON state of earlier versions ---------------------------------

    def _legacy_source(self) -> Path | None:
        """The JSON state to import: this file (if not SQLite), or `state.json` by `state.db`."""
        header = _header(self.path)
        if header is not None:
            # peek never leaves an empty file (see _create): empty is a truncated JSON state.
            return self.path if header != SQLITE_MAGIC else None
        legacy = legacy_json_path(self.path)
        if legacy is not None and (old := _header(legacy)) and old != SQLITE_MAGIC:
            return legacy
        return None

    def _import(self, source: Path) -> None:
        """Copy a JSON state into a new database, once; the JSON stays as `NAME.imported`.

        Built in a temp file and moved into place, under the lock file's import byte: a crash
        leaves the JSON as it was, and a second peek starting at the same time finds it done.
        """
        fd = self.lock_file()
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, _IMPORT_BYTE)
        try:
            if self._legacy_source() != source:
                return  # another process imported it meanwhile
            doc = JsonFile(source, "state file").read()  # corrupt → the same clear errors
            backup = source.with_name(source.name + ".imported")
            tmp = self._build(doc)
            try:
                if source == self.path:
                    _write_copy(source, backup)
                for side in ("-wal", "-shm", "-journal"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path.with_name(self.path.name + side))
                os.replace(tmp, self.path)
                if source != self.path:
                    os.replace(source, backup)
                _fsync_dir(self.path.parent)
            except OSError as exc:
                raise StateFileError(
                    f"cannot import {source} into {self.path}: {exc.strerror}"
                ) from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, _IMPORT_BYTE)

    def _build(self, doc: Doc) -> str:
        try:
            fd, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".db"
            )
        except OSError as exc:
            if exc.errno in READ_ONLY_ERRNOS:
                raise read_only(self.path, "state file", exc.strerror) from None
            raise StateFileError(f"cannot create state file {self.path}: {exc.strerror}") from None
        os.close(fd)
        try:
            with self.errors("import into"):
                conn = sqlite3.connect(tmp, isolation_level=None)
                try:
                    conn.execute("BEGIN")
                    _create_tables(conn)
                    _fill(conn, doc)
                    conn.execute("COMMIT")
                    conn.execute("PRAGMA journal_mode=WAL")
                finally:
                    conn.close()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _create(self) -> None:
        """A new database, complete with its tables, appears at once (never as an empty file
        another peek could take for a truncated one)."""
        tmp = self._build({})
        try:
            os.link(tmp, self.path)
            _fsync_dir(self.path.parent)
        except FileExistsError:
            pass  # another peek created it first
        except OSError as exc:
            raise StateFileError(f"cannot create state file {self.path}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- transactions -------------------------------------------------------------------------

    def _busy(self, attempt: Callable[[], T]) -> T:
        """`attempt()`, again while another process holds the database (see `wait_for`)."""
        result: list[T] = []

        def once() -> bool:
            try:
                result.append(attempt())
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    return False
                raise
            return True

        with self.errors("use"):
            wait_for(once, f"the state file {self.path}", BUSY_TIMEOUT, self.notice)
        return result[0]

    def read(self, sql: str, args: Row = ()) -> list[Row]:
        with self.guard:
            conn = self.connection(create=False)
            if conn is None:
                return []
            with self.errors("read"):
                return self._busy(lambda: conn.execute(sql, args).fetchall())

    def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in one transaction: all of it is saved, or none of it."""
        with self.guard:
            conn = self.connection(create=True)
            assert conn is not None

            def attempt() -> T:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = change(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                return result

            with self.errors("write"):
                return self._busy(attempt)

    # -- room locks ---------------------------------------------------------------------------

    def lock_file(self) -> int:
        """The lock file's descriptor, opened once and kept: closing any descriptor of a file
        drops every POSIX lock the process holds on it."""
        with self.guard:
            if self.lock_fd is None:
                self._ensure_dir()
                self.lock_fd = open_lock_file(self.lock_path)
            return self.lock_fd


def _header(path: Path) -> bytes | None:
    """The first 16 bytes of a file; None if it does not exist (or is not a regular file)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror}") from None


def _write_copy(source: Path, target: Path) -> None:
    data = source.read_bytes()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _create_tables(conn: sqlite3.Connection) -> None:
    for statement in _TABLES:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _fill(conn: sqlite3.Connection, doc: Doc) -> None:
    """Copy a JSON state document's sections into the tables (what is well formed of it)."""
    for hs, rooms in doc.get("positions", {}).items():
        for room_id, entry in rooms.items():
            pos = Position.from_doc(entry)
            if pos is None:
                raise StateFileError(
                    f"the JSON state to import is corrupt (the position of {room_id} has the "
                    "wrong shape); move it aside to start over"
                )
            conn.execute(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                (hs, room_id, json.dumps(pos.to_doc())),
            )
    for table in ("aliases", "redirects"):
        for hs, entries in doc.get(table, {}).items():
            for key, value in entries.items():
                if isinstance(value, str):
                    conn.execute(
                        f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", (hs, key, value)
                    )
    for name, entry in doc.get("discovery", {}).items():
        if isinstance(entry.get("base_url"), str):
            checked = entry.get("checked")
            conn.execute(
                "INSERT OR REPLACE INTO discovery VALUES (?, ?, ?)",
                (name, entry["base_url"], checked if isinstance(checked, str) else None),
            )


#: Open state databases by real path: every StateStore of one file in this process shares one.
_DATABASES: weakref.WeakValueDictionary[str, _Database] = weakref.WeakValueDictionary()
_DATABASES_GUARD = threading.Lock()


def _database(path: Path) -> _Database:
    key = os.path.realpath(path)
    with _DATABASES_GUARD:
        db = _DATABASES.get(key)
        if db is None:
            db = _DATABASES[key] = _Database(path)
        return db


class StateStore:
    """Stream positions, keyed by homeserver URL and room id, plus small per-room metadata.

    Each call is one SQLite statement or transaction touching the rows it names: its cost does
    not grow with the number of rooms saved.
    """

    def __init__(self, path: Path, notice: Notice | None = None) -> None:
        self.path = path
        self.db = _database(path)
        if notice is not None:  # one run per process: its notice serves the shared database
            self.db.notice = notice

    def get(self, homeserver: str, room_id: str) -> Position | None:
        rows = self.db.read(
            "SELECT doc FROM positions WHERE homeserver = ? AND room_id = ?", (homeserver, room_id)
        )
        return _position(rows[0][0], f"state file {self.path}") if rows else None

    def save(self, homeserver: str, room_id: str, position: Position) -> None:
        position.updated = now_iso()

        def change(conn: sqlite3.Connection) -> None:
            if position.alias is None:
                row = conn.execute(
                    "SELECT doc FROM positions WHERE homeserver = ? AND room_id = ?",
                    (homeserver, room_id),
                ).fetchone()
                old = _position(row[0], f"state file {self.path}") if row else None
                if old is not None:
                    position.alias = old.alias
            conn.execute(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                (homeserver, room_id, json.dumps(position.to_doc())),
            )

        self.db.write(change)

    def forget(self, homeserver: str | None, room_id: str) -> int:
        """Drop the room's position (on one homeserver, or on all); returns how many went."""

        def change(conn: sqlite3.Connection) -> int:
            if homeserver is None:
                cur = conn.execute("DELETE FROM positions WHERE room_id = ?", (room_id,))
            else:
                cur = conn.execute(
                    "DELETE FROM positions WHERE homeserver = ? AND room_id = ?",
                    (homeserver, room_id),
                )
            return cur.rowcount

        return self.db.write(change)

    def positions(self) -> list[tuple[str, str, Position]]:
        out = []
        for hs, room_id, doc in sorted(self.db.read("SELECT * FROM positions")):
            out.append((hs, room_id, _position(doc, f"state file {self.path}")))
        return out

    def remember_alias(self, homeserver: str, alias: str, room_id: str) -> None:
        """Remember where an alias pointed; in a read-only state folder the run goes on with
        the room id it resolved, unsaved (read-only commands work read-only)."""
        with contextlib.suppress(StateNotWritable):
            self.db.write(
                lambda conn: conn.execute(
                    "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (homeserver, alias, room_id)
                )
            )

    def known_alias(self, homeserver: str, alias: str) -> str | None:
        rows = self.db.read(
            "SELECT room_id FROM aliases WHERE homeserver = ? AND alias = ?", (homeserver, alias)
        )
        return str(rows[0][0]) if rows else None

    def redirect(self, homeserver: str, old_room: str, new_room: str) -> None:
        """Record a room upgrade peek followed, so following `old_room` goes on in `new_room`."""
        self.db.write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO redirects VALUES (?, ?, ?)",
                (homeserver, old_room, new_room),
            )
        )

    def redirect_of(self, homeserver: str, room_id: str) -> str | None:
        rows = self.db.read(
            "SELECT new_room FROM redirects WHERE homeserver = ? AND old_room = ?",
            (homeserver, room_id),
        )
        return str(rows[0][0]) if rows else None

    def forget_redirect(self, homeserver: str, room_id: str) -> bool:
        if self.redirect_of(homeserver, room_id) is None:
            return False  # nothing to drop: no write
        return self.db.write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM redirects WHERE homeserver = ? AND old_room = ?",
                    (homeserver, room_id),
                ).rowcount
                > 0
            )
        )

    def remember_homeserver(self, server_name: str, base_url: str) -> None:
        """Cache what discovery found for a server name, so later runs skip the lookup; in a
        read-only state folder this run uses what it found and the next one looks again."""
        with contextlib.suppress(StateNotWritable):
            self.db.write(
                lambda conn: conn.execute(
                    "INSERT OR REPLACE INTO discovery VALUES (?, ?, ?)",
                    (server_name, base_url, now_iso()),
                )
            )

    def known_homeserver(self, server_name: str) -> tuple[str, datetime | None] | None:
        """The cached client API URL for a server name and when it was checked, if any."""
        rows = self.db.read(
            "SELECT base_url, checked FROM discovery WHERE server_name = ?", (server_name,)
        )
        if not rows:
            return None
        base_url, checked_text = rows[0]
        try:
            checked: datetime | None = datetime.fromisoformat(str(checked_text))
        except ValueError:
            checked = None
        return str(base_url), checked

    @contextlib.contextmanager
    def room_lock(
        self,
        homeserver: str,
        room_id: str,
        *,
        wait: bool = True,
        on_wait: Callable[[], None] | None = None,
        following: bool = True,
    ) -> Iterator[None]:
        """Held for a whole run on one room, so two peeks never deliver the same room at once.

        A byte-range lock on one byte of `NAME.lock` beside this state file: no open file per
        room, and peeks using other state files never wait for this one.

        Within one process (several rooms in threads) a room already held is not waited for,
        which would wait for ever on ourselves: a second follower gets `AlreadyFollowed` (the
        room is followed once); anything else (`following=False`) gets `BusyError`.
        """
        digest = hashlib.sha256(f"{homeserver} {room_id}".encode()).digest()
        offset = 1 + int.from_bytes(digest[:8], "big") % _ROOM_BYTES
        db = self.db
        busy = f"another peek is following {room_id} with this state file"
        with db.guard:
            if offset in db.held:
                if not following:
                    raise BusyError(busy)
                raise AlreadyFollowed(
                    f"{room_id} is already followed in this run: following it once"
                )
            fd = db.lock_file()
            db.held.add(offset)
        try:
            if not _try_lock(fd, offset):
                if not wait:
                    raise BusyError(busy)
                if on_wait is not None:
                    on_wait()
                while not _try_lock(fd, offset):
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
        finally:
            with db.guard:
                db.held.discard(offset)


def _try_lock(fd: int, offset: int) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise StateFileError(f"cannot lock a room in the lock file: {exc.strerror}") from None
    return True


def _position(doc: Any, where: str = "the state file") -> Position:
    """A stored position; one of the wrong shape is corruption, reported, never dropped and
    overwritten in silence."""
    try:
        position = Position.from_doc(json.loads(doc))
    except (TypeError, ValueError, RecursionError):
        position = None
    if position is None:
        raise StateFileError(
            f"{where} is corrupt (a position has the wrong shape); move it aside to start over"
        )
    return position


class CredentialStore:
    """Access tokens per homeserver (guest and login), in a 0600 file apart from positions."""

    def __init__(self, path: Path, notice: Notice | None = None) -> None:
        self.file = JsonFile(path, "credentials file", notice or _notice)

    def get(self, homeserver: str, kind: str) -> dict[str, Any] | None:
        entry = self.file.read().get("homeservers", {}).get(homeserver, {}).get(kind)
        return (
            entry
            if isinstance(entry, dict) and isinstance(entry.get("access_token"), str)
            else None
        )

    def put(self, homeserver: str, kind: str, entry: dict[str, Any]) -> None:
        self.file.update(
            lambda doc: (
                doc.setdefault("homeservers", {}).setdefault(homeserver, {}).update({kind: entry})
            )
        )

    def delete(self, homeserver: str, kind: str) -> bool:
        def change(doc: Doc) -> bool:
            entries = doc.get("homeservers", {}).get(homeserver, {})
            return entries.pop(kind, None) is not None

        return self.file.update(change)

    def entry(self, homeserver: str, kind: str) -> dict[str, Any] | None:
        """Any stored entry, token or not (e.g. a cached OAuth 2.0 client registration)."""
        entry = self.file.read().get("homeservers", {}).get(homeserver, {}).get(kind)
        return entry if isinstance(entry, dict) else None

    def update_entry(
        self,
        homeserver: str,
        kind: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Replace one entry by `change(old)` under the file's lock; None deletes it.

        The lock is held while `change` runs, so a token refresh done inside it happens in one
        peek process at a time: the next one finds the new pair stored and never spends the old,
        single-use refresh token again. If `change` raises, the file is left as it was.
        """

        def apply(doc: Doc) -> dict[str, Any] | None:
            entries = doc.setdefault("homeservers", {}).setdefault(homeserver, {})
            old = entries.get(kind)
            new = change(dict(old) if isinstance(old, dict) else None)
            if new is None:
                entries.pop(kind, None)
            else:
                entries[kind] = new
            return new

        return self.file.update(apply)

    def logins(self) -> dict[str, dict[str, Any]]:
        """Homeserver → stored login (user accounts only, not guests)."""
        found = {}
        for hs, entries in self.file.read().get("homeservers", {}).items():
            login = entries.get("login") if isinstance(entries, dict) else None
            if isinstance(login, dict) and isinstance(login.get("access_token"), str):
                found[hs] = login
        return dict(sorted(found.items()))
