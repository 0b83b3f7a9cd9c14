"""`peek export ROOM`: a room's history, oldest first, as JSON lines, text or an HTML page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from peekcli.commands import output
from peekcli.commands.common import (
    Count,
    guarded,
    homeserver_option,
    note,
    state_file_option,
    token_option,
)
from peekcli.commands.completion import complete_rooms
from peekcli.errors import help_epilog

if TYPE_CHECKING:
    from collections.abc import Callable

    from peekcli.export.plan import Progress
    from peekcli.sinks.export_writer import ExportWriter


@click.command(epilog=help_epilog("export"))
@click.argument("room", shell_complete=complete_rooms)
@homeserver_option("Client API URL of the homeserver. Default: found from the room's server name.")
@token_option("Access token to use instead of a guest.")
@state_file_option("State file (the credentials file lives beside it).")
@click.option(
    "--output",
    "-o",
    "output_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE",
    help="Write to FILE (replaced once the export is complete) instead of stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "text", "html"]),
    default="jsonl",
    show_default=True,
    help="jsonl: each event as the server sent it, one per line (like --json); text: the "
    "watch rendering without colour; html: one self-contained page of that rendering.",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only events from WHEN on: 2024-05-01, 2024-05-01T14:30 (local time unless a zone "
    "is given), or back from now: 30m, 12h, 7d, 2w.",
)
@click.option(
    "--until",
    metavar="WHEN",
    help="Only events up to WHEN (a bare date includes that whole day).",
)
@click.option(
    "--limit",
    type=Count(min=1),
    metavar="N",
    help="Only the newest N events (of those --since/--until select), still oldest first.",
)
@click.option(
    "--follow-predecessors",
    is_flag=True,
    help="Go on into the rooms this one replaced (m.room.create's predecessor), oldest first.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="With -o: continue an interrupted export of FILE (kept in FILE.part) where it stopped.",
)
@click.option(
    "--media",
    "media_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Save every image, video, audio, file and sticker (and image thumbnails) into "
    "DIR/SERVER/MEDIA_ID, skipping what is there; html and text exports link to those copies.",
)
@click.option(
    "--media-max-size",
    metavar="SIZE",
    help="With --media: skip files larger than SIZE (bytes, or 500k, 20M, 1G).",
)
@click.option(
    "--max-retries",
    type=Count(min=0),
    default=5,
    show_default=True,
    metavar="N",
    help="Retries of a failing request (backoff) before giving up with exit 1; --resume goes on.",
)
def export(room: str, **kw: Any) -> None:
    """Write ROOM's history, oldest first, to stdout or FILE.

    Pages back through the room with /messages (1000 events a request) and writes the events in
    the order they were sent. On a terminal a progress line shows on stderr; stdout carries only
    the data. An export to -o FILE that is interrupted (Ctrl-C, kill, network) continues with
    --resume and never writes an event twice.

    \b
    Examples:
      peek export '#lobby:example.org' > lobby.jsonl
      peek export '#lobby:example.org' --since 7d --format text
      peek export '#lobby:example.org' --follow-predecessors --format html -o lobby.html
      peek export '#lobby:example.org' -o lobby.jsonl --resume
    """
    if kw["resume"] and kw["output_file"] is None:
        raise click.UsageError("--resume goes with -o FILE (stdout exports cannot resume)")
    guarded(lambda: _export(room, kw))


def _export(room: str, kw: dict[str, Any]) -> None:
    from peekcli.connect import ConnectOptions, forbidden, open_room
    from peekcli.export.job import ExportJob
    from peekcli.export.plan import ExportRange, parse_when

    since = parse_when(kw["since"]) if kw["since"] else None
    until = parse_when(kw["until"], end_of_day=True) if kw["until"] else None
    if since is not None and until is not None and since > until:
        from peekcli.errors import UsageError

        raise UsageError("--since is later than --until: nothing to export")
    rng = ExportRange(since, until, kw["limit"], kw["follow_predecessors"])
    from peekcli.commands import media

    max_bytes = media.max_size(kw["media_max_size"])
    opts = ConnectOptions(
        kw["homeserver"], kw["token"], kw["state_file"], notice=output.current().note
    )
    session = open_room(room, opts, log=output.current().request_log)
    to_terminal = kw["output_file"] is None and sys.stdout.isatty()
    progress, done = _progress_display(to_terminal)
    job = ExportJob(
        client=session.client,
        homeserver=session.homeserver,
        room_id=session.room_id,
        range=rng,
        output=kw["output_file"],
        resume=kw["resume"],
        stdout=sys.stdout.buffer if kw["output_file"] is None else None,
        progress=progress,
        warn=note,
        renew_token=session.renew,
        max_retries=kw["max_retries"],
    )
    link = None
    if kw["media_dir"] is not None:
        job.media = media.downloader(
            session, kw["media_dir"], max_bytes, kw["max_retries"], output.current()
        )
        page_dir = kw["output_file"].parent if kw["output_file"] is not None else Path.cwd()
        link = job.media.store.linker(page_dir)
    from peekcli.errors import ForbiddenError

    try:
        try:
            job.run(_writer_factory(kw["fmt"], link))
        finally:
            done()
            _say_what_is_left(job, kw["output_file"])
    except ForbiddenError as exc:
        raise forbidden(session, exc) from None
    if job.media_report is not None:
        media.say(job.media_report, kw["media_dir"])
    if job.resumed_from:
        note(f"resumed after {job.resumed_from} events fetched before")


def _say_what_is_left(job: Any, output_file: Path | None) -> None:
    """After a failed or interrupted `-o` export: is there something to --resume, or nothing?"""
    if output_file is None or job.left_behind is None:
        return
    import shlex

    part = f"{output_file}.part"
    if job.left_behind == "resumable":
        target = shlex.quote(str(output_file))
        note(f"export stopped; {part} is kept: `peek export … -o {target} --resume` goes on")
    else:
        note(f"export stopped before any page was complete; nothing kept ({part} removed)")


def _writer_factory(
    fmt: str, link: Callable[[str], str | None] | None
) -> Callable[[BinaryIO], ExportWriter]:
    def make(out: BinaryIO) -> ExportWriter:
        if fmt == "jsonl":
            from peekcli.sinks.jsonl import JsonLinesWriter

            return JsonLinesWriter(out)
        if fmt == "text":
            from peekcli.sinks.export_text import TextWriter

            return TextWriter(out, media=link)
        from peekcli.sinks.export_html import HtmlWriter

        return HtmlWriter(out, media=link)

    return make


def _progress_display(
    to_terminal: bool = False,
) -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A progress line on a terminal's stderr (events, date reached, events/s); else nothing.

    It is the shared status line (`show_status`), which every notice and error erases first. While
    the events are written to a terminal's stdout (`to_terminal`) it is erased and stays away, so
    no progress text is ever left glued to the data.
    """
    from peekcli.commands import output

    if output.current().quiet or not sys.stderr.isatty():
        return (lambda _p: None), (lambda: None)
    import time

    from peekcli.commands.common import clear_status, show_status

    started = time.monotonic()
    last = 0.0
    phase = "fetching"

    def update(p: Progress) -> None:
        nonlocal started, phase, last
        if p.phase != phase:
            phase, started = p.phase, time.monotonic()
            if to_terminal:
                clear_status()
        if p.phase == "writing" and to_terminal:
            return
        now = time.monotonic()
        if now - last < 0.1:
            return
        last = now
        rate = p.events / max(now - started, 1e-3)
        if p.phase == "writing":
            text = f"writing: {p.events} events"
        elif p.phase == "media":
            text = f"saving media: {p.events} events looked at"
        else:
            reached = ""
            if p.oldest_ts is not None:
                from datetime import datetime

                try:  # origin_server_ts is the server's word: any int, however absurd
                    when = datetime.fromtimestamp(p.oldest_ts / 1000)
                    reached = f", back to {when:%Y-%m-%d %H:%M}"
                except (OverflowError, OSError, ValueError):
                    pass
            text = f"fetched {p.events} events{reached} ({rate:.0f}/s)"
        show_status(text)

    return update, clear_status
