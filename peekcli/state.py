"""The state file (positions) and the credentials file: OS lock, atomic write, schema version.

Both files are small JSON documents. Every change is read-modify-write under an exclusive `flock`
on a sibling `.lock` file, written to a temp file in the same directory, fsynced and moved into
place with `os.replace`: a crash, a kill or a full disk leaves the old file or the new one, never a
mix, and two peek processes never lose each other's updates.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from peekcli.errors import AlreadyFollowed, BusyError, StateFileError

SCHEMA_VERSION = 1
#: Sections that map a key (homeserver, server name) to an object.
_MAPS = ("positions", "aliases", "homeservers", "discovery", "redirects")
T = TypeVar("T")
Doc = dict[str, Any]


def default_state_path() -> Path:
    import platformdirs

    return platformdirs.user_state_path("peek") / "state.json"


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

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.lock_path = path.with_name(path.name + ".lock")

    def _ensure_dir(self) -> None:
        if not self.path.parent.exists():
            try:
                self.path.parent.mkdir(parents=True, mode=0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                raise StateFileError(f"cannot create {self.path.parent}: {exc.strerror}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the file's exclusive lock (short: one read-modify-write)."""
        self._ensure_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError(f"cannot open {self.lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

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
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateFileError(
                f"{self.what} {self.path} is corrupt ({exc}); move it aside to start over"
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


class StateStore:
    """Stream positions, keyed by homeserver URL and room id, plus small per-room metadata."""

    def __init__(self, path: Path) -> None:
        self.file = JsonFile(path, "state file")

    @property
    def path(self) -> Path:
        return self.file.path

    def get(self, homeserver: str, room_id: str) -> Position | None:
        doc = self.file.read()
        return Position.from_doc(doc.get("positions", {}).get(homeserver, {}).get(room_id))

    def save(self, homeserver: str, room_id: str, position: Position) -> None:
        position.updated = now_iso()

        def change(doc: Doc) -> None:
            rooms = doc.setdefault("positions", {}).setdefault(homeserver, {})
            old = Position.from_doc(rooms.get(room_id))
            if old is not None and position.alias is None:
                position.alias = old.alias
            rooms[room_id] = position.to_doc()

        self.file.update(change)

    def forget(self, homeserver: str | None, room_id: str) -> int:
        """Drop the room's position (on one homeserver, or on all); returns how many went."""

        def change(doc: Doc) -> int:
            gone = 0
            for hs, rooms in doc.get("positions", {}).items():
                if (homeserver is None or hs == homeserver) and room_id in rooms:
                    del rooms[room_id]
                    gone += 1
            return gone

        return self.file.update(change)

    def positions(self) -> list[tuple[str, str, Position]]:
        out = []
        for hs, rooms in sorted(self.file.read().get("positions", {}).items()):
            for room_id, doc in sorted(rooms.items()):
                pos = Position.from_doc(doc)
                if pos is not None:
                    out.append((hs, room_id, pos))
        return out

    def remember_alias(self, homeserver: str, alias: str, room_id: str) -> None:
        self.file.update(
            lambda doc: (
                doc.setdefault("aliases", {}).setdefault(homeserver, {}).update({alias: room_id})
            )
        )

    def known_alias(self, homeserver: str, alias: str) -> str | None:
        found = self.file.read().get("aliases", {}).get(homeserver, {}).get(alias)
        return found if isinstance(found, str) else None

    def redirect(self, homeserver: str, old_room: str, new_room: str) -> None:
        """Record a room upgrade peek followed, so following `old_room` goes on in `new_room`."""
        self.file.update(
            lambda doc: (
                doc.setdefault("redirects", {})
                .setdefault(homeserver, {})
                .update({old_room: new_room})
            )
        )

    def redirect_of(self, homeserver: str, room_id: str) -> str | None:
        found = self.file.read().get("redirects", {}).get(homeserver, {}).get(room_id)
        return found if isinstance(found, str) else None

    def forget_redirect(self, homeserver: str, room_id: str) -> bool:
        def change(doc: Doc) -> bool:
            return doc.get("redirects", {}).get(homeserver, {}).pop(room_id, None) is not None

        if self.redirect_of(homeserver, room_id) is None:
            return False  # nothing to drop: no write
        return self.file.update(change)

    def remember_homeserver(self, server_name: str, base_url: str) -> None:
        """Cache what discovery found for a server name, so later runs skip the lookup."""
        entry = {"base_url": base_url, "checked": now_iso()}
        self.file.update(lambda doc: doc.setdefault("discovery", {}).update({server_name: entry}))

    def known_homeserver(self, server_name: str) -> tuple[str, datetime | None] | None:
        """The cached client API URL for a server name and when it was checked, if any."""
        entry = self.file.read().get("discovery", {}).get(server_name)
        if not isinstance(entry, dict) or not isinstance(entry.get("base_url"), str):
            return None
        try:
            checked: datetime | None = datetime.fromisoformat(str(entry.get("checked")))
        except ValueError:
            checked = None
        return entry["base_url"], checked

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

        Within one process (several rooms in threads) a room already held is not waited for,
        which would wait for ever on ourselves: a second follower gets `AlreadyFollowed` (the
        room is followed once); anything else (`following=False`) gets `BusyError`.
        """
        digest = hashlib.sha256(f"{homeserver} {room_id}".encode()).hexdigest()[:16]
        lock_dir = self.path.parent / "locks"
        key = str(lock_dir / digest)
        with _HELD_GUARD:
            if key in _HELD:
                if not following:
                    raise BusyError(f"another peek is following {room_id} with this state file")
                raise AlreadyFollowed(
                    f"{room_id} is already followed in this run: following it once"
                )
            _HELD.add(key)
        try:
            with self._flocked(lock_dir, digest, room_id, wait=wait, on_wait=on_wait):
                yield
        finally:
            with _HELD_GUARD:
                _HELD.discard(key)

    @contextlib.contextmanager
    def _flocked(
        self,
        lock_dir: Path,
        digest: str,
        room_id: str,
        *,
        wait: bool,
        on_wait: Callable[[], None] | None,
    ) -> Iterator[None]:
        try:
            lock_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
            fd = os.open(lock_dir / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError(f"cannot create a lock in {lock_dir}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise BusyError(
                        f"another peek is following {room_id} with this state file"
                    ) from None
                if on_wait is not None:
                    on_wait()
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        time.sleep(0.1)
            yield
        finally:
            os.close(fd)


#: Room locks this process holds (several rooms run in threads of one process).
_HELD: set[str] = set()
_HELD_GUARD = threading.Lock()


class CredentialStore:
    """Access tokens per homeserver (guest and login), in a 0600 file apart from positions."""

    def __init__(self, path: Path) -> None:
        self.file = JsonFile(path, "credentials file")

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
