"""Notice a reader that went away even when there is nothing to write to it.

`peek watch … | head -n 3` on a quiet room: head exits, but a write would be the only thing to
tell peek so, and none comes until the next event, maybe hours later. On Linux the write end of
a pipe whose reader closed polls as POLLERR, so the sinks check it once per batch (one syscall).
"""

from __future__ import annotations

import errno
import select
from typing import IO, Any


def raise_if_reader_gone(stream: IO[Any]) -> None:
    """Raise BrokenPipeError when `stream` is a pipe nobody reads any more; else do nothing."""
    try:
        fd = stream.fileno()
        poller = select.poll()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests' buffers), or no poll() on this platform
    poller.register(fd, select.POLLOUT)
    for _fd, events in poller.poll(0):
        if events & select.POLLERR:
            raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")
