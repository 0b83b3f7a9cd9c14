"""JSON lines: the `--json` sink (each event as one line on a binary stream) and the
`export --format jsonl` writer."""

from __future__ import annotations

from typing import Any, BinaryIO

from peekcli.render.jsonl import encode_event
from peekcli.sinks.export_writer import ExportSummary
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


class JsonLinesWriter:
    """`peek export --format jsonl`: each event exactly as `--json` prints it (the export's spill
    already holds those very lines)."""

    wants_state = False

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def begin(self, room_id: str, state: list[dict[str, Any]], summary: ExportSummary) -> None:
        return None

    def write(self, line: bytes) -> None:
        self.out.write(line)

    def finish(self) -> None:
        self.out.flush()
