"""The output settings of one run (`peek -v` / `-q`), kept on click's context, not in globals.

`cli` puts an `OutputContext` on the context of the run; commands and their helpers ask for it
with `current()`. A plain class (no dataclasses import): `peek --help` loads this module.
"""

from __future__ import annotations

import sys

import click


class OutputContext:
    """What `-v` and `-q` asked for: log every request, or silence notes and status lines."""

    __slots__ = ("quiet", "verbose")

    def __init__(self, *, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet

    def request_log(self, method: str, url: str, status: int | None, elapsed: float) -> None:
        """The client's request logger for `-v`: URLs only (tokens travel in a header)."""
        if not self.verbose:
            return
        from peekcli.render.sanitize import one_line

        what = str(status) if status is not None else "failed"
        line = f"peek: {method} {one_line(url, 300)} → {what} ({elapsed * 1000:.0f} ms)\n"
        sys.stderr.write(line)
        sys.stderr.flush()


_DEFAULT = OutputContext()


def current() -> OutputContext:
    """This run's settings (outside a `peek` run, e.g. a helper called by a test: the defaults)."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(OutputContext) if ctx is not None else None
    return found if found is not None else _DEFAULT
