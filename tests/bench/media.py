"""Media offline: `peek export --media DIR` against a bare sequential `requests` loop.

A room gets `media_files` files of `media_bytes` random bytes (m.file events). Timed, in a
shuffled order per run: `peek export --media DIR` into a fresh DIR, the same export without
`--media`, the bare loop (`tests.bench.bare media`: one keep-alive session, one GET after the
other, each file written to disk) over the same files, and the bare loop over no file. peek's
download time is the first minus the second, the loop's the third minus the fourth, so neither
side's start-up nor peek's /messages walk counts: only the downloading. Every run's files are
checked against what was uploaded.

The rule each side follows is stated in the row: peek downloads `WORKERS` files at once (its
fixed bound), the loop one after the other. The note gives each run's own ratio (its four
processes ran back to back) and the load average around the runs: on a shared machine the
figure is only worth quoting from runs that agree, taken while the load was low.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import requests

from peekcli.media import WORKERS
from tests.bench.core import PEEK, Home, Row, Sizes, log, median, ratio_row, run_timed
from tests.bench.server import BenchServer
from tests.homeserver import User

REPO = Path(__file__).resolve().parents[2]
LIMIT = 0.6


def _upload(server: BenchServer, user: User, data: bytes, name: str) -> str:
    resp = requests.post(
        f"{server.url}/_matrix/media/v3/upload",
        params={"filename": name},
        data=data,
        headers={
            "Authorization": f"Bearer {user.access_token}",
            "Content-Type": "application/octet-stream",
        },
        timeout=60,
    )
    resp.raise_for_status()
    uri: str = resp.json()["content_uri"]
    return uri


def run(sizes: Sizes, server: BenchServer, owner: User, work: Path) -> list[Row]:
    n, size = sizes.media_files, sizes.media_bytes
    log(f"media: uploading {n} files of {size // 1024} KiB")
    room = server.room(owner, [owner], "media")
    files: dict[str, bytes] = {}
    for i in range(n):
        data = os.urandom(size)
        uri = _upload(server, owner, data, f"file-{i}.bin")
        server.hs.send_event(
            owner,
            room,
            "m.room.message",
            {
                "msgtype": "m.file",
                "body": f"file-{i}.bin",
                "url": uri,
                "info": {"size": size, "mimetype": "application/octet-stream"},
            },
        )
        files[uri[len("mxc://") :]] = data
    listing = work / "media-list.txt"
    listing.write_text("".join(f"{key}\n" for key in files))
    empty = work / "media-none.txt"
    empty.write_text("")
    home = Home.make(work / "media-home")
    run_timed([str(PEEK), "export", room, "--homeserver", server.url], env=home.env)  # the guest
    bare_env = {**home.env, "BENCH_TOKEN": server.guest().access_token, "PYTHONPATH": str(REPO)}
    bare = [sys.executable, "-m", "tests.bench.bare", "media", server.url]
    times: dict[str, list[float]] = {"peek": [], "plain": [], "bare": [], "bare0": []}
    problems: list[str] = []
    log(f"media: {sizes.media_runs} run(s) each of peek export --media and the bare loop")
    load_before = os.getloadavg()[0]
    for r in range(sizes.media_runs):
        order = list(times)
        random.shuffle(order)
        for name in order:
            target = work / f"media-{name}-{r}"
            shutil.rmtree(target, ignore_errors=True)
            if name == "peek":
                argv = [
                    str(PEEK),
                    "export",
                    room,
                    "--homeserver",
                    server.url,
                    "--media",
                    str(target),
                ]
            elif name == "plain":
                argv = [str(PEEK), "export", room, "--homeserver", server.url]
            else:
                argv = [*bare, str(target), str(listing if name == "bare" else empty)]
            times[name].append(
                run_timed(argv, env=bare_env if name.startswith("bare") else home.env)
            )
            if name in ("peek", "bare"):
                got = {
                    p.relative_to(target).as_posix(): p.read_bytes()
                    for p in target.rglob("*")
                    if p.is_file()
                }
                if got != files:
                    problems.append(f"{name} run {r}: {len(got)} of {n} files saved intact")
    load_after = os.getloadavg()[0]
    peek_time = median(times["peek"]) - median(times["plain"])
    bare_time = median(times["bare"]) - median(times["bare0"])
    per_run = [
        f"{(p - q) / (b - b0):.2f}" if b > b0 else "—"
        for p, q, b, b0 in zip(
            times["peek"], times["plain"], times["bare"], times["bare0"], strict=True
        )
    ]
    row = ratio_row(
        f"media: peek export --media, {n} files of {size // 1024} KiB, {WORKERS} at once "
        "(download time)",
        peek_time,
        bare_time,
        "bare sequential requests loop",
        unit="s",
        limit=LIMIT,
        note="; ".join(
            [
                f"peek export {median(times['peek']):.2f} s with --media, "
                f"{median(times['plain']):.2f} s without; loop {median(times['bare']):.2f} s, "
                f"{median(times['bare0']):.2f} s over no file",
                f"each run's ratio {', '.join(per_run)}",
                f"load average {load_before:.1f} before, {load_after:.1f} after",
                *problems,
            ]
        ),
    )
    if problems:
        row.ok = False
    return [row]
