"""`peek export`: a room's history, oldest first, from `GET /messages?dir=b` pages.

Paging backwards is the one way through a room's past, but it yields the newest events first.
Each page (up to 1000 events; the server may send fewer, and only a reply without `end`, with
an empty chunk or with an `end` equal to its `from` says the start is reached) is reversed and
appended to a *spill* file; when the walk is over the spill is read back page by page from its
end, which is the whole history in chronological order, and handed to a writer (JSON lines,
text, HTML). Memory stays at one page whatever the room's size: stdout exports spill to a
temporary file (in memory up to 32 MiB), `-o FILE` exports to `FILE.part`.

Resumable (`-o FILE`): after each page, once its events are in `FILE.part`, a sidecar
`FILE.part.json` is replaced atomically with the walk's state (the next `from` token, the byte
length of what is committed). `--resume` cuts `FILE.part` back to that length and goes on from
the token, so an interrupted export never holds an event twice. Only when the walk is complete is
`FILE` written (to a temporary file renamed into place), and the two work files removed.

With `--follow-predecessors`, once a room's start is reached its `m.room.create` state names the
room it replaced (`predecessor.room_id`), which is walked next: the spill then holds the newest
room first, and reading it back gives the oldest room first.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, Protocol

from peekcli import signals
from peekcli.errors import (
    ForbiddenError,
    NetworkError,
    NotFoundError,
    PeekError,
    StateFileError,
    UsageError,
)
from peekcli.matrix.client import API, JSON, MatrixClient, q
from peekcli.matrix.events import RecentIds, predecessor_of, room_events
from peekcli.media import MediaDownloader, MediaReport, media_in
from peekcli.render.jsonl import encode_event
from peekcli.retry import MAX_QUICK_WAIT, RetryPolicy, retrying

#: Events asked for per page: the most Synapse serves in one reply.
PAGE_LIMIT = 1000
#: A stdout export keeps this much of its spill in memory before it goes to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024
SIDECAR_VERSION = 1

_RELATIVE = re.compile(r"(\d+)\s*(s|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# -- dates ---------------------------------------------------------------------------------------


def parse_when(text: str, *, end_of_day: bool = False, now: datetime | None = None) -> int:
    """`--since` / `--until` → milliseconds since the epoch (what `origin_server_ts` counts).

    Accepts an ISO date (`2024-05-01`: local midnight; with `end_of_day`, the last millisecond
    of that day, so `--until 2024-05-01` includes the whole day), an ISO date and time (without
    a zone: local time; `Z` or `+02:00` honoured) or a duration back from now (`90s`, `15m`,
    `12h`, `7d`, `2w`).
    """
    value = text.strip()
    now = now or datetime.now(UTC)
    relative = _RELATIVE.fullmatch(value)
    if relative:
        seconds = int(relative.group(1)) * _UNITS[relative.group(2).lower()]
        try:
            return _ms(now - timedelta(seconds=seconds))
        except OverflowError:
            raise UsageError(f"{text!r} reaches back too far") from None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"cannot read {text!r} as a date: give 2024-05-01, 2024-05-01T14:30, "
            "2024-05-01T14:30:00Z or a duration like 7d, 12h, 30m"
        ) from None
    date_only = "T" not in value.upper() and " " not in value and ":" not in value
    try:  # year 1 or 9999 can leave datetime's range once made local or moved a day
        if when.tzinfo is None:
            when = when.astimezone()  # naive: the user's local time
        if date_only and end_of_day:
            return _ms(when + timedelta(days=1)) - 1
        return _ms(when)
    except (OverflowError, ValueError, OSError):
        raise UsageError(f"{text!r} is out of the range of dates") from None


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _ts(event: JSON) -> int | None:
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


# -- what is asked, and how far the walk got ----------------------------------------------------


@dataclass
class ExportRange:
    """Which events: by server timestamp (inclusive), the newest `limit` of them, which rooms."""

    since_ms: int | None = None
    until_ms: int | None = None
    limit: int | None = None
    follow_predecessors: bool = False


@dataclass
class RoomWalk:
    """One room's backwards walk: `token` is the next page's `from` (None: the live end)."""

    room_id: str
    token: str | None = None
    done: bool = False
    #: `--until` was looked up with timestamp_to_event (whatever the answer): never again.
    jumped: bool = False


@dataclass
class ExportState:
    """Everything needed to go on with an export: written to the sidecar after each page."""

    homeserver: str
    room_id: str
    range: ExportRange
    rooms: list[RoomWalk] = field(default_factory=list)
    #: [offset, length] of each page in the spill, in the order fetched (newest first).
    segments: list[list[int]] = field(default_factory=list)
    count: int = 0
    oldest_ts: int | None = None
    #: The walk is over (start reached, --since/--limit satisfied): only the writing is left.
    finished: bool = False

    @property
    def committed(self) -> int:
        return sum(length for _, length in self.segments)

    def to_doc(self) -> JSON:
        return {"version": SIDECAR_VERSION, **asdict(self)}

    @classmethod
    def from_doc(cls, doc: Any) -> ExportState:
        try:
            if doc["version"] != SIDECAR_VERSION:
                raise ValueError("unknown version")
            rng = ExportRange(**doc["range"])
            rooms = [RoomWalk(**room) for room in doc["rooms"]]
            segments = [[int(off), int(length)] for off, length in doc["segments"]]
            return cls(
                homeserver=str(doc["homeserver"]),
                room_id=str(doc["room_id"]),
                range=rng,
                rooms=rooms,
                segments=segments,
                count=int(doc["count"]),
                oldest_ts=doc.get("oldest_ts"),
                finished=bool(doc["finished"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"the export's progress file is unreadable ({exc})") from None


def _newest_ts(spill: Spill) -> int | None:
    try:
        event = json.loads(spill.newest())
    except ValueError:
        return None
    return _ts(event) if isinstance(event, dict) else None


# -- the spill ------------------------------------------------------------------------------------


class Spill:
    """Pages of events as JSON lines, newest page first; read back from the end = oldest first."""

    def __init__(self, fh: IO[bytes], segments: list[list[int]]) -> None:
        self.fh = fh
        self.segments = segments

    def append(self, newest_first: list[JSON]) -> None:
        data = b"".join(encode_event(ev) for ev in reversed(newest_first))
        offset = sum(length for _, length in self.segments)
        self.fh.seek(offset)
        self.fh.write(data)
        self.fh.flush()
        self.segments.append([offset, len(data)])

    def newest(self) -> bytes:
        """The newest event's line: the last of the first page fetched."""
        offset, length = self.segments[0]
        self.fh.seek(offset)
        data = self.fh.read(length)
        return data.splitlines()[-1] if data else b"{}"

    def lines(self) -> Iterator[bytes]:
        """Every event's JSON line, oldest first."""
        for offset, length in reversed(self.segments):
            self.fh.seek(offset)
            data = self.fh.read(length)
            if len(data) != length:
                raise StateFileError("the export's spill file is shorter than recorded")
            yield from data.splitlines(keepends=True)


# -- writers --------------------------------------------------------------------------------------


@dataclass
class ExportSummary:
    """What a writer is told before the first event: the range asked and the one found."""

    homeserver: str
    since_ms: int | None
    until_ms: int | None
    oldest_ms: int | None
    newest_ms: int | None
    count: int


class Writer(Protocol):
    """Formats the events, oldest first. `begin` gets the newest room's current state."""

    wants_state: bool

    def begin(self, room_id: str, state: list[JSON], summary: ExportSummary) -> None: ...

    def write(self, line: bytes) -> None: ...

    def finish(self) -> None: ...


class JsonLinesWriter:
    """Each event exactly as `--json` prints it (the spill already holds those very lines)."""

    wants_state = False

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def begin(self, room_id: str, state: list[JSON], summary: ExportSummary) -> None:
        return None

    def write(self, line: bytes) -> None:
        self.out.write(line)

    def finish(self) -> None:
        self.out.flush()


# -- the walk -------------------------------------------------------------------------------------


@dataclass
class Progress:
    events: int
    oldest_ts: int | None
    room_id: str
    phase: Literal["fetching", "media", "writing"]


def _ignore(*_: Any) -> None:
    return None


@dataclass
class Exporter:
    """Walks the rooms backwards page by page into the spill, committing after every page."""

    client: MatrixClient
    state: ExportState
    spill: Spill
    commit: Callable[[ExportState], None] = _ignore
    progress: Callable[[Progress], None] = _ignore
    warn: Callable[[str], None] = _ignore
    renew_token: Callable[[], bool] = lambda: False
    max_retries: int = 5
    #: None: the retry module's own pause (which tests replace).
    sleep: Callable[[float], None] | None = None
    requests: int = 0
    #: Events of the last pages: a page of nothing but these ends the room's walk.
    recent: RecentIds = field(default_factory=RecentIds)

    def run(self) -> None:
        state = self.state
        if not state.rooms:
            state.rooms.append(RoomWalk(state.room_id))
        while not state.finished:
            walk = next((w for w in state.rooms if not w.done), None)
            if walk is None:
                self._next_room()
                continue
            self._page(walk)

    def _page(self, walk: RoomWalk) -> None:
        state, rng = self.state, self.state.range
        first_room = walk is self.state.rooms[0]
        if walk.token is None and rng.until_ms is not None and not walk.jumped:
            self._jump(walk, rng.until_ms)
            if walk.done:
                self._commit()
                return
        try:
            reply = self._call(
                lambda: self.client.messages(walk.room_id, walk.token, "b", PAGE_LIMIT)
            )
        except (ForbiddenError, NotFoundError) as exc:
            if first_room:
                raise
            self.warn(
                f"cannot read {walk.room_id}, the room {state.rooms[0].room_id} came from "
                f"({exc.message}); the export starts where that room starts"
            )
            state.finished = True
            self._commit()
            return
        events = room_events(reply.get("chunk"), walk.room_id)
        if events is None:
            raise NetworkError(f"{self.client.base_url} sent a /messages reply without a chunk")
        fresh = [ev for ev in events if not self.recent.seen(ev)]
        if events and not fresh:
            # Only events already walked (a server repeating a page under a new `end`): going
            # on would never end, and would write them twice.
            self.warn(
                f"{self.client.base_url} sent a page it had sent already; {walk.room_id} ends here"
            )
        repeated = bool(events) and not fresh
        events = fresh
        kept: list[JSON] = []
        stop = False
        for event in events:  # newest first
            ts = _ts(event)
            if rng.since_ms is not None and ts is not None and ts < rng.since_ms:
                # Older than --since: this page is the last one. Its other events are still
                # judged by their own time, since clocks (and federated servers) disagree a bit.
                stop = True
                continue
            if rng.until_ms is not None and ts is not None and ts > rng.until_ms:
                continue
            kept.append(event)
            if rng.limit is not None and state.count + len(kept) >= rng.limit:
                stop = True
                break
        end = reply.get("end")
        with signals.deferred():
            if kept:
                self.spill.append(kept)
                state.count += len(kept)
                for ts in map(_ts, kept):
                    if ts is not None and (state.oldest_ts is None or ts < state.oldest_ts):
                        state.oldest_ts = ts
            if stop:
                walk.done = True
                state.finished = True
            elif repeated or not events or not isinstance(end, str) or not end or end == walk.token:
                walk.done = True
            else:
                walk.token = end
            self._commit()
        self.progress(Progress(state.count, state.oldest_ts, walk.room_id, "fetching"))

    def _jump(self, walk: RoomWalk, until_ms: int) -> None:
        """Start the walk at `--until` instead of the room's end: the last event at or before
        it (`GET /v1/rooms/{id}/timestamp_to_event`, spec v1.6), and a token just after it from
        `/context`. Two requests instead of every page since `--until`; where the server has no
        such endpoint (or says anything odd) the walk starts at the end, as before."""
        walk.jumped = True
        room = q(walk.room_id)
        path = f"/_matrix/client/v1/rooms/{room}/timestamp_to_event"
        # One try each, no retries: on any trouble the walk from the end still gets every event.
        try:
            self.requests += 1
            found = self.client.request("GET", path, params={"ts": until_ms, "dir": "b"})
        except NotFoundError as exc:
            if exc.errcode == "M_NOT_FOUND":
                walk.done = True  # nothing at or before --until in this room
            return
        except PeekError:
            return
        event_id = found.get("event_id")
        if not isinstance(event_id, str) or not event_id.startswith("$") or len(event_id) > 255:
            return
        context_path = f"{API}/rooms/{room}/context/{q(event_id)}"
        try:
            self.requests += 1
            context = self.client.request("GET", context_path, params={"limit": 0})
        except PeekError:
            return
        end = context.get("end")
        if isinstance(end, str) and end:
            walk.token = end

    def _next_room(self) -> None:
        """Every room walked to its start: go on into the predecessor, or finish."""
        state = self.state
        newest_first = state.rooms[-1].room_id
        predecessor = self._predecessor(newest_first) if state.range.follow_predecessors else None
        if predecessor is None or predecessor in {w.room_id for w in state.rooms}:
            state.finished = True
        else:
            state.rooms.append(RoomWalk(predecessor))
        self._commit()

    def _predecessor(self, room_id: str) -> str | None:
        path = f"{API}/rooms/{q(room_id)}/state/m.room.create/"
        try:
            content = self._call(lambda: self.client.request("GET", path))
        except (ForbiddenError, NotFoundError) as exc:
            self.warn(f"cannot read the creation of {room_id} ({exc.message}); no older room")
            return None
        return predecessor_of(content)

    def _commit(self) -> None:
        self.commit(self.state)

    def _call(self, request: Callable[[], JSON]) -> JSON:
        """One request, with the one retry policy (`retry.retrying`: backoff with jitter,
        Retry-After on 429, a rejected guest renewed once); it never moves the walk."""

        def counted() -> JSON:
            self.requests += 1
            return request()

        def status(message: str | None) -> None:
            if message is not None:
                self.warn(message)

        policy = RetryPolicy(max_retries=self.max_retries, cap=30.0)
        return retrying(
            counted,
            policy,
            status=status,
            renew=self.renew_token,
            sleep=self.sleep,
            max_wait=MAX_QUICK_WAIT,  # one-shot: an hour's Retry-After gives up, saying so
        )


# -- files ----------------------------------------------------------------------------------------


OutputKind = Literal["file", "stream"]


def output_kind(output: Path) -> OutputKind:
    """How `-o FILE` is written. A regular file (or a new one) is built beside it and renamed
    into place once complete ("file"). A FIFO, a character device (`/dev/null`, a terminal) or
    anything under /dev or /proc (`/dev/stdout`) is written directly, as stdout is ("stream"):
    renaming over it would destroy it. A socket or block device is refused."""
    absolute = Path(os.path.abspath(output))
    special = absolute.parts[1:2] in (("dev",), ("proc",))
    try:
        mode = os.stat(absolute).st_mode
    except FileNotFoundError:
        return "stream" if special else "file"
    except OSError as exc:
        raise UsageError(f"cannot use -o {output}: {exc.strerror}") from None
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or (special and stat.S_ISREG(mode)):
        return "stream"
    if stat.S_ISREG(mode):
        return "file"
    raise UsageError(f"-o {output} is not a regular file, FIFO or character device: refused")


def open_part(part: Path, *, fresh: bool) -> BinaryIO:
    """`FILE.part`, never through a symbolic link (in a sticky /tmp another user may have
    planted one). A fresh export removes whatever has that name (a link is removed, not
    followed) and creates the file with O_EXCL; a resumed one opens only a regular file."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if fresh:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            fd = os.open(part, flags | os.O_CREAT | os.O_EXCL, 0o666)
        else:
            fd = os.open(part, flags)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise StateFileError(f"{part} is not a regular file: export again")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateFileError(f"{part} is a symbolic link: refused") from None
        raise PeekError(f"cannot write {part}: {exc.strerror}") from None
    return os.fdopen(fd, "w+b" if fresh else "r+b")


def _own_regular_file(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def work_paths(output: Path) -> tuple[Path, Path]:
    """`FILE.part` (the spill) and `FILE.part.json` (the sidecar) beside the output file."""
    return output.with_name(output.name + ".part"), output.with_name(output.name + ".part.json")


def create_public(path: Path) -> tuple[str, BinaryIO]:
    """A new temporary file beside `path`, created with the mode the umask gives (0644
    typically): an export is public history, meant to be served or shared, not a secret."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
            )
        except FileExistsError:
            continue
        except OSError as exc:
            raise PeekError(f"cannot write {tmp}: {exc.strerror}") from None
        return str(tmp), os.fdopen(fd, "wb")
    raise PeekError(f"cannot create a temporary file beside {path}")


def save_sidecar(path: Path, state: ExportState) -> None:
    data = json.dumps(state.to_doc(), separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateFileError(f"cannot write {path}: {exc.strerror}") from None


def load_sidecar(path: Path) -> ExportState:
    try:
        return ExportState.from_doc(json.loads(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise StateFileError(f"cannot read {path} ({exc}); export again without --resume") from None


@dataclass
class ExportJob:
    """One export: where it reads from, what it asked for and where it writes."""

    client: MatrixClient
    homeserver: str
    room_id: str
    range: ExportRange
    output: Path | None = None
    resume: bool = False
    stdout: BinaryIO | None = None
    progress: Callable[[Progress], None] = _ignore
    warn: Callable[[str], None] = _ignore
    renew_token: Callable[[], bool] = lambda: False
    max_retries: int = 5
    #: Filled in by `run`: requests sent while walking and events written.
    requests: int = 0
    written: int = 0
    resumed_from: int = 0
    #: With --media: downloads the files the events point at before writing.
    media: MediaDownloader | None = None
    media_report: MediaReport | None = None
    #: After a failed `-o` export: whether FILE.part was kept for --resume or removed.
    left_behind: Literal["resumable", "removed"] | None = None

    def run(self, make_writer: Callable[[BinaryIO], Writer]) -> None:
        if self.output is None:
            assert self.stdout is not None
            self._to_stream(make_writer, self.stdout)
        elif output_kind(self.output) == "stream":
            if self.resume:
                raise UsageError(f"--resume needs -o FILE to be a regular file, not {self.output}")
            try:  # no O_CREAT/O_TRUNC: like `>>`, what the shell opened stays as it is
                fd = os.open(self.output, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as exc:
                raise PeekError(f"cannot write {self.output}: {exc.strerror}") from None
            with os.fdopen(fd, "wb") as out:
                self._to_stream(make_writer, out)
        else:
            self._to_file(self.output, make_writer)

    def _to_stream(self, make_writer: Callable[[BinaryIO], Writer], out: BinaryIO) -> None:
        state = ExportState(self.homeserver, self.room_id, self.range)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as fh:
            spill = Spill(fh, state.segments)
            self._walk(state, spill)
            self._write(state, spill, make_writer(out))

    def _to_file(self, output: Path, make_writer: Callable[[BinaryIO], Writer]) -> None:
        part, sidecar = work_paths(output)
        state = self._resumed(part, sidecar) if self.resume else None
        if state is None and not self.resume and sidecar.exists():
            self.warn(
                f"starting over: the unfinished export in {part} is dropped (--resume goes on)"
            )
        fresh = state is None
        if state is None:
            with contextlib.suppress(OSError):
                sidecar.unlink()  # a stale sidecar must not make a new, empty .part resumable
            state = ExportState(self.homeserver, self.room_id, self.range)
        try:
            with open_part(part, fresh=fresh) as fh:
                if not fresh:
                    fh.truncate(state.committed)  # whatever a kill left past the last commit
                spill = Spill(fh, state.segments)
                try:
                    self._walk(state, spill, lambda s: save_sidecar(sidecar, s))
                except OSError as exc:  # a full disk: one line (what is left is said after)
                    raise PeekError(f"cannot write {part}: {exc.strerror or exc}") from None
                tmp, out = create_public(output)
                try:
                    with out:
                        self._write(state, spill, make_writer(out))
                    os.replace(tmp, output)
                except BaseException as exc:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    if isinstance(exc, OSError):
                        raise PeekError(f"cannot write {output}: {exc.strerror or exc}") from None
                    raise
        except BaseException:
            # Resumable only once a page is committed (the sidecar says how far): otherwise
            # the .part holds nothing worth keeping.
            if sidecar.exists():
                self.left_behind = "resumable"
            else:
                self.left_behind = "removed"
                with contextlib.suppress(OSError):
                    part.unlink()
            raise
        for path in (sidecar, part):
            with contextlib.suppress(OSError):
                path.unlink()

    def _resumed(self, part: Path, sidecar: Path) -> ExportState | None:
        if not sidecar.exists() or not part.exists():
            self.warn(f"nothing to resume in {part}: starting a new export")
            return None
        if not (_own_regular_file(part) and _own_regular_file(sidecar)):
            # planted (a link, another user's file in a shared directory): never read or extend it
            raise StateFileError(
                f"{part} or {sidecar.name} is not a regular file of yours: refused; "
                "export again without --resume"
            )
        state = load_sidecar(sidecar)
        if (state.homeserver, state.room_id, state.range) != (
            self.homeserver,
            self.room_id,
            self.range,
        ):
            raise UsageError(
                f"{part} holds an export of another room or with other --since/--until/--limit/"
                "--follow-predecessors: give the same ones, or export again without --resume"
            )
        if part.stat().st_size < state.committed:
            raise StateFileError(f"{part} is shorter than recorded: export again without --resume")
        self.resumed_from = state.count
        return state

    def _walk(
        self,
        state: ExportState,
        spill: Spill,
        commit: Callable[[ExportState], None] = _ignore,
    ) -> None:
        exporter = Exporter(
            client=self.client,
            state=state,
            spill=spill,
            commit=commit,
            progress=self.progress,
            warn=self.warn,
            renew_token=self.renew_token,
            max_retries=self.max_retries,
        )
        try:
            exporter.run()
        finally:
            self.requests += exporter.requests

    def _write(self, state: ExportState, spill: Spill, writer: Writer) -> None:
        room_state: list[JSON] = []
        if writer.wants_state or self.media is not None:
            with contextlib.suppress(PeekError):
                room_state = [
                    ev for ev in self.client.room_state(state.room_id) if isinstance(ev, dict)
                ]
        if self.media is not None:
            self._save_media(state, spill, room_state, self.media)
        # Said before the first byte is written: a progress line on the same terminal goes first.
        self.progress(Progress(0, None, state.room_id, "writing"))
        summary = ExportSummary(
            self.homeserver,
            state.range.since_ms,
            state.range.until_ms,
            state.oldest_ts,
            _newest_ts(spill) if state.count else None,
            state.count,
        )
        writer.begin(state.room_id, room_state, summary)
        last = time.monotonic()
        for line in spill.lines():
            writer.write(line)
            self.written += 1
            if time.monotonic() - last > 0.2:
                last = time.monotonic()
                self.progress(Progress(self.written, None, state.room_id, "writing"))
        writer.finish()

    def _save_media(
        self, state: ExportState, spill: Spill, room_state: list[JSON], media: MediaDownloader
    ) -> None:
        """Every file the events point at, before the page that shows them is written (a page
        links only to what is on disk). The spill is read once more: it is local and fast."""
        try:
            for event in room_state:
                media.add(media_in(event))
            for count, line in enumerate(spill.lines(), 1):
                try:
                    media.add(media_in(json.loads(line)))
                except ValueError:
                    continue
                if count % 500 == 0:
                    self.progress(Progress(count, None, state.room_id, "media"))
            self.media_report = media.close()
        except BaseException:
            media.abort()
            raise
