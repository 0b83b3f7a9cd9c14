"""Process-wide output switches set by the top-level `-v` / `-q` flags."""

from __future__ import annotations

import sys

verbose = False
quiet = False
#: Pretty output: True/False from --color/--no-color, None = decide from the terminal and env.
color: bool | None = None
seconds = False
#: Pretty output: show spoiler text (--spoilers) instead of "[spoiler: reason]".
spoilers = False


def request_log(method: str, url: str, status: int | None, elapsed: float) -> None:
    """The client's request logger for `-v`: URLs only (tokens travel in a header, never here)."""
    if not verbose:
        return
    from peekcli.render.sanitize import one_line

    what = str(status) if status is not None else "failed"
    sys.stderr.write(f"peek: {method} {one_line(url, 300)} → {what} ({elapsed * 1000:.0f} ms)\n")
    sys.stderr.flush()
