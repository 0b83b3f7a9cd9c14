"""The one retry policy: exponential backoff with jitter, Retry-After, renew the token once.

Used by the stream (every request of a follow, first contact included), the exporter, `--exec`
retries and OAuth polling, so a flaky network is met the same way everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from peekcli import signals
from peekcli.errors import NetworkError, RateLimited, TokenRejected

T = TypeVar("T")


#: How the loop waits and draws its jitter. Module attributes looked up when a `Follower` or
#: `RetryPolicy` is made (not defaults bound at import), so a test can swap them for a whole CLI
#: run and watch the backoff without waiting for it.
#: A stop (Ctrl-C, SIGTERM) ends a wait at once, in whichever thread waits (peekcli/signals.py).
pause: Callable[[float], None] = signals.wait
jitter: Callable[[float, float], float] = random.uniform


#: Each wait is up to this share shorter, at random, so many peeks cut off by the same outage
#: do not all come back in the same second.
JITTER = 0.2


@dataclass
class RetryPolicy:
    """Waits of 1 s, 2 s, 4 s … up to 60 s, each up to 20 % shorter at random (bounded jitter);
    `max_retries=None` retries for ever.

    A drain (snapshot, usually from cron) retries quickly: its delays stop growing at
    `quick_cap`, so a dead server ends the run in seconds and the next run tries again.
    """

    max_retries: int | None = None
    base: float = 1.0
    cap: float = 60.0
    quick_cap: float = 4.0
    rand: Callable[[float, float], float] = field(default_factory=lambda: jitter)

    def ceiling(self, attempt: int, *, quick: bool = False) -> float:
        """The wait before retry number `attempt + 1`, before jitter."""
        cap = min(self.cap, self.quick_cap) if quick else self.cap
        return min(cap, self.base * 2.0 ** min(attempt, 32))

    def delay(self, attempt: int, *, quick: bool = False) -> float:
        full = self.ceiling(attempt, quick=quick)
        return self.rand(full * (1 - JITTER), full)


def _seconds(delay: float) -> str:
    """A wait for the status line: "8 s", "2.5 s", "45 s"."""
    return f"{round(delay)} s" if delay >= 10 else f"{round(delay, 1):g} s"


def retrying(
    call: Callable[[], T],
    retry: RetryPolicy,
    *,
    status: Callable[[str | None], None] = lambda _m: None,
    renew: Callable[[], bool] = lambda: False,
    quick: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """`call()`, retrying what is worth retrying, with a status line while it fails.

    Network failures, 5xx and unreadable replies back off (quickly when `quick`, as in a
    drain), a rate limit waits as long as the server asks, and a rejected guest token is
    replaced once through `renew`; `status` shows the outage (None: it is over).
    """
    wait = sleep if sleep is not None else pause
    attempt = 0
    renewed = False
    while True:
        try:
            try:
                result = call()
            except TokenRejected:
                # A fresh guest refused at once would make this loop for ever: give up then.
                if renewed or not renew():
                    raise
                renewed = True
                continue
        except NetworkError as exc:  # also a renewal that failed on the network
            limit = retry.max_retries
            if limit is not None and attempt >= limit:
                if attempt == 0:
                    raise
                tries = "1 retry" if attempt == 1 else f"{attempt} retries"
                raise NetworkError(f"{exc.message} (gave up after {tries})") from None
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                delay = exc.retry_after
            else:
                delay = retry.delay(attempt, quick=quick)
            if isinstance(exc, RateLimited):
                what = "rate limited"
            elif attempt == 0:
                what = "connection lost"
            else:
                what = f"still failing ({attempt + 1} attempts)"
            attempt += 1
            status(f"{what}: {exc.message}; retrying in {_seconds(delay)}…")
            wait(delay)
            continue
        if attempt:
            status(None)
        return result
