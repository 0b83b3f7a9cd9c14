"""What every command shares: option help and the error/signal guard."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

import click

from peekcli.errors import EXIT_PIPE, EXIT_SIGINT, PeekError, Stopped

FC = TypeVar("FC", bound=Callable[..., object])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def homeserver_option(help: str) -> Callable[[FC], FC]:
    """`-s/--homeserver URL` (env PEEK_HOMESERVER), completed from the state file."""
    from peekcli.commands.completion import complete_homeservers

    return click.option(
        "--homeserver",
        "-s",
        envvar="PEEK_HOMESERVER",
        metavar="URL",
        shell_complete=complete_homeservers,
        help=f"{help}  [env: PEEK_HOMESERVER]",
    )


def token_option(
    help: str = "Access token to use instead of a stored login or a guest.",
) -> Callable[[FC], FC]:
    """`--token TOKEN` (env PEEK_ACCESS_TOKEN)."""
    return click.option(
        "--token",
        envvar="PEEK_ACCESS_TOKEN",
        metavar="TOKEN",
        help=f"{help}  [env: PEEK_ACCESS_TOKEN]",
    )


def state_file_option(
    help: str = "State file with the saved positions; the credentials file lives beside it.",
) -> Callable[[FC], FC]:
    """`--state-file PATH` (env PEEK_STATE_FILE)."""
    from pathlib import Path  # not at top: `peek --help`/`--version` never need it (start-up)

    return click.option(
        "--state-file",
        envvar="PEEK_STATE_FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"{help}  [env: PEEK_STATE_FILE]",
    )


def safe(text: str) -> str:
    from peekcli.render.sanitize import one_line

    return one_line(text, 500)


def note(message: str) -> None:
    """A notice or warning on stderr; silenced by `peek -q`."""
    from peekcli.commands import output

    if not output.quiet:
        error(message)


def error(message: str) -> None:
    """The one line an error gets on stderr (never silenced)."""
    clear_status()
    sys.stderr.write(f"peek: {safe(message)}\n")
    sys.stderr.flush()


#: True while a status line sits on a terminal's stderr without its newline.
_status_shown = False


def show_status(message: str) -> None:
    """A passing state ("connection lost, retrying…"): on a terminal one line rewritten in
    place, so a long outage does not scroll; elsewhere (logs, pipes) a plain line each time."""
    global _status_shown
    from peekcli.commands import output

    if output.quiet:
        return
    line = f"peek: {safe(message)}"
    if not sys.stderr.isatty():
        sys.stderr.write(line + "\n")
    else:
        try:
            width = os.get_terminal_size(sys.stderr.fileno()).columns - 1
        except (OSError, ValueError):
            width = 0
        if width > 20 and len(line) > width:
            line = line[: width - 1] + "…"  # a wrapped line could not be erased in place
        sys.stderr.write(f"\r\x1b[K{line}")
        _status_shown = True
    sys.stderr.flush()


def clear_status() -> None:
    """Erase a status line left on the terminal (before any other line, and at exit)."""
    global _status_shown
    if _status_shown:
        _status_shown = False
        try:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def fail_usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def guarded(run: Callable[[], None]) -> None:
    """Run a command body: PeekError → one line on stderr + its exit code; signals; pipes."""
    from peekcli import signals

    try:
        with signals.installed():
            try:
                run()
            finally:
                clear_status()
    except PeekError as exc:
        error(exc.message)
        sys.exit(exc.exit_code)
    except Stopped as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_SIGINT)
    except BrokenPipeError:
        silence_stdout()
        sys.exit(EXIT_PIPE)


def silence_stdout() -> None:
    """After the reader went away, point stdout at /dev/null so exit does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
