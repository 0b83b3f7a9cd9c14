"""The one retry policy: exponential backoff with jitter, Retry-After, renew the token once.

Used by the stream (every request of a follow, first contact included), the exporter, `--exec`
retries and OAuth polling, so a flaky network is met the same way everywhere.
"""

from __future__ import annotations

import random
import threading
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


class Gate:
    """One homeserver's shared backoff: after a failure, one room probes, the others wait.

    A thousand rooms on one server must not retry in lockstep after a 429 or an outage. The
    first room that fails becomes the probe and backs off as usual; any other room that fails
    (or is about to send) while the server is down waits for the probe's success, then resumes
    after its own random share of `spread` seconds.
    """

    def __init__(self, spread: float = 2.0) -> None:
        self.spread = spread
        self._cond = threading.Condition()
        self._prober: int | None = None
        self._down = False
        #: Bumped at each recovery: a request sent before it that fails tells nothing new.
        self._recoveries = 0

    def wait_turn(self, wait: Callable[[float], None]) -> int:
        """Before a request: while another room probes, wait; then a jittered pause.

        Returns a ticket for `failed`: which recovery this request was sent after.
        """
        me = threading.get_ident()
        waited = False
        while True:
            with self._cond:
                if not self._down or self._prober in (None, me):
                    if self._down and self._prober is None:
                        self._prober = me  # the probe gave up: this room probes next
                    ticket = self._recoveries
                    break
                self._cond.wait(0.5)  # timed: a stop signal is seen promptly
                waited = True
        if waited and self.spread > 0:
            wait(jitter(0.0, self.spread))
        return ticket

    def failed(self, ticket: int) -> bool:
        """Note a failure; True when the caller is (now) the probe and should back off itself.

        A request sent before the last recovery (a long-poll that failed with everyone else,
        reported late) does not start a new round of probing: it is simply sent again.
        """
        me = threading.get_ident()
        with self._cond:
            if ticket != self._recoveries:
                return False
            if not self._down or self._prober is None:
                self._down, self._prober = True, me
            return self._prober == me

    def succeeded(self) -> None:
        """A request went through: if this room was the probe, the server is back for all."""
        with self._cond:
            if self._down and self._prober in (threading.get_ident(), None):
                self._down, self._prober = False, None
                self._recoveries += 1
                self._cond.notify_all()

    def gave_up(self) -> None:
        """The probe stops retrying: another waiting room takes over the probing."""
        with self._cond:
            if self._prober == threading.get_ident():
                self._prober = None
                self._cond.notify_all()


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
    #: Shared with the other rooms of the same homeserver (several rooms in one run).
    gate: Gate | None = None

    def ceiling(self, attempt: int, *, quick: bool = False) -> float:
        """The wait before retry number `attempt + 1`, before jitter."""
        cap = min(self.cap, self.quick_cap) if quick else self.cap
        return min(cap, self.base * 2.0 ** min(attempt, 32))

    def delay(self, attempt: int, *, quick: bool = False) -> float:
        full = self.ceiling(attempt, quick=quick)
        return self.rand(full * (1 - JITTER), full)


#: No retry comes sooner than this, whatever the jitter drew or the server asked.
MIN_DELAY = 0.5
#: The longest rate-limit wait a one-shot run (snapshot, export; often from cron) accepts: a
#: server asking for more ends it at once, saying so, and the next run tries again.
MAX_QUICK_WAIT = 60.0


def gave_up_waiting(message: str, seconds: float) -> str:
    return (
        f"{message}: the server asks to wait {_seconds(seconds)}, longer than the "
        f"{MAX_QUICK_WAIT:g} s a one-shot run waits; try again later"
    )


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
    max_wait: float | None = None,
) -> T:
    """`call()`, retrying what is worth retrying, with a status line while it fails.

    A rate limit asking to wait longer than `max_wait` (default: MAX_QUICK_WAIT when `quick`,
    else no limit) ends the call at once with a NetworkError saying so.

    Network failures, 5xx and unreadable replies back off (quickly when `quick`, as in a
    drain), a rate limit waits as long as the server asks, and a rejected guest token is
    replaced once through `renew`; `status` shows the outage (None: it is over).
    """
    wait = sleep if sleep is not None else pause
    gate = retry.gate
    attempt = 0
    renewed = False
    ticket = 0
    while True:
        if gate is not None:
            ticket = gate.wait_turn(wait)
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
            probe = gate.failed(ticket) if gate is not None else True
            limit = retry.max_retries
            if limit is not None and attempt >= limit:
                if gate is not None:
                    gate.gave_up()
                if attempt == 0:
                    raise
                tries = "1 retry" if attempt == 1 else f"{attempt} retries"
                raise NetworkError(f"{exc.message} (gave up after {tries})") from None
            longest = max_wait if max_wait is not None else MAX_QUICK_WAIT if quick else None
            asked = exc.retry_after if isinstance(exc, RateLimited) else None
            if asked is not None and longest is not None and asked > longest:
                # A one-shot run (cron) does not sleep for hours: it ends, saying why.
                if gate is not None:
                    gate.gave_up()
                raise NetworkError(gave_up_waiting(exc.message, asked)) from None
            attempt += 1
            if not probe:
                continue  # another room of this server probes: wait for it (gate.wait_turn)
            delay = max(retry.delay(attempt - 1, quick=quick), MIN_DELAY)
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                # Never less than the backoff: a Retry-After of 0, in the past or negative
                # would otherwise be a request loop with no pause at all.
                delay = max(exc.retry_after, delay)
            if isinstance(exc, RateLimited):
                what = "rate limited"
            elif attempt == 1:
                what = "connection lost"
            else:
                what = f"still failing ({attempt} attempts)"
            status(f"{what}: {exc.message}; retrying in {_seconds(delay)}…")
            wait(delay)
            continue
        except BaseException:
            if gate is not None:
                gate.gave_up()
            raise
        if gate is not None:
            gate.succeeded()
        if attempt:
            status(None)
        return result
