"""The baselines: the simplest loops that do peek's job with `requests`, run as their own process.

    python -m tests.bench.bare follow URL ROOM             long-poll /events, print each event
    python -m tests.bench.bare drain URL ROOM FROM [LIMIT] /events until empty (LIMIT or default)
    python -m tests.bench.bare export URL ROOM             /messages?dir=b&limit=1000, oldest first
    python -m tests.bench.bare drain-many URL FILE N       drain each "ROOM TOKEN" line, N at once
    python -m tests.bench.bare media URL DIR LIST          GET each server/media_id of LIST, in turn

The access token comes from BENCH_TOKEN (never argv). Every event goes to stdout as one JSON line,
flushed per reply, exactly what `peek --json` does; nothing else is done (no state, no checks), so
the difference to peek is what peek's care costs.
"""

from __future__ import annotations

import json
import os
import sys
from urllib.parse import quote

import requests

API = "/_matrix/client/v3"


def _session(agent: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {os.environ['BENCH_TOKEN']}"
    session.headers["User-Agent"] = agent
    return session


def _write(events: list[dict[str, object]]) -> None:
    out = sys.stdout
    for event in events:
        out.write(json.dumps(event) + "\n")
    out.flush()


def follow(url: str, room: str) -> None:
    session = _session("bench-bare-follow")
    init = session.get(
        f"{url}{API}/rooms/{quote(room, safe='')}/initialSync", params={"limit": 1}, timeout=30
    ).json()
    token = init["messages"]["end"]
    sys.stderr.write("ready\n")
    sys.stderr.flush()
    while True:
        reply = session.get(
            f"{url}{API}/events",
            params={"room_id": room, "from": token, "timeout": 30000},
            timeout=60,
        ).json()
        _write(reply["chunk"])
        token = reply["end"]


def drain(url: str, room: str, token: str, limit: str | None) -> None:
    agent = "bench-bare-drain" if limit else "bench-bare-drain-default"
    session = _session(agent)
    while True:
        params = {"room_id": room, "from": token, "timeout": 0}
        if limit:
            params["limit"] = int(limit)
        reply = session.get(f"{url}{API}/events", params=params, timeout=60).json()
        _write(reply["chunk"])
        if not reply["chunk"] or reply["end"] == token:
            return
        token = reply["end"]


def drain_many(url: str, listing: str, at_once: str) -> None:
    """Every `ROOM TOKEN` line of `listing`, drained as `drain` does, `at_once` rooms at a time."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    with open(listing) as fh:
        pairs = [line.split() for line in fh if line.strip()]
    local = threading.local()
    out = threading.Lock()

    def one(pair: list[str]) -> None:
        room, token = pair
        session = local.__dict__.setdefault("session", _session("bench-bare-drain-many"))
        while True:
            params = {"room_id": room, "from": token, "timeout": 0}
            reply = session.get(f"{url}{API}/events", params=params, timeout=60).json()
            with out:
                _write(reply["chunk"])
            if not reply["chunk"] or reply["end"] == token:
                return
            token = reply["end"]

    with ThreadPoolExecutor(int(at_once)) as pool:
        list(pool.map(one, pairs))


def export(url: str, room: str) -> None:
    session = _session("bench-bare-export")
    pages: list[list[dict[str, object]]] = []
    params: dict[str, object] = {"dir": "b", "limit": 1000}
    while True:
        reply = session.get(
            f"{url}{API}/rooms/{quote(room, safe='')}/messages", params=params, timeout=60
        ).json()
        if reply["chunk"]:
            pages.append(reply["chunk"])
        if not reply["chunk"] or not reply.get("end"):
            break
        params["from"] = reply["end"]
    for page in reversed(pages):
        _write(page[::-1])


def media(url: str, target: str, listing: str) -> None:
    """Authenticated media, one file after the other, each written to DIR/server/media_id."""
    session = _session("bench-bare-media")
    with open(listing) as fh:
        keys = [line.strip() for line in fh if line.strip()]
    for key in keys:
        resp = session.get(f"{url}/_matrix/client/v1/media/download/{key}", timeout=60)
        resp.raise_for_status()
        path = os.path.join(target, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(resp.content)


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "follow":
        follow(*args)
    elif mode == "drain":
        drain(args[0], args[1], args[2], args[3] if len(args) > 3 else None)
    elif mode == "drain-many":
        drain_many(*args)
    elif mode == "export":
        export(*args)
    elif mode == "media":
        media(*args)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
