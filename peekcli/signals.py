"""SIGINT/SIGTERM → `Stopped`, except inside a critical section, where the stop waits for its end.

The stream loop saves its position inside `deferred()`: a signal that lands while the state file
is being written stops the run right after the write, so a position that matches what was already
printed is never dropped.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from peekcli.errors import EXIT_SIGINT, EXIT_SIGTERM, Stopped

_depth = 0
_pending: int | None = None


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _pending
    code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
    if _pending is not None:
        return  # already stopping: a second Ctrl-C must not interrupt the final save
    _pending = code
    if _depth == 0:
        raise Stopped(code)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Route SIGINT and SIGTERM to `Stopped` for the duration (main thread only)."""
    global _pending
    _pending = None
    old = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A section that a stop signal must not cut in half."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth == 0 and _pending is not None:
        raise Stopped(_pending)


def stop_requested() -> bool:
    """True once SIGINT/SIGTERM arrived, even inside `deferred()`: a wait that has written
    nothing yet (for a lock held elsewhere) gives up then instead of holding the stop."""
    return _pending is not None


def stop_now() -> None:
    """Raise the pending stop, if any (see `stop_requested`)."""
    if _pending is not None:
        raise Stopped(_pending)
