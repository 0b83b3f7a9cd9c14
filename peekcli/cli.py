"""The click app: parse options, pick defaults, delegate to the core, map errors to exit codes.

Only click and this module load for `--help`, `--version` and completion; requests, rich and
platformdirs are imported inside the commands that need them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from peekcli import __version__
from peekcli.errors import EXIT_PIPE, EXIT_SIGINT, PeekError, Stopped

if TYPE_CHECKING:
    from peekcli.runner import RunOptions
    from peekcli.stream import Hooks, Sink

EXIT_CODES = """\b
Exit codes:
  0    done (snapshot drained, --max-events reached)
  1    network or server failure after retries, unreadable reply, bad state file
  2    usage error (bad option or argument)
  3    forbidden: the room is not world-readable and the identity has not joined
  4    room or alias not found
  5    token rejected or logged out
  6    busy: another peek holds the room and --no-wait was given
  7    guest access refused by the server: log in or give --token
  8    the server cannot serve this room to peek
  9    an --exec command failed (--exec-failure stop)
  130  stopped by Ctrl-C (SIGINT), position of everything printed saved
  141  stdout closed by the reader (e.g. `| head`)
  143  stopped by SIGTERM, position of everything printed saved
"""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.version_option(__version__, "-V", "--version", prog_name="peek")
def cli() -> None:
    """Follow world-readable Matrix rooms from the terminal, without joining them.

    \b
    Examples:
      peek watch '#lobby:example.org'             follow a room live
      peek watch '#lobby:example.org' --json | jq -r .content.body
      peek snapshot '#lobby:example.org' --json   print what is new since last time, exit
    """


def stream_options(f: Any) -> Any:
    """Options shared by `watch` and `snapshot`."""
    options = [
        click.argument("rooms", nargs=-1, required=True, metavar="ROOM..."),
        click.option(
            "--homeserver",
            "-s",
            envvar="PEEK_HOMESERVER",
            metavar="URL",
            help="Client API URL of the homeserver (a bare host means https://host). "
            "Default: the server named by the room.  [env: PEEK_HOMESERVER]",
        ),
        click.option(
            "--token",
            envvar="PEEK_ACCESS_TOKEN",
            metavar="TOKEN",
            help="Access token to use instead of a guest.  [env: PEEK_ACCESS_TOKEN]",
        ),
        click.option(
            "--state-file",
            envvar="PEEK_STATE_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            help="State file with the saved positions.  [env: PEEK_STATE_FILE]",
        ),
        click.option("--json", "as_json", is_flag=True, help="One raw JSON event per line."),
        click.option(
            "--ephemeral",
            is_flag=True,
            help="With --json, also emit presence, typing and receipt events.",
        ),
        click.option(
            "--history",
            type=click.IntRange(min=0),
            default=10,
            show_default=True,
            metavar="N",
            help="Without a saved position, first print the last N events (0: none).",
        ),
        click.option("--from", "from_token", metavar="TOKEN", help="Start from this stream token."),
        click.option("--reset", is_flag=True, help="Forget the saved position for the room first."),
        click.option(
            "--max-events",
            type=click.IntRange(min=1),
            metavar="N",
            help="Stop (exit 0) after delivering N events; the rest waits for the next run.",
        ),
        click.option(
            "--no-wait",
            is_flag=True,
            help="Exit 6 instead of waiting when another peek is following the same room.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@cli.command(epilog=EXIT_CODES)
@stream_options
@click.option(
    "--timeout",
    "timeout_ms",
    type=click.IntRange(min=0),
    default=30_000,
    show_default=True,
    metavar="MS",
    help="Long-poll timeout asked of the server, in milliseconds.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    metavar="N",
    help="Give up (exit 1) after N failed attempts in a row. Default: retry for ever.",
)
def watch(rooms: tuple[str, ...], **kw: Any) -> None:
    """Follow ROOM live, printing every event as it arrives.

    ROOM is a room id (!id or !id:server), an alias (#room:server), a matrix.to link or a
    matrix: URI. The position is saved after every batch, so the next run resumes exactly where
    this one stopped.

    \b
    Examples:
      peek watch '#lobby:example.org'
      peek watch '!abc:example.org' --homeserver https://matrix.example.org --json
      peek watch 'https://matrix.to/#/#lobby:example.org' --history 0
    """
    _run(rooms, kw, drain=False)


@cli.command(epilog=EXIT_CODES)
@stream_options
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    metavar="N",
    help="Quick retries on network failure before giving up with exit 1.",
)
def snapshot(rooms: tuple[str, ...], **kw: Any) -> None:
    """Print everything new in ROOM since the last run, save the position, exit.

    Made for cron: each run continues exactly where the previous one stopped.

    \b
    Examples:
      peek snapshot '#lobby:example.org' --json >> lobby.jsonl
      */10 * * * * peek snapshot '#lobby:example.org' --json >> ~/lobby.jsonl
    """
    _run(rooms, kw, drain=True)


def _run(rooms: tuple[str, ...], kw: dict[str, Any], *, drain: bool) -> None:
    from peekcli.runner import RunOptions

    if kw["ephemeral"] and not kw["as_json"]:
        _fail_usage("--ephemeral goes with --json")
    if len(rooms) > 1:
        _fail_usage("following several rooms at once is not supported yet; give one ROOM")
    opts = RunOptions(
        homeserver=kw["homeserver"],
        token=kw["token"],
        state_path=kw["state_file"],
        history=kw["history"],
        from_token=kw["from_token"],
        reset=kw["reset"],
        timeout_ms=kw.get("timeout_ms", 0),
        include_ephemeral=kw["ephemeral"],
        max_events=kw["max_events"],
        drain=drain,
        wait=not kw["no_wait"],
        max_retries=kw["max_retries"],
    )
    _guarded(lambda: _follow_one(rooms[0], opts, as_json=kw["as_json"]))


def _follow_one(room: str, opts: RunOptions, *, as_json: bool) -> None:
    from peekcli.runner import follow, open_room

    session = open_room(room, opts)
    sink, on_start = _make_sink(as_json)
    hooks = _hooks()
    with session.store.room_lock(
        session.homeserver,
        session.room_id,
        wait=opts.wait,
        on_wait=lambda: _note(f"waiting for another peek following {session.room_id}…"),
    ):
        follow(session, opts, sink, hooks, on_start=on_start)


def _make_sink(as_json: bool) -> tuple[Sink, Any]:
    if as_json:
        from peekcli.render.jsonl import JsonLinesSink

        return JsonLinesSink(sys.stdout.buffer), None
    from peekcli.render.plain import PlainSink

    plain = PlainSink(sys.stdout)
    return plain, plain.start


def _hooks() -> Hooks:
    from peekcli.stream import Hooks

    tty = sys.stderr.isatty()
    showing = False

    def status(message: str | None) -> None:
        nonlocal showing
        if message is None:
            if showing:
                if tty:
                    sys.stderr.write("\r\x1b[K")
                sys.stderr.write("peek: connection restored\n")
                sys.stderr.flush()
            showing = False
            return
        showing = True
        line = f"peek: {_safe(message)}"
        sys.stderr.write(f"\r\x1b[K{line}" if tty else line + "\n")
        sys.stderr.flush()

    return Hooks(status=status, warn=lambda m: _note(m))


# -- state ---------------------------------------------------------------------------------------


@cli.group(context_settings=CONTEXT)
def state() -> None:
    """Inspect and edit saved stream positions (never shows tokens)."""


state_file_option = click.option(
    "--state-file",
    envvar="PEEK_STATE_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file to use.  [env: PEEK_STATE_FILE]",
)


def _store(state_file: Path | None) -> Any:
    from peekcli.state import StateStore, default_state_path

    return StateStore(state_file or default_state_path())


@state.command("path")
@state_file_option
def state_path(state_file: Path | None) -> None:
    """Print the state file's path.

    \b
    Example:
      cat "$(peek state path)"
    """
    click.echo(str(_store(state_file).path))


@state.command("list")
@state_file_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per room.")
def state_list(state_file: Path | None, as_json: bool) -> None:
    """List rooms with a saved position.

    \b
    Example:
      peek state list --json | jq -r .room_id
    """

    def run() -> None:
        import json

        for hs, room_id, pos in _store(state_file).positions():
            row = {
                "homeserver": hs,
                "room_id": room_id,
                "alias": pos.alias,
                "kind": pos.kind,
                "position": pos.token,
                "last_event_id": pos.last_event_id,
                "updated": pos.updated,
            }
            if as_json:
                click.echo(json.dumps(row))
            else:
                name = f"{room_id} ({pos.alias})" if pos.alias else room_id
                click.echo(_safe(f"{name}  {hs}  {pos.updated or '-'}  {pos.token}"))

    _guarded(run)


@state.command("forget")
@state_file_option
@click.argument("room")
@click.option("--homeserver", "-s", envvar="PEEK_HOMESERVER", metavar="URL")
def state_forget(state_file: Path | None, room: str, homeserver: str | None) -> None:
    """Forget the saved position of ROOM (a room id or an alias peek reached it by).

    \b
    Example:
      peek state forget '#lobby:example.org'
    """

    def run() -> None:
        from peekcli.rooms import normalize_homeserver

        store = _store(state_file)
        hs = normalize_homeserver(homeserver) if homeserver else None
        targets = {room}
        for pos_hs, room_id, pos in store.positions():
            if pos.alias == room and (hs is None or pos_hs == hs):
                targets.add(room_id)
        gone = sum(store.forget(hs, target) for target in targets)
        if not gone:
            raise PeekError(f"no saved position for {room}")
        click.echo(_safe(f"forgot {room}"))

    _guarded(run)


# -- completion ----------------------------------------------------------------------------------


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      peek completion bash > ~/.local/share/bash-completion/completions/peek
      peek completion zsh > "${fpath[1]}/_peek"
      peek completion fish > ~/.config/fish/completions/peek.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "peek", "_PEEK_COMPLETE").source())


# -- error handling ------------------------------------------------------------------------------


def _safe(text: str) -> str:
    from peekcli.render.sanitize import one_line

    return one_line(text, 500)


def _note(message: str) -> None:
    sys.stderr.write(f"peek: {_safe(message)}\n")
    sys.stderr.flush()


def _fail_usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _guarded(run: Any) -> None:
    """Run a command body: PeekError → one line on stderr + its exit code; signals; pipes."""
    from peekcli import signals

    try:
        with signals.installed():
            run()
    except PeekError as exc:
        _note(exc.message)
        sys.exit(exc.exit_code)
    except Stopped as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_SIGINT)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(EXIT_PIPE)


def _silence_stdout() -> None:
    """After the reader went away, point stdout at /dev/null so exit does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main() -> None:
    cli(prog_name="peek")
