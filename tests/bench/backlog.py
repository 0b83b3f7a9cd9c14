"""Backlog drain and export: N events behind, peek against the bare loops, requests counted at
the server.

A room gets N text messages (from several senders, concurrently: the fixture has no rate limits).
Before they are sent, one `peek snapshot` saves the room's live position (and stores its guest),
so every timed `peek snapshot --json` resumes N events behind, exactly like a cron job after a
busy hour; each run starts from a copy of that saved state. The bare drain loop asks /events
from the same token with `limit=1000`; a second bare loop without `limit` shows what the
server's default page size would cost. Export (`peek export --format jsonl`) is timed against a
bare `/messages?dir=b&limit=1000` loop over a room of its own (5,000 messages by default: with
SQLite, Synapse's /messages slows down with the room's size, ~3 s a page at 20,000 events, and
a server that slow would hide what peek itself costs).

Times are whole processes (start-up included on both sides), output to a file; the request
counts come from Synapse's access log (every request of the run, whatever its endpoint). Every
run's output is checked: same events, same order, as the baseline's.
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.bench.core import PEEK, Home, Row, Sizes, count_lines, log, median, ratio_row, run_timed
from tests.bench.server import BenchServer, Request
from tests.homeserver import User
from tests.statefile import saved

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT = 1.2
HTML_LIMIT = 1.5
BARE = [sys.executable, "-m", "tests.bench.bare"]


@dataclass
class Backlog:
    room_id: str
    events: int
    token: str
    home: Home
    guest_token: str


def prepare(server: BenchServer, senders: list[User], work: Path, n: int, name: str) -> Backlog:
    """A room `n` messages ahead of a saved peek position (state in `work/<name>-home`)."""
    room_id = server.room(senders[0], senders, name)
    home = Home.make(work / f"{name}-home")
    run_timed(
        [str(PEEK), "snapshot", room_id, "--homeserver", server.url, "--json", "--history", "0"],
        env=home.env,
    )
    token = _saved_token(home.state_file, room_id)
    log(f"{name}: sending {n:,} messages")
    rate = server.send_many(senders, room_id, n)
    log(f"{name}: {n:,} messages sent ({rate:.0f}/s)")
    return Backlog(room_id, n, token, home, server.guest().access_token)


def _saved_token(state_file: Path, room_id: str) -> str:
    """The position peek saved for the room (whatever the state file's nesting)."""

    def find(node: object) -> str | None:
        if isinstance(node, dict):
            if room_id in node and isinstance(node[room_id], dict):
                token = node[room_id].get("token")
                if isinstance(token, str):
                    return token
            for value in node.values():
                found = find(value)
                if found:
                    return found
        return None

    token = find(saved(state_file))
    if token is None:
        raise RuntimeError(f"no saved position for {room_id} in {state_file}")
    return token


def _ids(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        return [json.loads(line).get("event_id", "") for line in fh]


def _timed(
    server: BenchServer, argv: list[str], env: dict[str, str], out: Path, agent: str
) -> tuple[float, list[Request]]:
    mark = server.mark()
    elapsed = run_timed(argv, env=env, stdout=out)
    reqs = [r for r in server.requests_since(mark) if r.agent.startswith(agent)]
    return elapsed, reqs


def drain(sizes: Sizes, server: BenchServer, backlog: Backlog, work: Path) -> list[Row]:
    n = backlog.events
    log(f"backlog drain: {sizes.backlog_runs} run(s) each of peek snapshot and the bare loop")
    bare_env = {**backlog.home.env, "BENCH_TOKEN": backlog.guest_token, "PYTHONPATH": str(REPO)}
    peek_argv = [str(PEEK), "snapshot", backlog.room_id, "--homeserver", server.url, "--json"]
    bare_argv = [*BARE, "drain", server.url, backlog.room_id, backlog.token, "1000"]
    times: dict[str, list[float]] = {"peek": [], "bare": []}
    counts: dict[str, list[int]] = {"peek": [], "bare": []}
    details: dict[str, str] = {}
    problems: list[str] = []
    for r in range(sizes.backlog_runs):
        order = ["peek", "bare"]
        random.shuffle(order)
        for name in order:
            out = work / f"drain-{name}-{r}.jsonl"
            if name == "peek":
                home = backlog.home.clone(work / f"drain-home-{r}")
                elapsed, reqs = _timed(server, peek_argv, home.env, out, "peek/")
            else:
                elapsed, reqs = _timed(server, bare_argv, bare_env, out, "bench-bare-drain")
            times[name].append(elapsed)
            counts[name].append(len(reqs))
            details[name] = server.summary(reqs)
            lines = count_lines(out)
            if lines != n:
                problems.append(f"{name} run {r} printed {lines} events, expected {n}")
        if _ids(work / f"drain-peek-{r}.jsonl") != _ids(work / f"drain-bare-{r}.jsonl"):
            problems.append(f"run {r}: peek's events differ from the bare loop's")
    # The same drain with the server's default page size, once (it is slow by design).
    default_out = work / "drain-default.jsonl"
    default_time, default_reqs = _timed(
        server, bare_argv[:-1], bare_env, default_out, "bench-bare-drain-default"
    )
    allowed = math.ceil(n / 1000) + 2
    peek_count = median(counts["peek"])
    time_row = ratio_row(
        f"backlog: peek snapshot --json, {n:,} events behind",
        median(times["peek"]),
        median(times["bare"]),
        "bare /events limit=1000",
        unit="s",
        limit=TIME_LIMIT,
        note="; ".join(problems),
    )
    if problems:
        time_row.ok = False
    return [
        time_row,
        Row(
            f"backlog: requests at the server, {n:,} events",
            peek_count,
            "req",
            median(counts["bare"]),
            "bare /events limit=1000",
            f"{peek_count - median(counts['bare']):+.0f}",
            f"≤ {allowed} (⌈N/1000⌉+2)",
            peek_count <= allowed and not problems,
            f"peek: {details['peek']}",
        ),
        Row(
            f"backlog: requests with the server's default page size, {n:,} events",
            float(len(default_reqs)),
            "req",
            None,
            "bare /events, no limit",
            f"{len(default_reqs) / max(peek_count, 1):.0f}× peek's",
            "",
            None,
            f"{default_time:.1f} s; {count_lines(default_out):,} events",
        ),
    ]


def export(sizes: Sizes, server: BenchServer, backlog: Backlog, work: Path) -> list[Row]:
    figure = f"export: peek export --format jsonl, {backlog.events:,}+ events"
    log(f"export: {sizes.export_runs} run(s) each of peek export and the bare /messages loop")
    bare_env = {**backlog.home.env, "BENCH_TOKEN": backlog.guest_token, "PYTHONPATH": str(REPO)}
    peek_argv = [
        str(PEEK),
        "export",
        backlog.room_id,
        "--homeserver",
        server.url,
        "--format",
        "jsonl",
    ]
    bare_argv = [*BARE, "export", server.url, backlog.room_id]
    html_argv = [*peek_argv[:-1], "html"]
    times: dict[str, list[float]] = {"peek": [], "bare": [], "html": []}
    counts: dict[str, list[int]] = {"peek": [], "bare": []}
    details: dict[str, str] = {}
    problems: list[str] = []
    for r in range(sizes.export_runs):
        order = ["peek", "bare", "html"]
        random.shuffle(order)
        for name in order:
            out = work / f"export-{name}-{r}.jsonl"
            if name == "html":
                home = backlog.home.clone(work / f"export-html-home-{r}")
                elapsed, _ = _timed(server, html_argv, home.env, out, "peek/")
                times[name].append(elapsed)
                articles = out.read_text(encoding="utf-8").count("<article ")
                if articles < backlog.events:
                    problems.append(f"html run {r}: {articles} events on the page")
                continue
            if name == "peek":
                home = backlog.home.clone(work / f"export-home-{r}")
                elapsed, reqs = _timed(server, peek_argv, home.env, out, "peek/")
            else:
                elapsed, reqs = _timed(server, bare_argv, bare_env, out, "bench-bare-export")
            times[name].append(elapsed)
            counts[name].append(len(reqs))
            details[name] = server.summary(reqs)
        peek_ids, bare_ids = (
            _ids(work / f"export-peek-{r}.jsonl"),
            _ids(work / f"export-bare-{r}.jsonl"),
        )
        if peek_ids != bare_ids:
            problems.append(
                f"run {r}: peek exported {len(peek_ids)} events, the bare loop {len(bare_ids)}"
                + (" (same count, other order or events)" if len(peek_ids) == len(bare_ids) else "")
            )
    exported = count_lines(work / f"export-bare-{sizes.export_runs - 1}.jsonl")
    time_row = ratio_row(
        figure,
        median(times["peek"]),
        median(times["bare"]),
        "bare /messages?dir=b&limit=1000",
        unit="s",
        limit=TIME_LIMIT,
        note="; ".join([f"{exported:,} events (the messages and the room's state)", *problems]),
    )
    if problems:
        time_row.ok = False
    peek_count, bare_count = median(counts["peek"]), median(counts["bare"])
    html_row = ratio_row(
        f"export: peek export --format html, {backlog.events:,}+ events",
        median(times["html"]),
        median(times["peek"]),
        "peek export --format jsonl",
        unit="s",
        limit=HTML_LIMIT,
        note="the same room, the same run; the page folds relations and sanitises every body",
    )
    return [
        time_row,
        html_row,
        Row(
            "export: requests at the server",
            peek_count,
            "req",
            bare_count,
            "bare /messages loop",
            f"{peek_count - bare_count:+.0f}",
            "bare ± 2",
            abs(peek_count - bare_count) <= 2,
            f"peek: {details['peek']}; bare: {details['bare']}",
        ),
    ]
