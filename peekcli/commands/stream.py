"""`peek watch` and `peek snapshot`: parse options into a plan and hand over to the core."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from peekcli.commands import delivery, output
from peekcli.commands.common import (
    MAX_SECONDS,
    Count,
    Seconds,
    fail_usage,
    guarded,
    homeserver_option,
    state_file_option,
    token_option,
)
from peekcli.commands.completion import complete_rooms
from peekcli.errors import PeekError, help_epilog

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from peekcli.connect import ConnectOptions, GuestMode, RoomSession
    from peekcli.follow.plan import Delivery, FollowOptions, Hooks, Start
    from peekcli.sinks import Sink
    from peekcli.sinks.exec import ExecPolicy


def stream_options(f: Any) -> Any:
    """Options shared by `watch` and `snapshot`."""
    options = [
        click.argument("rooms", nargs=-1, metavar="ROOM...", shell_complete=complete_rooms),
        click.option(
            "--rooms-from",
            type=click.Path(dir_okay=False, allow_dash=True),
            metavar="FILE",
            help="Also the rooms listed in FILE ('-': standard input), one per line; blank "
            "lines and comments ('# ' to the end of a line) are skipped. Rooms open several at "
            "a time and share one guest per homeserver; one summary line goes to stderr.",
        ),
        homeserver_option(
            "Client API URL of the homeserver (a bare host means https://host). Default: the "
            "config file's, else discovered from the server named by the room (.well-known)."
        ),
        token_option("Access token to use instead of a guest."),
        click.option(
            "--guest/--no-guest",
            "guest",
            default=None,
            help="--guest: watch as a guest even when logged in. --no-guest: never register a "
            "guest (fail unless logged in or given --token). Default: --token, else the login "
            "stored by `peek login`, else a guest.",
        ),
        state_file_option("State file with the saved positions."),
        click.option("--json", "as_json", is_flag=True, help="One raw JSON event per line."),
        click.option(
            "--ephemeral",
            is_flag=True,
            help="With --json, also emit presence, typing and receipt events.",
        ),
        click.option(
            "--history",
            type=Count(min=0),
            default=10,
            show_default=True,
            metavar="N",
            help="Without a saved position, first print the last N events (0: none).",
        ),
        click.option("--from", "from_token", metavar="TOKEN", help="Start from this stream token."),
        click.option("--reset", is_flag=True, help="Forget the saved position for the room first."),
        click.option(
            "--stream",
            type=click.Choice(["auto", "events", "messages"]),
            default="auto",
            show_default=True,
            help="How to follow the room: /events long-polling, /messages polling (for servers "
            "without /events peeking), or auto: /events, falling back to /messages. A saved "
            "position is only resumed with the kind of stream that made it.",
        ),
        click.option(
            "--max-events",
            type=Count(min=1),
            metavar="N",
            help="Stop (exit 0) after delivering N events; the rest waits for the next run. "
            "(--history is context: only its oldest N events are shown then.)",
        ),
        click.option("--seconds", is_flag=True, help="Pretty output: show times as HH:MM:SS."),
        click.option(
            "--spoilers",
            is_flag=True,
            help="Pretty output: show the text of spoilers (default: only [spoiler: reason]).",
        ),
        click.option(
            "--color/--no-color",
            default=None,
            help="Pretty output: force styles on or off (default: on for a terminal, "
            "honouring NO_COLOR and FORCE_COLOR).",
        ),
        click.option(
            "--no-wait",
            is_flag=True,
            help="Exit 6 instead of waiting when another peek is following the same room.",
        ),
        click.option(
            "--type",
            "types",
            multiple=True,
            metavar="TYPE",
            help="Only events of this type; a glob like 'm.room.*' works (repeatable).",
        ),
        click.option(
            "--sender",
            "senders",
            multiple=True,
            metavar="@USER",
            help="Only events from this user id (repeatable; globs like '@*:example.org').",
        ),
        click.option(
            "--grep",
            metavar="REGEX",
            help="Only events whose content.body matches this Python regex ('(?i)…': any case).",
        ),
        click.option(
            "--messages-only",
            is_flag=True,
            help="Only messages: m.room.message, m.sticker, encrypted messages and polls.",
        ),
        click.option(
            "--media",
            "media_dir",
            type=click.Path(file_okay=False, path_type=Path),
            metavar="DIR",
            help="Also save every delivered event's media (images, videos, audio, files, "
            "stickers, thumbnails) into DIR/SERVER/MEDIA_ID before its position is saved.",
        ),
        click.option(
            "--media-max-size",
            metavar="SIZE",
            help="With --media: skip files larger than SIZE (bytes, or 500k, 20M, 1G).",
        ),
    ]
    f = delivery.delivery_options(f)  # applied first, so listed after the options above
    for option in reversed(options):
        f = option(f)
    return f


@click.command(epilog=help_epilog("watch"))
@stream_options
@click.option(
    "--timeout",
    "timeout_ms",
    type=Count(min=0, max=int(MAX_SECONDS * 1000)),  # beyond it socket timeouts overflow
    default=None,
    metavar="MS",
    help="Long-poll timeout asked of the server, in milliseconds [default: 30000; with 60 "
    "rooms or more, 500 per room, at most 900000, back to 30000 if a proxy cuts polls short].",
)
@click.option(
    "--poll-interval",
    type=Seconds(min=0.5, max=3600),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="With /messages polling: seconds between polls while events flow; it grows up to "
    "30 s while the room is quiet and snaps back on new events.",
)
@click.option(
    "--max-retries",
    type=Count(min=0),
    metavar="N",
    help="Give up (exit 1) when a request still fails after N retries in a row (waits of "
    "1 s, 2 s, 4 s … up to 60 s, each up to 20% shorter at random; rate limits wait as the "
    "server asks). Default: retry for ever.",
)
def watch(rooms: tuple[str, ...], **kw: Any) -> None:
    """Follow ROOM live, printing every event as it arrives.

    ROOM is a room id (!id or !id:server), an alias (#room:server), a matrix.to link or a
    matrix: URI. The position is saved after every batch, so the next run resumes exactly where
    this one stopped. Without --homeserver the server is found from the room's server name
    (https://NAME/.well-known/matrix/client, then https://NAME).

    Several ROOMs are followed at once, each line marked with a short room label; each room's
    position is saved on its own, --max-events counts per room, and a room that fails (not found,
    forbidden) is reported while the others go on (the exit code is the first failure's).

    \b
    Examples:
      peek watch '#lobby:example.org'
      peek watch '#lobby:example.org' '#dev:example.org' --messages-only
      peek watch '!abc:example.org' --homeserver https://matrix.example.org --json
      peek watch 'https://matrix.to/#/#lobby:example.org' --history 0
    """
    _run(rooms, kw, drain=False)


@click.command(epilog=help_epilog("snapshot"))
@stream_options
@click.option(
    "--max-retries",
    type=Count(min=0),
    default=3,
    show_default=True,
    metavar="N",
    help="Quick retries (at most 4 s apart) of a failing request before giving up with "
    "exit 1; the saved position stays as it was.",
)
def snapshot(rooms: tuple[str, ...], **kw: Any) -> None:
    """Print everything new in ROOM since the last run, save the position, exit.

    Made for cron: each run continues exactly where the previous one stopped. Several ROOMs are
    drained one after another; a failing room is reported, the others still run, and the exit
    code is the first failure's.

    \b
    Examples:
      peek snapshot '#lobby:example.org' --json >> lobby.jsonl
      */10 * * * * peek snapshot '#lobby:example.org' --json >> ~/lobby.jsonl
    """
    _run(rooms, kw, drain=True)


def _guest_mode(guest: bool | None) -> GuestMode:
    """`--guest` → "force", `--no-guest` → "never"; a --guest beside a typed --token is a clash."""
    if guest is None:
        return "auto"
    if guest:
        ctx = click.get_current_context()
        if ctx.get_parameter_source("token") == click.core.ParameterSource.COMMANDLINE:
            fail_usage("--guest and --token exclude each other")
        return "force"
    return "never"


def _run(rooms: tuple[str, ...], kw: dict[str, Any], *, drain: bool) -> None:
    from peekcli.connect import ConnectOptions
    from peekcli.filters import build_filter
    from peekcli.follow.multiroom import long_poll_ms
    from peekcli.follow.plan import FollowOptions

    if kw["ephemeral"] and not kw["as_json"]:
        fail_usage("--ephemeral goes with --json")
    many = kw["rooms_from"] is not None
    if many:
        rooms = tuple(dict.fromkeys(rooms + _read_rooms(kw["rooms_from"])))
    elif not rooms:
        fail_usage("give a ROOM, or --rooms-from FILE")
    if kw["from_token"] and (len(rooms) > 1 or many):
        fail_usage("--from goes with one ROOM: a stream token is where one room's run stood")
    try:
        accept = build_filter(
            types=kw["types"],
            senders=kw["senders"],
            grep=kw["grep"],
            messages_only=kw["messages_only"],
        )
    except PeekError as exc:
        fail_usage(exc.message)
    where = ConnectOptions(
        homeserver=kw["homeserver"],
        token=kw["token"],
        state_path=kw["state_file"],
        guest=_guest_mode(kw["guest"]),
        notice=output.current().note,
    )
    opts = FollowOptions(
        history=kw["history"],
        from_token=kw["from_token"],
        reset=kw["reset"],
        timeout_ms=long_poll_ms(len(rooms), kw.get("timeout_ms")),
        timeout_chosen=kw.get("timeout_ms") is None,
        max_events=kw["max_events"],
        drain=drain,
        wait=not kw["no_wait"],
        max_retries=kw["max_retries"],
        stream=kw["stream"],
        poll_interval=kw.get("poll_interval", 2.0),
        follow_upgrades=not kw["no_follow"],
    )
    from peekcli.commands import media

    try:
        media_max_bytes = media.max_size(kw["media_max_size"])
    except PeekError as exc:
        fail_usage(exc.message)
    out = Output(
        as_json=kw["as_json"],
        accept=accept,
        include_ephemeral=kw["ephemeral"],
        exec_policy=delivery.exec_policy(kw),
        color=kw["color"],
        seconds=kw["seconds"],
        spoilers=kw["spoilers"],
        media_dir=kw["media_dir"],
        media_max_bytes=media_max_bytes,
        media_retries=kw["max_retries"] if kw["max_retries"] is not None else 5,
    )
    if len(rooms) == 1 and not many:
        guarded(lambda: _follow_one(rooms[0], where, opts, out))
    else:
        guarded(lambda: _follow_rooms(rooms, where, opts, out, many=many))


def _read_rooms(source: str) -> tuple[str, ...]:
    """The rooms of a `--rooms-from` list: the first word of each line that is not blank or a
    comment. A comment is `#` followed by a space (or nothing): `#room:server` is an alias."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        fail_usage(f"cannot read the room list {source}: {reason}")
    found: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] != "#" and not words[0].startswith("##"):
            found.append(words[0])
    if not found:
        fail_usage(f"no rooms in {'standard input' if source == '-' else source}")
    return tuple(found)


@dataclass
class Output:
    """What the command line asked about output, for every room of the run."""

    as_json: bool
    accept: Callable[[dict[str, Any]], bool] | None
    include_ephemeral: bool
    exec_policy: ExecPolicy | None
    #: Pretty output: True/False from --color/--no-color, None = decide from the terminal and env.
    color: bool | None = None
    #: Pretty output: times as HH:MM:SS.
    seconds: bool = False
    #: Pretty output: show spoiler text (--spoilers) instead of "[spoiler: reason]".
    spoilers: bool = False
    #: --media DIR: each batch's media saved before its position (sinks/media.py).
    media_dir: Path | None = None
    media_max_bytes: int | None = None
    media_retries: int = 5
    #: The run's -v/-q settings and stderr, taken in the main thread: rooms run in threads of
    #: their own, where click's context (`output.current()`) is not.
    ui: output.OutputContext = field(default_factory=output.current)


def _follow_one(
    room: str,
    where: ConnectOptions,
    opts: FollowOptions,
    out: Output,
    *,
    session: RoomSession | None = None,
    label: str | None = None,
    lock: AbstractContextManager[Any] | None = None,
    token_home: str | None = None,
    on_live: Callable[[], None] | None = None,
) -> None:
    from peekcli.follow.room import open_retrying
    from peekcli.follow.upgrades import follow

    if session is None:
        session = open_retrying(
            room,
            where,
            opts,
            _hooks(out.ui, label),
            log=out.ui.request_log,
            token_homeserver=token_home,
        )
    plan = _delivery(out, session, label, lock, defer_header=opts.drain)
    plan.on_live = on_live
    with session.store.room_lock(
        session.homeserver,
        session.room_id,
        wait=opts.wait,
        on_wait=lambda: out.ui.note(f"waiting for another peek following {session.room_id}…"),
    ):
        follow(session, opts, plan)


def _delivery(
    out: Output,
    session: RoomSession,
    label: str | None,
    lock: AbstractContextManager[Any] | None,
    *,
    defer_header: bool = False,
) -> Delivery:
    """The delivery plan of one room: its sink (with --exec, the command), filter and hooks."""
    from peekcli.follow.plan import Delivery

    sink, on_start = _make_sink(out, room_label=label, session=session, defer_header=defer_header)
    if out.exec_policy is not None:
        sink = delivery.exec_sink(out.exec_policy, sink if out.as_json else None, out.ui.note)
        on_start = None
    if out.media_dir is not None:
        from peekcli.commands import media
        from peekcli.sinks.media import MediaSink

        saver = media.downloader(
            session, out.media_dir, out.media_max_bytes, out.media_retries, out.ui
        )
        sink = MediaSink(sink, saver, out.ui.note)
    return Delivery(
        sink=sink,
        hooks=_hooks(out.ui, label),
        accept=out.accept,
        include_ephemeral=out.include_ephemeral,
        lock=lock,
        on_start=on_start,
        save_each_event=out.exec_policy is not None,
    )


def _follow_rooms(
    rooms: tuple[str, ...],
    where: ConnectOptions,
    opts: FollowOptions,
    out: Output,
    *,
    many: bool = False,
) -> None:
    """Several rooms: `watch` follows them side by side, `snapshot` drains them in turn (with
    `--rooms-from`, several at a time).

    A failing room is reported and the others go on; the exit code is that of the first room
    that failed (0 when none did). With `--rooms-from`, one summary line: once every room is
    live or failed (watch), or at the end (snapshot).
    """
    import threading

    from peekcli.follow.multiroom import (
        DRAIN_AT_ONCE,
        RoomJob,
        exit_code,
        follow_rooms,
        open_rooms,
        spread_for,
        summary,
    )

    def failed(job: RoomJob, exc: Exception) -> None:
        message = str(exc)
        out.ui.error(message if job.arg in message else f"{job.arg}: {message}")
        if started:
            count(job)

    started = False
    jobs = open_rooms(rooms, where, opts, log=out.ui.request_log, failed=failed, notice=out.ui.note)
    pending = {id(job) for job in jobs if job.session is not None and job.error is None}
    guard = threading.Lock()

    def count(job: RoomJob) -> None:
        """This room is live (or failed): the summary once every room is."""
        with guard:
            if id(job) not in pending:
                return
            pending.discard(id(job))
            last = not pending
        if last and many and not opts.drain:
            out.ui.note(summary(jobs, drain=False))

    started = True
    if not pending and many and not opts.drain:
        out.ui.note(summary(jobs, drain=False))
    follow_rooms(
        jobs,
        lambda job, lock: _follow_one(
            job.arg,
            where,
            opts,
            out,
            session=job.session,
            label=job.label,
            lock=lock,
            token_home=job.token_homeserver,
            on_live=lambda: count(job),
        ),
        concurrent=not opts.drain or many,
        failed=failed,
        at_once=DRAIN_AT_ONCE if opts.drain else None,
        start_spread=0.0 if opts.drain else spread_for(len(pending)),
    )
    if many and opts.drain:
        out.ui.note(summary(jobs, drain=True))
    code = exit_code(jobs)
    if code:
        sys.exit(code)


def _make_sink(
    out: Output,
    room_label: str | None = None,
    session: RoomSession | None = None,
    *,
    defer_header: bool = False,
) -> tuple[Sink, Any]:
    """The output for one room, and what to call when the run starts (the pretty header).

    JSON lines stay raw (each event carries its room_id); the pretty renderer marks each line
    with `room_label` when several rooms share stdout. `defer_header` (snapshot): the header
    goes out with the first event, so a run with nothing new prints nothing.
    """
    if out.as_json:
        from peekcli.sinks.jsonl import JsonLinesSink

        return JsonLinesSink(sys.stdout.buffer), None
    from peekcli.render.pretty import PrettyRenderer, room_info
    from peekcli.sinks.terminal import PrettySink, make_console

    renderer = PrettyRenderer(
        seconds=out.seconds,
        spoilers=out.spoilers,
        room_label=room_label,
        homeserver=session.homeserver if session else None,
    )
    sink = PrettySink(make_console(sys.stdout, out.color), renderer)

    def on_start(start: Start) -> None:
        state: list[Any] = []
        if start.initial is not None:
            found = start.initial.get("state")
            state = found if isinstance(found, list) else []
        elif session is not None:
            try:
                state = session.client.room_state(start.room_id)
            except PeekError:
                state = []  # the header is a courtesy: the stream itself will say what is wrong
        if start.identity.joined is None and start.identity.user_id:
            # Resumed runs skip initialSync: the room state tells whether we are a member.
            start.identity.joined = any(
                isinstance(ev, dict)
                and ev.get("type") == "m.room.member"
                and ev.get("state_key") == start.identity.user_id
                and isinstance(ev.get("content"), dict)
                and ev["content"].get("membership") == "join"
                for ev in state
            )
        identity = start.identity.summary()
        info = room_info(
            start.room_id,
            state,
            resuming=start.resuming,
            identity=identity,
            from_token=start.from_token,
        )
        if info.canonical_alias is None and start.ref.is_alias:
            info.canonical_alias = start.ref.value  # the state did not say: what was typed
        sink.header(info, state, defer=defer_header)

    return sink, on_start


def _hooks(ui: output.OutputContext, label: str | None = None) -> Hooks:
    """Status lines and warnings on stderr, marked with the room's label when there are several."""
    from peekcli.follow.plan import Hooks

    outage = False

    def status(message: str | None) -> None:
        """A retry's status (a line rewritten in place on a terminal); None: the stream is back."""
        nonlocal outage
        if message is None:
            if outage:
                ui.note("connection restored")  # erases the status line first
            outage = False
            return
        outage = True
        ui.show_status(message if label is None else f"{label}: {message}")

    def warn(message: str) -> None:
        ui.note(message if label is None else f"{label}: {message}")

    return Hooks(status=status, warn=warn)
