"""The bench's Synapse: the test fixture's `Homeserver`, plus an access log to count requests.

Requests are counted at the server: Synapse's own access logger (`synapse.access.http.*`, one line
per finished request with its method, path and User-Agent) is routed to `access.log` in the
server's work directory. No proxy sits in between, so nothing is added to the times measured.
peek identifies itself as `peek/<version>`; each baseline loop sends its own User-Agent.

Bench-only settings: presence off (no presence churn waking long-polls or mixed into /events)
and cheap password hashing (bcrypt is irrelevant to what is measured and slow on 2 cores).
The work directory goes to /dev/shm when there is one, so creating 20,000 events is bound by
Synapse's CPU rather than by fsyncs of its SQLite file.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tests.homeserver import Homeserver, User

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" "(?P<agent>[^"]*)"')


def _log_config(workdir: Path) -> Path:
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "plain",
                "filename": str(workdir / "homeserver.log"),
            },
            "access": {
                "class": "logging.FileHandler",
                "formatter": "plain",
                "filename": str(workdir / "access.log"),
            },
        },
        "loggers": {
            "synapse.access": {"level": "INFO", "handlers": ["access"], "propagate": False}
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }
    path = workdir / "bench-log.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    agent: str


class BenchServer:
    """A started Synapse with request counting; use as a context manager."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.hs = Homeserver(
            workdir / "synapse",
            extra_config={
                "log_config": str(_log_config(workdir)),
                "bcrypt_rounds": 4,
                "presence": {"enabled": False},
            },
        )
        self.access_log = workdir / "access.log"
        #: Where the last settle() found its marker: later searches start there.
        self._scanned = 0

    def __enter__(self) -> BenchServer:
        self.hs.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hs.stop()

    @property
    def url(self) -> str:
        return self.hs.base_url

    # -- counting ----------------------------------------------------------------------------

    def mark(self) -> int:
        """The access log's current size: count requests made after this point."""
        self.settle()
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    def settle(self) -> None:
        """Wait until every finished request is in the log: a marker request shows up last."""
        token = f"bench-marker-{time.monotonic_ns()}"
        requests.get(
            f"{self.url}/_matrix/client/versions", headers={"User-Agent": token}, timeout=30
        )
        deadline = time.monotonic() + 10
        needle = token.encode()
        while time.monotonic() < deadline:
            if self.access_log.exists():
                with open(self.access_log, "rb") as fh:
                    fh.seek(self._scanned)
                    found = fh.read().find(needle)
                if found >= 0:
                    self._scanned += found
                    time.sleep(0.05)  # a request that finished at the same moment
                    return
            time.sleep(0.02)
        raise RuntimeError("Synapse's access log did not show the marker request")

    def requests_since(self, mark: int) -> list[Request]:
        self.settle()
        with open(self.access_log, "rb") as fh:
            fh.seek(mark)
            text = fh.read().decode(errors="replace")
        out = []
        for line in text.splitlines():
            m = _ACCESS.search(line)
            if m and not m["agent"].startswith("bench-marker"):
                out.append(Request(m["method"], m["path"].split("?", 1)[0], m["agent"]))
        return out

    @staticmethod
    def summary(reqs: list[Request]) -> str:
        counts = Counter(f"{r.method} {_short(r.path)}" for r in reqs)
        return ", ".join(f"{n}× {what}" for what, n in counts.most_common())

    # -- seeding -----------------------------------------------------------------------------

    def users(self, n: int, prefix: str = "u") -> list[User]:
        return [self.hs.register_user(f"{prefix}{i}") for i in range(n)]

    def room(self, owner: User, members: list[User], name: str) -> str:
        room_id = self.hs.create_room(owner, world_readable=True, name=name)
        for user in members:
            if user.user_id != owner.user_id:
                self.hs.join(user, room_id)
        return room_id

    def send_many(self, users: list[User], room_id: str, n: int, threads: int = 8) -> float:
        """Send `n` text messages from `threads` concurrent senders; returns events/s."""
        sent = [0] * threads
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            user = users[k % len(users)]
            session = requests.Session()
            headers = {"Authorization": f"Bearer {user.access_token}"}
            base = f"{self.url}/_matrix/client/v3/rooms/{quote(room_id, safe='')}/send"
            try:
                for i in range(k, n, threads):
                    body = {"msgtype": "m.text", "body": f"backlog message {i}"}
                    resp = session.put(
                        f"{base}/m.room.message/bench-{k}-{i}-{time.monotonic_ns()}",
                        json=body,
                        headers=headers,
                        timeout=60,
                    )
                    if resp.status_code != 200:
                        raise RuntimeError(f"send failed: HTTP {resp.status_code} {resp.text}")
                    sent[k] += 1
            except BaseException as exc:
                errors.append(exc)

        began = time.perf_counter()
        pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if errors:
            raise errors[0]
        return sum(sent) / (time.perf_counter() - began)

    def guest(self) -> User:
        return self.hs.register_guest()

    def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return self.hs.request(method, path, **kw)


def _short(path: str) -> str:
    """`/_matrix/client/v3/rooms/!x/messages` → `/rooms/…/messages` for the notes."""
    path = path.replace("/_matrix/client/v3", "").replace("/_matrix/client", "")
    return re.sub(r"/rooms/[^/]+", "/rooms/…", path)
