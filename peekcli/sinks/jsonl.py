"""The `--json` sink: each event as one JSON line on a binary stream."""

from __future__ import annotations

from typing import Any, BinaryIO

from peekcli.render.jsonl import encode_event
from peekcli.sinks.reader import reader_gone


class JsonLinesSink:
    """Writes events to a binary stream; `flush` is called by the loop once per chunk."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def write(self, event: dict[str, Any]) -> None:
        self.stream.write(encode_event(event))

    def flush(self) -> None:
        self.stream.flush()

    def reader_gone(self) -> bool:
        return reader_gone(self.stream)
