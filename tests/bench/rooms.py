"""Many rooms (issue 17): `peek watch --rooms-from` with 1,000 rooms, against 10 rooms, 1 room
and a bare loop, in the same run.

The rooms are created once and kept: a Synapse work directory holding 1,000 world-readable
rooms (plus one for the 1-room baseline) and a peek home with every position primed by one
`snapshot --rooms-from`, under $PEEK_BENCH_CACHE (default ~/.cache/peek-bench), keyed by the
room count and Synapse's version. Each run copies it (Synapse to tmpfs) and starts from the
same rooms and positions; the first run pays the minutes of room creation. The smoke run
(`--quick`) makes its dozen rooms on the shared server instead. Then:
- live: `peek watch --rooms-from` under a soft `ulimit -n 1024`, from start to its summary line
  ("following N rooms"), printed once every room is live (its first long-poll under way);
- idle CPU of that watch over `--idle-seconds`, and how many long-polls were answered meanwhile;
- latency: send → line for messages to one of the 1,000 rooms, against a watch of one other
  room running at the same time, messages alternating between the two in random order;
- CPU per delivered event: the same messages spread over the 1,000 rooms and over 10 rooms,
  peek's CPU time (/proc) from the first send to the last line, per event;
- peak RSS (VmHWM) of the 1,000-room watch;
- `snapshot --rooms-from` over `rooms_snapshot` rooms with 5 new events each, against a bare
  `requests` loop draining the same rooms from the same positions with the same concurrency.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tests.bench.core import PEEK, Home, Row, Sizes, count_lines, log, median, ratio_row, run_timed
from tests.bench.idle import cpu_seconds
from tests.bench.latency import REPO, Consumer
from tests.bench.server import BenchServer
from tests.homeserver import User
from tests.statefile import saved, write_saved

LIVE_LIMIT_S = 5.0
CPU_LIMIT = 1.5
LATENCY_LIMIT_MS = 10.0
RSS_LIMIT_MIB = 150.0
IDLE_LIMIT_PERCENT = 1.0
SNAPSHOT_LIMIT = 1.2
SNAPSHOT_EVENTS = 5
AT_ONCE = 8  # what `snapshot --rooms-from` drains at once (peekcli.follow.multiroom)


def _side_by_side(call: Callable[[int], Any], count: int, threads: int = 8) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, range(count)))


def _send_spread(server: BenchServer, user: User, rooms: list[str], n: int, tag: str) -> None:
    """`n` messages, round robin over `rooms`, from 8 senders at once."""
    local = threading.local()

    def one(i: int) -> None:
        session = local.__dict__.setdefault("session", requests.Session())
        room = rooms[i % len(rooms)]
        resp = session.put(
            f"{server.url}/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message/"
            f"{tag}-{i}-{time.monotonic_ns()}",
            json={"msgtype": "m.text", "body": f"{tag} {i}"},
            headers={"Authorization": f"Bearer {user.access_token}"},
            timeout=60,
        )
        if resp.status_code != 200:
            raise RuntimeError(f"send failed: HTTP {resp.status_code}")

    _side_by_side(one, n)


class Watch(Consumer):
    """`peek watch --rooms-from LIST --json` under a soft open-file limit; stderr kept."""

    def __init__(self, listing: Path, home: Home, err: Path, soft_limit: int | None = None):
        self.err_path = err
        self.began = time.monotonic()
        argv = [str(PEEK), "watch", "--rooms-from", str(listing), "--json"]
        if soft_limit is not None:  # the common desktop/server default; peek raises it itself
            argv = ["sh", "-c", f'ulimit -Sn {soft_limit} && exec "$@"', "sh", *argv]
        super().__init__("peek watch --rooms-from", argv, home.env, err)

    def wait_live(self, rooms: int, timeout: float = 120) -> tuple[float, str]:
        """Seconds from start to the summary line, and that line."""
        deadline = self.began + timeout
        while time.monotonic() < deadline:
            text = self.err_path.read_text(errors="replace")
            for line in text.splitlines():
                if "following" in line and "rooms" in line:
                    return time.monotonic() - self.began, line
            if self.proc.poll() is not None:
                raise RuntimeError(f"peek watch exited {self.proc.returncode}: {text[-500:]}")
            time.sleep(0.01)
        raise RuntimeError(f"no summary line within {timeout:g} s")

    def drain_lines(self, n: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"got {got} of {n} lines")
            try:
                self.lines.get(timeout=left)
                got += 1
            except Exception:
                continue

    def hwm_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")


def _prime(listing: Path, home: Home, server: BenchServer) -> None:
    run_timed(
        [str(PEEK), "snapshot", "--rooms-from", str(listing), "--homeserver", server.url,
         "--json", "--history", "0"],
        env=home.env,
    )  # fmt: skip


def _cpu_per_event(
    watch: Watch, server: BenchServer, user: User, rooms: list[str], n: int, tag: str
) -> float:
    before = cpu_seconds(watch.proc.pid)
    _send_spread(server, user, rooms, n, tag)
    watch.drain_lines(n)
    return (cpu_seconds(watch.proc.pid) - before) / n


def _latency(
    consumers: dict[str, tuple[Consumer, str]], server: BenchServer, user: User, n: int
) -> tuple[float, ...]:
    """Median send → line (ms) per consumer, messages alternating between their rooms in a
    random order, one at a time: both see the same load, neither competes with the other."""
    times: dict[str, list[float]] = {name: [] for name in consumers}
    order = list(consumers)
    for i in range(n):
        random.shuffle(order)
        for name in order:
            consumer, room = consumers[name]
            time.sleep(0.05)
            marker = f"lat-{name}-{i}-{time.monotonic_ns()}"
            sent = time.perf_counter_ns()
            server.hs.send_text(user, room, marker)
            times[name].append((consumer.expect(marker) - sent) / 1e6)
    return tuple(median(times[name]) for name in consumers)


CACHE_ENV = "PEEK_BENCH_CACHE"


def cache_root() -> Path:
    """Where prepared rooms are kept between runs: $PEEK_BENCH_CACHE, else ~/.cache/peek-bench."""
    given = os.environ.get(CACHE_ENV)
    return Path(given) if given else Path.home() / ".cache" / "peek-bench"


@dataclass
class Prepared:
    """A Synapse work directory holding `rooms` (and one extra room for the 1-room baseline),
    alice who made them, and a peek home whose positions in every room are primed."""

    root: Path
    rooms: list[str]
    single: str
    alice: User
    url: str

    @classmethod
    def load(cls, root: Path) -> Prepared:
        meta = json.loads((root / "rooms.json").read_text())
        return cls(root, meta["rooms"], meta["single"], User(**meta["alice"]), meta["url"])


def prepared(many: int, root: Path) -> Prepared:
    """The cached preparation for `many` rooms, made once (creating 1,000 rooms and priming
    their positions takes minutes on 2 cores); a half-made one is never used."""
    from importlib.metadata import version

    final = root / f"rooms-{many}-synapse-{version('matrix-synapse')}"
    if (final / "rooms.json").exists():
        log(f"rooms: reusing the {many} rooms prepared in {final}")
        return Prepared.load(final)
    building = final.with_name(f"{final.name}.part-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    with BenchServer(building / "server") as server:
        alice = server.users(1, prefix="maker")[0]
        log(f"rooms: creating {many} rooms once, kept in {final}")
        made = _side_by_side(
            lambda i: server.hs.create_room(alice, world_readable=True, name=f"r{i}"), many + 1
        )
        rooms, single = made[:many], made[many]
        listing = building / "rooms.txt"
        listing.write_text("\n".join([*rooms, single]) + "\n")
        home = Home.make(building / "home")
        home.env["PEEK_HOMESERVER"] = server.url
        log(f"rooms: priming {many + 1} positions with snapshot --rooms-from")
        _prime(listing, home, server)
        meta = {"rooms": rooms, "single": single, "alice": asdict(alice), "url": server.url}
    (building / "server" / "access.log").unlink(missing_ok=True)
    (building / "rooms.json").write_text(json.dumps(meta))
    shutil.rmtree(final, ignore_errors=True)
    building.rename(final)
    return Prepared.load(final)


def rehome(home: Home, old_url: str, new_url: str) -> None:
    """Point a copied peek home at the server's new address (its port changes every run)."""
    if old_url == new_url:
        return
    doc = saved(home.state_file)
    for table in ("positions", "aliases", "redirects"):
        if old_url in doc.get(table, {}):
            doc[table][new_url] = doc[table].pop(old_url)
    write_saved(home.state_file, doc)
    for path in home.root.rglob("credentials.json"):
        path.write_text(path.read_text().replace(json.dumps(old_url), json.dumps(new_url)))


def run_cached(sizes: Sizes, work: Path, scratch: Path) -> list[Row]:
    """The rooms section on its own Synapse: a copy of the cached preparation (made if missing),
    so every run starts from the same rooms and positions."""
    prep = prepared(sizes.rooms_many, cache_root())
    server_dir = scratch / "rooms-server"
    shutil.copytree(prep.root / "server", server_dir)
    home = Home.make(work / "rooms-many-home")
    shutil.rmtree(home.root)
    shutil.copytree(prep.root / "home", home.root)
    home = Home.make(home.root)
    with BenchServer(server_dir) as server:
        rehome(home, prep.url, server.url)
        return measure(sizes, server, prep.alice, prep.rooms, prep.single, home, work)


def run(sizes: Sizes, server: BenchServer, alice: User, work: Path) -> list[Row]:
    """The rooms section on the shared Synapse, rooms made afresh (the smoke run: a dozen)."""
    many = sizes.rooms_many
    log(f"rooms: creating {many} rooms")
    made = _side_by_side(
        lambda i: server.hs.create_room(alice, world_readable=True, name=f"r{i}"), many + 1
    )
    rooms, single = made[:many], made[many]
    listing = work / "rooms-prime.txt"
    listing.write_text("\n".join(made) + "\n")
    home = Home.make(work / "rooms-many-home")
    home.env["PEEK_HOMESERVER"] = server.url
    _prime(listing, home, server)
    return measure(sizes, server, alice, rooms, single, home, work)


def measure(
    sizes: Sizes,
    server: BenchServer,
    alice: User,
    rooms: list[str],
    single: str,
    home: Home,
    work: Path,
) -> list[Row]:
    many, few = sizes.rooms_many, sizes.rooms_few
    home.env["PEEK_HOMESERVER"] = server.url
    listing = work / "rooms-many.txt"
    listing.write_text("\n".join(rooms) + "\n")
    few_listing = work / "rooms-few.txt"
    few_listing.write_text("\n".join(rooms[:few]) + "\n")
    snap_home = home.clone(work / "rooms-snap-home")
    snap_home.env["PEEK_HOMESERVER"] = server.url
    few_home = home.clone(work / "rooms-few-home")
    few_home.env["PEEK_HOMESERVER"] = server.url
    one_home = home.clone(work / "rooms-one-home")
    one_home.env["PEEK_HOMESERVER"] = server.url
    rows: list[Row] = []

    log(f"rooms: watching {many} rooms under ulimit -n 1024, and 1 room beside them")
    watch = Watch(listing, home, work / "rooms-many.err", soft_limit=1024)
    one = Consumer(
        "peek watch (1 room)", [str(PEEK), "watch", single, "--json"], one_home.env,
        work / "rooms-one.err",
    )  # fmt: skip
    try:
        live, summary = watch.wait_live(many)
        failed = "failed" in summary
        rows.append(
            Row(
                f"rooms: {many} rooms under ulimit -n 1024, last live",
                live,
                "s",
                target=f"all, ≤ {LIVE_LIMIT_S:g} s",
                ok=live <= LIVE_LIMIT_S and not failed and f"following {many} rooms" in summary,
                note=summary.removeprefix("peek: "),
            )
        )
        one.ready(lambda text: server.hs.send_text(alice, single, text))
        time.sleep(3.0)  # the start's spread long-polls are all in place
        idle_began = time.monotonic()
        idle_cpu = cpu_seconds(watch.proc.pid)
        mark = server.mark()
        log(f"rooms: idle for {sizes.idle_seconds:g} s")
        time.sleep(sizes.idle_seconds)
        idle_share = (
            100 * (cpu_seconds(watch.proc.pid) - idle_cpu) / (time.monotonic() - idle_began)
        )
        idle_polls = sum(1 for r in server.requests_since(mark) if r.agent.startswith("peek"))
        lat_many, lat_one = _latency(
            {"many": (watch, rooms[0]), "one": (one, single)}, server, alice, sizes.rooms_latency
        )
        log(f"rooms: {sizes.rooms_messages} messages over {many} rooms")
        per_event_many = _cpu_per_event(
            watch, server, alice, rooms, sizes.rooms_messages, "spread-many"
        )
        rss = watch.hwm_mib()
    finally:
        watch.stop()
        one.stop()
    rows.append(
        Row(
            f"rooms: peak RSS, {many} rooms",
            rss,
            "MiB",
            target=f"≤ {RSS_LIMIT_MIB:g} MiB",
            ok=rss <= RSS_LIMIT_MIB,
        )
    )
    rows.append(
        Row(
            f"rooms: idle CPU, {many} rooms, {sizes.idle_seconds:g} s",
            idle_share,
            "%",
            target=f"< {IDLE_LIMIT_PERCENT:g} %",
            ok=idle_share < IDLE_LIMIT_PERCENT,
            note=f"{idle_polls} long-polls answered in the window",
        )
    )
    extra = lat_many - lat_one
    rows.append(
        Row(
            f"rooms: send→line latency, {many} rooms",
            lat_many,
            "ms",
            lat_one,
            "1 room, same window",
            f"{extra:+.1f} ms",
            f"≤ +{LATENCY_LIMIT_MS:g} ms",
            extra <= LATENCY_LIMIT_MS,
            f"{sizes.rooms_latency} messages to each, alternating in random order",
        )
    )

    log(f"rooms: {sizes.rooms_messages} messages over {few} rooms")
    few_watch = Watch(few_listing, few_home, work / "rooms-few.err")
    try:
        few_watch.wait_live(few)
        per_event_few = _cpu_per_event(
            few_watch, server, alice, rooms[:few], sizes.rooms_messages, "spread-few"
        )
    finally:
        few_watch.stop()
    rows.append(
        ratio_row(
            f"rooms: CPU per delivered event, {many} vs {few} rooms",
            per_event_many,
            per_event_few,
            f"{few} rooms",
            unit="ms",
            scale=1000,
            limit=CPU_LIMIT,
            note=f"{sizes.rooms_messages} messages spread over the rooms",
        )
    )
    rows.append(_snapshot(sizes, server, alice, rooms[: sizes.rooms_snapshot], snap_home, work))
    return rows


def _snapshot(
    sizes: Sizes, server: BenchServer, alice: User, rooms: list[str], home: Home, work: Path
) -> Row:
    n = len(rooms)
    log(f"rooms: snapshot --rooms-from over {n} rooms, {SNAPSHOT_EVENTS} events each")
    listing = work / "rooms-snap.txt"
    listing.write_text("\n".join(rooms) + "\n")
    positions = saved(home.state_file).get("positions", {}).get(server.url, {})
    tokens = work / "rooms-snap-tokens.txt"
    tokens.write_text("".join(f"{r} {positions[r]['token']}\n" for r in rooms))
    _send_spread(server, alice, rooms, n * SNAPSHOT_EVENTS, "snap")
    guest = server.guest()
    peek_times, bare_times = [], []
    for i in range(sizes.backlog_runs):
        trial = home.clone(work / f"rooms-snap-{i}")
        trial.env["PEEK_HOMESERVER"] = server.url
        out = work / f"rooms-snap-{i}.jsonl"
        peek_times.append(
            run_timed(
                [str(PEEK), "snapshot", "--rooms-from", str(listing), "--json"],
                env=trial.env,
                stdout=out,
            )
        )
        if count_lines(out) < n * SNAPSHOT_EVENTS:
            raise RuntimeError(f"peek snapshot printed {count_lines(out)} lines")
        bare_out = work / f"rooms-snap-bare-{i}.jsonl"
        bare_times.append(
            run_timed(
                [sys.executable, "-m", "tests.bench.bare", "drain-many", server.url, str(tokens),
                 str(AT_ONCE)],
                env={**trial.env, "BENCH_TOKEN": guest.access_token, "PYTHONPATH": str(REPO)},
                stdout=bare_out,
            )
        )  # fmt: skip
    return ratio_row(
        f"rooms: snapshot --rooms-from, {n} rooms × {SNAPSHOT_EVENTS} events",
        median(peek_times),
        median(bare_times),
        f"bare loop, {AT_ONCE} at once",
        unit="s",
        limit=SNAPSHOT_LIMIT,
    )
