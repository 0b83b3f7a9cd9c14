"""Plain text lines (`time sender: body`), the fallback when rich rendering is not wanted."""

from __future__ import annotations

import time
from typing import Any, TextIO

from peekcli.render.sanitize import clean, one_line


def format_event(event: dict[str, Any]) -> str:
    ts = event.get("origin_server_ts")
    when = time.strftime("%H:%M", time.localtime(ts / 1000)) if isinstance(ts, int) else "--:--"
    sender = one_line(event.get("sender", "?"))
    content = event.get("content")
    content = content if isinstance(content, dict) else {}
    etype = one_line(event.get("type", "?"))
    if etype == "m.room.message" and "body" in content:
        body = clean(content.get("body"))
    else:
        body = f"[{etype}]"
    return f"{when} {sender}: {body}"


class PlainSink:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def start(self, _start: Any) -> None:
        return None

    def write(self, event: dict[str, Any]) -> None:
        self.stream.write(format_event(event) + "\n")

    def flush(self) -> None:
        self.stream.flush()
