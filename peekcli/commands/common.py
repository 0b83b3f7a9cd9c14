"""What every command shares: option help and the error/signal guard."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from peekcli.commands import output
from peekcli.commands.output import safe as safe  # re-exported: the commands print through it
from peekcli.errors import EXIT_ERROR, EXIT_PIPE, EXIT_SIGINT, PeekError, Stopped

FC = TypeVar("FC", bound=Callable[..., object])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Seconds(click.FloatRange):
    """A duration in seconds: a finite float in range. `FloatRange` alone lets `nan` through
    (it compares False with any bound) and `inf`/`1e308` overflow the timers that use it."""

    name = "number of seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return float(seconds)


class Count(click.IntRange):
    """A whole number in range: click's `IntRange` calls "abc" "not a valid integer range",
    which reads as if a range were wanted (`--timeout abc`)."""

    name = "whole number"


#: The longest wait an option may ask for: a week (beyond it timers overflow, and nobody means it).
MAX_SECONDS = 7 * 86400.0


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


def server_or_homeserver(server: str | None, homeserver: str | None) -> str | None:
    """A command taking both `[SERVER]` and `-s/--homeserver`: the argument, else the option
    (or PEEK_HOMESERVER); both typed is a usage error, as in `peek rooms`."""
    if server and homeserver:
        ctx = click.get_current_context()
        if ctx.get_parameter_source("homeserver") == click.core.ParameterSource.COMMANDLINE:
            fail_usage("give HOMESERVER or --homeserver, not both")
    return server or homeserver or None


TOKEN_HELP = "`-` reads it from stdin, `@FILE` from FILE (a literal token shows in `ps`)."


def read_token_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The token behind `--token -`, `--token @FILE` or a literal; checked, never echoed.

    A literal token typed on the command line is visible to every local user in `ps`: warn."""
    if value is None:
        return None
    from peekcli.errors import UsageError
    from peekcli.tokens import is_literal, read_token

    source = ctx.get_parameter_source(param.name or "token")
    where = "--token" if source == click.core.ParameterSource.COMMANDLINE else "PEEK_ACCESS_TOKEN"
    try:
        token = read_token(value, where)
    except UsageError as exc:
        raise click.BadParameter(exc.message) from None
    if where == "--token" and is_literal(value):
        note(
            "warning: a token on the command line is visible to other users (ps); "
            "use --token - (stdin) or --token @FILE"
        )
    return token


def token_option(
    help: str = "Access token to use instead of a stored login or a guest.",
) -> Callable[[FC], FC]:
    """`--token TOKEN|-|@FILE` (env PEEK_ACCESS_TOKEN)."""
    return click.option(
        "--token",
        envvar="PEEK_ACCESS_TOKEN",
        metavar="TOKEN",
        callback=read_token_option,
        help=f"{help} {TOKEN_HELP}  [env: PEEK_ACCESS_TOKEN]",
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
        callback=_state_file_folder,
        help=f"{help}  [env: PEEK_STATE_FILE]",
    )


def _state_file_folder(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A state file must be able to live where it is named: a path under an existing *file*
    (`/some/file/state.json`) is refused naming that path, not the credentials file or lock
    beside it that peek would have tripped over first."""
    if value is None:
        return None
    for folder in value.parents:
        try:
            found = folder.exists()
        except OSError:  # not ours to look into: the store will say what it cannot do
            break
        if found:
            if not folder.is_dir():
                raise click.BadParameter(
                    f"{value}: {folder} is a file, so nothing can be stored under it; "
                    "name a file in a folder"
                )
            break
    return value


def note(message: str) -> None:
    """A notice or warning on stderr; silenced by `peek -q` (main thread: see `output`)."""
    output.current().note(message)


def error(message: str) -> None:
    """The one line an error gets on stderr (never silenced)."""
    output.current().error(message)


def show_status(message: str) -> None:
    """A passing state, on one line rewritten in place on a terminal (`OutputContext`)."""
    output.current().show_status(message)


def clear_status() -> None:
    """Erase a status line left on the terminal (before any other line, and at exit)."""
    output.current().clear_status()


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
    except OSError as exc:  # a full disk, a quota, EFBIG: one line, not a traceback
        if exc.filename is None:  # writing stdout; exit must not try (and fail) to flush it
            silence_stdout()
            error(f"cannot write the output: {exc.strerror or exc}")
        else:
            error(f"cannot write {exc.filename}: {exc.strerror or exc}")
        sys.exit(EXIT_ERROR)


def silence_stdout() -> None:
    """After the reader went away, point stdout at /dev/null so exit does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
