"""`peek info ROOM` and `peek doctor [HOMESERVER]`: what a room and a server allow."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from peekcli.commands.common import (
    MAX_SECONDS,
    Seconds,
    guarded,
    homeserver_option,
    server_or_homeserver,
    state_file_option,
    token_option,
)
from peekcli.errors import help_epilog

if TYPE_CHECKING:
    from peekcli.probe.doctor import DoctorReport
    from peekcli.probe.info import RoomReport


def _common(f: Any) -> Any:
    options = [
        token_option("Access token to use instead of a stored login or a guest."),
        state_file_option("State file (credentials beside it)."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command(epilog=help_epilog("info"))
@click.argument("room", metavar="ROOM")
@homeserver_option(
    "Client API URL of the homeserver to ask. Default: the server named by the room."
)
@_common
def info(room: str, **kw: Any) -> None:
    """Show what peek can tell about ROOM before watching it, and whether it can.

    Name, alias, topic, members, room version, join rule, history visibility, guest access,
    encryption, and a verdict: watchable as guest, with your account, or not (and why). Asks
    the room summary endpoint (no token needed on many servers), else the room's state.

    Exits 0 when the room is watchable; otherwise with the code `peek watch` would end with
    (3 not readable, 4 not found, 7 guests refused), after printing what is known.

    \b
    Examples:
      peek info '#lobby:example.org'
      peek info '#lobby:example.org' --json | jq .verdict
    """
    guarded(lambda: _info(room, **kw))


def _info(
    room: str, *, homeserver: str | None, token: str | None, state_file: Path | None, as_json: bool
) -> None:
    from peekcli.commands import output
    from peekcli.probe.info import room_info

    report = room_info(
        room,
        homeserver=homeserver,
        token=token,
        state_path=state_file,
        log=output.current().request_log,
        notice=output.current().note,
    )
    if as_json:
        _write_json(report.to_json())
    else:
        _print_info(report)
    if report.verdict.exit_code:
        sys.exit(report.verdict.exit_code)


def _print_info(report: RoomReport) -> None:
    from peekcli.render.sanitize import one_line

    f = report.facts
    members = str(f.num_joined_members) if f.num_joined_members is not None else None
    guests = {"can_join": "can join", "forbidden": "cannot join"}.get(f.guest_access or "")
    rows = [
        ("room", f.room_id or report.room),
        ("name", f.name),
        ("alias", f.canonical_alias),
        ("topic", f.topic),
        ("members", members),
        ("room version", f.room_version),
        ("room type", f.room_type),
        ("join rule", f.join_rule),
        ("history", f.history_visibility or ("not world_readable" if report.source else None)),
        ("guests", guests or f.guest_access),
        ("encryption", f.encryption),
        ("homeserver", report.homeserver),
        ("asked as", report.identity or "no token"),
        ("source", _SOURCES.get(report.source or "", "nothing readable")),
        ("verdict", f"{report.verdict.headline}: {report.verdict.reason}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        if label == "room type" and value is None:
            continue
        shown = one_line(value, 300) if value is not None else "-"
        sys.stdout.write(f"{label.ljust(width)}  {shown}\n")
    sys.stdout.flush()


_SOURCES = {
    "room_summary": "room summary (GET /_matrix/client/v1/room_summary)",
    "im.nheko.summary": "room summary (unstable im.nheko.summary)",
    "state": "room state",
}


def _write_json(doc: dict[str, Any]) -> None:
    from peekcli.render.jsonl import encode_event

    sys.stdout.buffer.write(encode_event(doc))
    sys.stdout.buffer.flush()


@click.command(epilog=help_epilog("doctor"))
@click.argument("server", required=False, metavar="[HOMESERVER]")
@homeserver_option("The homeserver to check, instead of HOMESERVER.")
@click.option(
    "--room",
    metavar="ROOM",
    help="A world-readable room to test peeking on. Default: the first world-readable room "
    "of the public directory (what `peek rooms` lists).",
)
@click.option(
    "--poll-interval",
    type=Seconds(min=0.5, max=MAX_SECONDS),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="The /messages poll interval to report, as `peek watch --poll-interval`.",
    hidden=True,
)
@_common
def doctor(server: str | None, homeserver: str | None, **kw: Any) -> None:
    """Check what HOMESERVER supports and which stream `peek watch` would use there.

    HOMESERVER (or -s/--homeserver) is a server name (example.org, found through .well-known)
    or a client API URL; default: PEEK_HOMESERVER, the config file, or the server of --room.
    Checks discovery, /versions, the server software, guest registration, then on a
    world-readable room: initialSync, /events peeking and /messages. Prints a pass/fail table
    (plain lines when piped) and the stream peek will use.

    Exits 0 only when watching works; the other codes say what failed (listed below).

    \b
    Examples:
      peek doctor example.org
      peek doctor https://matrix.example.org --room '#lobby:example.org'
    """
    given = server_or_homeserver(server, homeserver)
    guarded(lambda: _doctor(given, **kw))


def _doctor(
    homeserver: str | None,
    *,
    room: str | None,
    poll_interval: float,
    token: str | None,
    state_file: Path | None,
    as_json: bool,
) -> None:
    from peekcli.commands import output
    from peekcli.probe.doctor import doctor

    report = doctor(
        homeserver,
        room=room,
        token=token,
        state_path=state_file,
        log=output.current().request_log,
        notice=output.current().note,
        poll_interval=poll_interval,
    )
    if as_json:
        _write_json(report.to_json())
    elif sys.stdout.isatty():
        _doctor_table(report)
    else:
        _doctor_plain(report)
    if report.exit_code:
        sys.exit(report.exit_code)


_MARKS = {"pass": "ok", "fail": "FAIL", "info": "info", "skip": "skip"}


def _doctor_plain(report: DoctorReport) -> None:
    from peekcli.render.sanitize import one_line

    for check in report.checks:
        mark = _MARKS.get(check.status, check.status)
        sys.stdout.write(f"{mark:<5} {check.name:<19} {one_line(check.detail, 400)}\n")
    sys.stdout.flush()


def _doctor_table(report: DoctorReport) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from peekcli.render.sanitize import one_line

    styles = {"pass": "green", "fail": "bold red", "info": "cyan", "skip": "dim"}
    title = f"peek doctor: {one_line(report.homeserver or '?', 200)}"
    # A str title or cell is parsed as rich markup (Console's default): the URL may come from a
    # server's .well-known, so every piece goes in as Text.
    table = Table(title=Text(title), title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("detail")
    for check in report.checks:
        mark = Text(_MARKS.get(check.status, check.status), style=styles.get(check.status, ""))
        table.add_row(Text(check.name), mark, Text(one_line(check.detail, 400)))
    Console().print(table)
