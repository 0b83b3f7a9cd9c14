"""SIGINT/SIGTERM → `Stopped`, except inside a critical section, where the stop waits for its end.

The stream loop saves its position inside `deferred()`: a signal that lands while the state file
is being written stops the run right after the write, so a position that matches what was already
printed is never dropped.

Signals land in the main thread only. With several rooms, each followed in a thread of its own,
the main thread calls `request_stop()`: waits made through `wait()` end at once, commands
registered with `on_stop()` (an `--exec` CMD) are killed, and `check()` raises `Stopped` in the
thread that asks, so no room thread can keep the run alive (or hold the delivery lock) after
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from peekcli.errors import EXIT_SIGINT, EXIT_SIGTERM, Stopped

_depth = 0
_pending: int | None = None
#: Set by `request_stop()`: the run is ending, every thread should leave.
_stopping = threading.Event()
_guard = threading.Lock()
_on_stop: dict[int, Callable[[], None]] = {}


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
    _stopping.clear()
    old = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _stopping.clear()  # the next run in this process (tests) starts unstopped


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


def request_stop() -> None:
    """The run is ending: wake every `wait()`, run every `on_stop()` action (kill a CMD)."""
    _stopping.set()
    with _guard:
        actions = list(_on_stop.values())
    for action in actions:
        with contextlib.suppress(Exception):
            action()


def stopping() -> bool:
    return _stopping.is_set()


def check() -> None:
    """Raise `Stopped` in this thread when the run is ending (see `request_stop`)."""
    if _stopping.is_set():
        raise Stopped(_pending if _pending is not None else EXIT_SIGTERM)


def wait(seconds: float) -> None:
    """Sleep `seconds`, or less when the run is ending; then `check()`.

    In the main thread a signal still interrupts it at once (its handler raises `Stopped`).
    """
    _stopping.wait(seconds)
    check()


@contextlib.contextmanager
def on_stop(action: Callable[[], None]) -> Iterator[None]:
    """Run `action` (from another thread) if the run is asked to end while inside this block."""
    key = id(action)
    with _guard:
        _on_stop[key] = action
    try:
        if _stopping.is_set():
            action()
        yield
    finally:
        with _guard:
            _on_stop.pop(key, None)


def stop_requested() -> bool:
    """True once SIGINT/SIGTERM arrived, even inside `deferred()`: a wait that has written
    nothing yet (for a lock held elsewhere) gives up then instead of holding the stop."""
    return _pending is not None


def stop_now() -> None:
    """Raise the pending stop, if any (see `stop_requested`)."""
    if _pending is not None:
        raise Stopped(_pending)
