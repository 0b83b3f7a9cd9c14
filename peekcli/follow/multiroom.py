"""Several rooms in one run (a few ROOM arguments, or a thousand from `--rooms-from`).

Rooms are opened (discovery, identity, alias) several at a time, sharing per homeserver one
HTTP session, one guest and one backoff gate (peekcli/connect.py `Shared`); two arguments naming
the same room are followed once. Then each room keeps its own long-poll, its own `Follower` and
its own saved position, in a thread of its own (`watch`), or a bounded number of rooms at a time
are drained (`snapshot --rooms-from`). Their deliveries go through one lock held around "write
the chunk, flush, save its position", so two rooms' lines never interleave inside an event and
every chunk on the screen is saved before the next one starts. Signals land in the main thread,
which only waits: on Ctrl-C/SIGTERM it asks every thread to stop (`signals.request_stop`: a
running `--exec` CMD is killed, a backoff wait ends), takes that lock (letting the chunk being
delivered finish and be saved) and keeps it while the process exits, so no room is left with
output printed but not saved, and none can keep the run alive. A room whose server does not
answer at first is opened again in its own turn, retried like the stream, while the others go
on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from peekcli import retry, signals
from peekcli.connect import ConnectOptions, RoomSession, Shared, open_room
from peekcli.errors import NetworkError, PeekError
from peekcli.follow.plan import FollowOptions
from peekcli.follow.strategies import USUAL_TIMEOUT_MS
from peekcli.matrix.http import RequestLog
from peekcli.matrix.ids import parse_room

LABEL_WIDTH = 12


@dataclass
class RoomJob:
    """One room argument: its label, its opened session, and how it ended if it failed."""

    arg: str
    label: str
    session: RoomSession | None = None
    error: PeekError | None = None
    #: Its server did not answer at first: the room's own thread opens it, retrying as the
    #: stream does, while the other rooms go on (not with a given --token: it fails then).
    deferred: bool = False
    token_homeserver: str | None = None


def labels(rooms: Sequence[str]) -> list[str]:
    """Short distinct labels: `#alias` (no server), or the first characters of a room id."""
    out: list[str] = []
    for arg in rooms:
        try:
            value = parse_room(arg).value
        except PeekError:
            value = arg.strip()
        base = value.partition(":")[0][:LABEL_WIDTH] or "?"
        label, n = base, 2
        while label in out:
            label = f"{base}~{n}"
            n += 1
        out.append(label)
    return out


#: Rooms opened at once (discovery, identity, alias lookup): enough to open a thousand rooms in
#: seconds, few enough not to flood the server with first requests.
OPEN_AT_ONCE = 16
#: Rooms `snapshot` drains at once.
DRAIN_AT_ONCE = 8


def open_rooms(
    rooms: Sequence[str],
    where: ConnectOptions,
    opts: FollowOptions,
    *,
    log: RequestLog | None = None,
    failed: Callable[[RoomJob, PeekError], None],
    notice: Callable[[str], None],
    at_once: int = OPEN_AT_ONCE,
) -> list[RoomJob]:
    """Open every room, `at_once` at a time; a room that cannot be opened is reported (in the
    order given) and kept with its error.

    The rooms share one HTTP session, one identity and one backoff per homeserver. A given
    `--token` opens the rooms one by one: the first room's homeserver is the only one it may go to.
    """
    unique = list(dict.fromkeys(rooms))
    shared = Shared(rooms=len(unique), spread=spread_for(len(unique)))
    opened: list[RoomSession | PeekError] = []
    if where.token or at_once <= 1 or len(unique) <= 1:
        token_home: str | None = None  # where a given --token went first: it goes nowhere else
        for arg in unique:
            try:
                session = open_room(arg, where, log=log, token_homeserver=token_home, shared=shared)
            except PeekError as exc:
                opened.append(exc)
                continue
            if where.token and token_home is None:
                token_home = session.homeserver
            opened.append(session)
    else:
        opened = _open_side_by_side(unique, where, log, shared, at_once)
    jobs: list[RoomJob] = []
    seen: dict[tuple[str, str], str] = {}
    for arg, label, result in zip(unique, labels(unique), opened, strict=True):
        job = RoomJob(arg, label)
        if isinstance(result, NetworkError) and not where.token:
            # Its server did not answer: the room's own turn opens it again, retrying.
            job.deferred = True
            notice(f"{arg}: {result.message}; retrying while the other rooms go on")
            jobs.append(job)
            continue
        if isinstance(result, PeekError):
            job.error = result
            failed(job, result)
            jobs.append(job)
            continue
        job.session = result
        key = (result.homeserver, followed_room(result, opts))
        if key in seen:
            notice(f"{arg} is the same room as {seen[key]}: following it once")
            continue
        seen[key] = arg
        jobs.append(job)
    return jobs


def _open_side_by_side(
    rooms: Sequence[str],
    where: ConnectOptions,
    log: RequestLog | None,
    shared: Shared,
    at_once: int,
) -> list[RoomSession | PeekError]:
    def one(arg: str) -> RoomSession | PeekError:
        try:
            return open_room(arg, where, log=log, shared=shared)
        except PeekError as exc:
            return exc

    pool = ThreadPoolExecutor(max_workers=min(at_once, len(rooms)), thread_name_prefix="open")
    try:
        return list(pool.map(one, rooms))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a stop (Ctrl-C) does not wait for them


#: Idle long-poll replies per second a run aims at across all its rooms, once that needs
#: polls longer than the usual 30 s: each reply costs peek ~2 ms of CPU (requests' share of
#: it alone is over 1 ms), so a thousand rooms at 30 s cost 5–9 % of a core doing nothing.
IDLE_REPLIES_PER_SECOND = 2.0
#: ...but no long-poll asks for more than this.
LONGEST_POLL_MS = 900_000


def long_poll_ms(rooms: int, asked: int | None) -> int:
    """The long-poll timeout: `--timeout` when given, else 30 s, or longer with many rooms
    (60 rooms and more: 500 ms per room, so 1,000 rooms poll for 500 s; at most 15 min)."""
    if asked is not None:
        return asked
    per_rooms = int(rooms * 1000 / IDLE_REPLIES_PER_SECOND)
    return max(USUAL_TIMEOUT_MS, min(per_rooms, LONGEST_POLL_MS))


def spread_for(rooms: int) -> float:
    """Seconds over which many rooms spread their long-poll starts, and their resumption after
    an outage: a few rooms start at once, a thousand over 2 s."""
    return min(2.0, rooms / 500)


def summary(jobs: Sequence[RoomJob], *, drain: bool, shown: int = 5) -> str:
    """One line for a many-room run: "following 998 rooms; 2 failed: !a:x, !b:y"."""
    live = [job for job in jobs if job.session is not None and job.error is None]
    bad = [job.arg for job in jobs if job.error is not None and job.error.exit_code]
    verb = "draining" if drain else "following"
    line = f"{verb} {len(live)} room{'' if len(live) == 1 else 's'}"
    if bad:
        names = ", ".join(bad[:shown]) + (
            f" and {len(bad) - shown} more" if len(bad) > shown else ""
        )
        line += f"; {len(bad)} failed: {names}"
    return line


def followed_room(session: RoomSession, opts: FollowOptions) -> str:
    """The room a run will follow: a known upgrade (redirect) leads on to its replacement.

    An old room id and its replacement's alias are then one room, followed once: two threads
    would otherwise take the same room lock, the second waiting for itself (or exit 6).
    """
    room = session.room_id
    if opts.reset or not opts.follow_upgrades:
        return room  # --reset forgets the redirect; --no-follow stops at it
    seen = {room}
    while (new := session.store.redirect_of(session.homeserver, room)) and new not in seen:
        room = new
        seen.add(room)
    return room


Run = Callable[[RoomJob, AbstractContextManager[Any] | None], None]


def follow_rooms(
    jobs: Sequence[RoomJob],
    run: Run,
    *,
    concurrent: bool,
    failed: Callable[[RoomJob, PeekError], None],
    at_once: int | None = None,
    start_spread: float = 0.0,
) -> None:
    """Run `run(job, lock)` for every opened room: in threads (`concurrent`) or one by one.

    Concurrent: every room at once (`at_once` None: watch), or `at_once` rooms at a time
    (snapshot). Each room first waits a random share of `start_spread` seconds, so a thousand
    long-polls do not start (and time out) in lockstep.

    A room's `PeekError` is recorded on its job and reported through `failed`; the other rooms
    go on. A stop (signal, closed pipe) ends the whole run, with the delivery lock held.
    """
    live = [job for job in jobs if (job.session is not None or job.deferred) and job.error is None]
    if not concurrent:
        for job in live:
            try:
                run(job, None)
            except PeekError as exc:
                job.error = exc
                failed(job, exc)
        return
    lock = threading.Lock()
    fatal: list[BaseException] = []
    queue = iter(live)
    queue_guard = threading.Lock()

    workers = len(live) if at_once is None else max(1, min(at_once, len(live)))
    running = [workers]
    #: Set when every worker is done, or one met a stop: what the main thread waits for.
    over = threading.Event()

    def work() -> None:
        try:
            while not fatal:
                with queue_guard:
                    job = next(queue, None)
                if job is None:
                    return
                try:
                    if start_spread > 0:
                        retry.pause(retry.jitter(0.0, start_spread))
                    run(job, lock)
                except PeekError as exc:
                    job.error = exc
                    failed(job, exc)
                except BaseException as exc:  # a stop seen by this thread, a closed pipe, a bug
                    fatal.append(exc)
                    over.set()
        finally:
            with queue_guard:
                running[0] -= 1
                if not running[0]:
                    over.set()

    threads = [
        threading.Thread(target=work, name=f"peek room {n}", daemon=True) for n in range(workers)
    ]
    try:
        for thread in threads:
            thread.start()
        # Timed, so the signal handler runs promptly; one event to look at, not a thousand
        # threads twice a second.
        while not over.wait(0.5):
            pass
    except BaseException:
        signals.request_stop()  # a CMD or a backoff in a room thread must not hold the lock
        lock.acquire()  # wait for the chunk being delivered to be saved; never let go
        raise
    if fatal:
        signals.request_stop()
        lock.acquire()
        raise fatal[0]


def exit_code(jobs: Sequence[RoomJob]) -> int:
    """0 when no room failed; else the exit code of the first room (in argument order) that did."""
    for job in jobs:
        if job.error is not None and job.error.exit_code:  # AlreadyFollowed is no failure
            return job.error.exit_code
    return 0
