"""The pretty sink: a rich Console on stdout fed by `PrettyRenderer`.

Colour only when stdout is a terminal (rich also honours NO_COLOR and FORCE_COLOR), unless
`--color`/`--no-color` says otherwise. Piped output is plain text with no wrapping, one event per
line block, so `grep` and `less` see whole messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import IO, Any

from rich.console import Console

from peekcli import signals
from peekcli.render.pretty import PrettyRenderer, RoomInfo
from peekcli.sinks.reader import reader_gone


class PipeConsole(Console):
    """A Console that leaves a closed stdout to peek: rich's default exits 1 on a broken pipe,
    which would hide the documented quiet exit 141 (`peek watch … | head`)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console(stream: IO[str], color: bool | None) -> Console:
    """`color`: True forces styles, False removes them, None decides from the stream and env."""
    console = PipeConsole(
        file=stream,
        highlight=False,
        markup=False,
        emoji=False,
        force_terminal=True if color else None,
        no_color=True if color is False else None,
    )
    if not console.is_terminal:
        console.soft_wrap = True  # a pipe gets whole lines; the reader wraps if it wants
    return console


class PrettySink:
    """Renders each delivered batch to the console; the header comes first, from the room's state.

    Events are held until `flush` (the follower flushes once per batch, before saving its
    position), so that a batch's relations fold into their targets: the history shows a message
    edited, with its reactions, instead of one line per edit and reaction.
    """

    def __init__(self, console: Console, renderer: PrettyRenderer) -> None:
        self.console = console
        self.renderer = renderer
        self.pending: list[dict[str, Any]] = []
        self._pending_header: Any = None
        self._failed: OSError | None = None  # the output broke (closed pipe): it stays broken

    def header(
        self, info: RoomInfo, state: Iterable[Mapping[str, Any]], *, defer: bool = False
    ) -> None:
        """`defer`: print it with the first event, so that a snapshot with nothing new writes
        nothing at all (cron mails any output)."""
        self.renderer.learn_state(state)
        banner = self.renderer.header(info)
        if defer:
            self._pending_header = banner
        else:
            self.console.print(banner)

    def write(self, event: dict[str, Any]) -> None:
        self.pending.append(event)

    def flush(self) -> None:
        if self._failed is not None:
            # Printing this batch failed: a second flush must fail too, so that the follower
            # saves nothing the reader never got (the next run prints it again).
            raise self._failed
        batch, self.pending = self.pending, []  # taken first: a failing print never repeats it
        lines = self.renderer.render_batch(batch)
        try:
            with signals.deferred():  # a stop signal waits for the whole batch to be printed
                if batch and self._pending_header is not None:
                    banner, self._pending_header = self._pending_header, None
                    self.console.print(banner)
                for line in lines:
                    self.console.print(line)
            self.console.file.flush()
        except OSError as exc:
            self._failed = exc
            raise

    def reader_gone(self) -> bool:
        return reader_gone(self.console.file)
