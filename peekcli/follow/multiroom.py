"""Several rooms in one run: opened one after another, then followed side by side.

Each room keeps its own long-poll, its own `Follower` and its own saved position, in a thread of
its own. Their deliveries go through one lock held around "write the chunk, flush, save its
position", so two rooms' lines never interleave inside an event and every chunk on the screen is
saved before the next one starts. Signals land in the main thread, which only waits: on
Ctrl-C/SIGTERM it asks every thread to stop (`signals.request_stop`: a running `--exec` CMD is
killed, a backoff wait ends), takes that lock (letting the chunk being delivered finish and be
saved) and keeps it while the process exits, so no room is left with output printed but not
saved, and none can keep the run alive.

Rooms are opened (discovery, identity, alias) one by one in the main thread first: the rooms of
one homeserver then share one guest, and two arguments naming the same room are followed once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from peekcli import signals
from peekcli.connect import ConnectOptions, RoomSession, open_room
from peekcli.errors import NetworkError, PeekError
from peekcli.follow.plan import FollowOptions
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
    #: stream does, while the other rooms go on (where the given --token went, if one was).
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


def open_rooms(
    rooms: Sequence[str],
    where: ConnectOptions,
    opts: FollowOptions,
    *,
    log: RequestLog | None = None,
    failed: Callable[[RoomJob, PeekError], None],
    notice: Callable[[str], None],
) -> list[RoomJob]:
    """Open every room; a room that cannot be opened is reported and kept with its error."""
    unique = list(dict.fromkeys(rooms))
    jobs: list[RoomJob] = []
    seen: dict[tuple[str, str], str] = {}
    token_home: str | None = None  # where a given --token went first: it goes nowhere else
    for arg, label in zip(unique, labels(unique), strict=True):
        job = RoomJob(arg, label)
        try:
            job.session = open_room(arg, where, log=log, token_homeserver=token_home)
            if where.token and token_home is None:
                token_home = job.session.homeserver
        except NetworkError as exc:
            if where.token and token_home is None:
                job.error = exc  # no room has fixed where the token may go: fail as before
                failed(job, exc)
            else:
                job.deferred, job.token_homeserver = True, token_home
                notice(f"{arg}: {exc.message}; retrying while the other rooms go on")
            jobs.append(job)
            continue
        except PeekError as exc:
            job.error = exc
            failed(job, exc)
            jobs.append(job)
            continue
        key = (job.session.homeserver, followed_room(job.session, opts))
        if key in seen:
            notice(f"{arg} is the same room as {seen[key]}: following it once")
            continue
        seen[key] = arg
        jobs.append(job)
    return jobs


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
) -> None:
    """Run `run(job, lock)` for every opened room: in threads (`concurrent`) or one by one.

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

    def work(job: RoomJob) -> None:
        try:
            run(job, lock)
        except PeekError as exc:
            job.error = exc
            failed(job, exc)
        except BaseException as exc:  # a stop seen by this thread, a closed pipe, a bug
            fatal.append(exc)

    threads = [
        threading.Thread(target=work, args=(job,), name=f"peek {job.label}", daemon=True)
        for job in live
    ]
    try:
        for thread in threads:
            thread.start()
        while not fatal:
            alive = [t for t in threads if t.is_alive()]
            if not alive:
                break
            alive[0].join(0.5)  # a timed join lets the signal handler run promptly
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
