"""`peek watch` and `peek snapshot`: parse options into `RunOptions` and hand over to the core."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from peekcli.commands import output
from peekcli.commands.common import EXIT_CODES, fail_usage, guarded, note, safe
from peekcli.commands.completion import complete_homeservers, complete_rooms

if TYPE_CHECKING:
    from peekcli.runner import RunOptions
    from peekcli.stream import Hooks, Sink


def stream_options(f: Any) -> Any:
    """Options shared by `watch` and `snapshot`."""
    options = [
        click.argument(
            "rooms", nargs=-1, required=True, metavar="ROOM...", shell_complete=complete_rooms
        ),
        click.option(
            "--homeserver",
            "-s",
            envvar="PEEK_HOMESERVER",
            metavar="URL",
            shell_complete=complete_homeservers,
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


@click.command(epilog=EXIT_CODES)
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


@click.command(epilog=EXIT_CODES)
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
        fail_usage("--ephemeral goes with --json")
    if len(rooms) > 1:
        fail_usage("following several rooms at once is not supported yet; give one ROOM")
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
    guarded(lambda: _follow_one(rooms[0], opts, as_json=kw["as_json"]))


def _follow_one(room: str, opts: RunOptions, *, as_json: bool) -> None:
    from peekcli.runner import follow, open_room

    session = open_room(room, opts, log=output.request_log)
    sink, on_start = _make_sink(as_json)
    hooks = _hooks()
    with session.store.room_lock(
        session.homeserver,
        session.room_id,
        wait=opts.wait,
        on_wait=lambda: note(f"waiting for another peek following {session.room_id}…"),
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
        line = f"peek: {safe(message)}"
        sys.stderr.write(f"\r\x1b[K{line}" if tty else line + "\n")
        sys.stderr.flush()

    return Hooks(status=status, warn=lambda m: note(m))
