"""Notice a reader that went away even when there is nothing to write to it.

`peek watch … | head -n 3` on a quiet room: head exits, but a write would be the only thing to
tell peek so, and none comes until the next event, maybe hours later. On Linux the write end of
a pipe whose reader closed polls as POLLERR, so the sinks check it once per batch (one syscall).
"""

from __future__ import annotations

import select
from typing import IO, Any


def reader_gone(stream: IO[Any]) -> bool:
    """True when `stream` is a pipe nobody reads any more.

    Asked by the loop only *after* a batch's position is saved: what was flushed may already be
    on the reader's screen (`head` read it, then left), so it must count as delivered.
    """
    try:
        fd = stream.fileno()
        poller = select.poll()
    except (AttributeError, OSError, ValueError):
        return False  # not a real file (tests' buffers), or no poll() on this platform
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _fd, events in poller.poll(0))
