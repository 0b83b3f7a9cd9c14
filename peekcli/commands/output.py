"""The output settings of one run (`peek -v` / `-q`) and its stderr, kept on click's context, not
in globals.

`cli` puts an `OutputContext` on the context of the run; commands and their helpers ask for it
with `current()`. click's context is the main thread's only: whatever runs in other threads (the
rooms of a many-room run, media downloads) is handed the context's bound methods, taken in the
main thread, never `current()`. A plain class (no dataclasses import): `peek --help` loads this
module.
"""

from __future__ import annotations

import sys

import click


class OutputContext:
    """What `-v` and `-q` asked for (log every request, or silence notes and status lines), and
    whether a status line is on the terminal now: every other line erases it first."""

    __slots__ = ("quiet", "status_shown", "verbose")

    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        #: True while a status line sits on a terminal's stderr without its newline.
        self.status_shown = False

    def request_log(self, method: str, url: str, status: int | None, elapsed: float) -> None:
        """The client's request logger for `-v`: URLs only (tokens travel in a header)."""
        if not self.verbose:
            return
        from peekcli.render.sanitize import one_line

        what = str(status) if status is not None else "failed"
        line = f"peek: {method} {one_line(url, 300)} → {what} ({elapsed * 1000:.0f} ms)\n"
        sys.stderr.write(line)
        sys.stderr.flush()

    def note(self, message: str) -> None:
        """A notice or warning on stderr; silenced by `peek -q`."""
        if not self.quiet:
            self.error(message)

    def error(self, message: str) -> None:
        """The one line an error gets on stderr (never silenced)."""
        self.clear_status()
        sys.stderr.write(f"peek: {safe(message)}\n")
        sys.stderr.flush()

    def show_status(self, message: str) -> None:
        """A passing state ("connection lost, retrying…"): on a terminal one line rewritten in
        place, so a long outage does not scroll; elsewhere (logs, pipes) a plain line each time."""
        if self.quiet:
            return
        line = f"peek: {safe(message)}"
        if not sys.stderr.isatty():
            sys.stderr.write(line + "\n")
        else:
            import os

            try:
                width = os.get_terminal_size(sys.stderr.fileno()).columns - 1
            except (OSError, ValueError):
                width = 0
            if width > 20 and len(line) > width:
                line = line[: width - 1] + "…"  # a wrapped line could not be erased in place
            sys.stderr.write(f"\r\x1b[K{line}")
            self.status_shown = True
        sys.stderr.flush()

    def clear_status(self) -> None:
        """Erase a status line left on the terminal (before any other line, and at exit)."""
        if self.status_shown:
            self.status_shown = False
            try:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass


def safe(text: str) -> str:
    """One line of at most 500 characters, with nothing a terminal would act on."""
    from peekcli.render.sanitize import one_line

    return one_line(text, 500)


_DEFAULT = OutputContext()


def current() -> OutputContext:
    """This run's settings (outside a `peek` run, e.g. a helper called by a test: the defaults).

    Main thread only: click keeps its context per thread."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(OutputContext) if ctx is not None else None
    return found if found is not None else _DEFAULT
