"""Where delivered events go: the terminal, JSON lines, an `--exec` command.

A sink writes, flushes, and says whether its reader is still there; the follower saves a
batch's position between the flush and that question (peekcli/follow/follower.py).
"""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    """Where delivered events go; `flush` makes everything written so far durable for the reader."""

    def write(self, event: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def reader_gone(self) -> bool:
        """Asked after a batch is flushed *and saved*: is the reader still there?"""
        ...
