"""`peek doctor [HOMESERVER]`: each step a watch depends on, checked, and the stream peek would use.

Homeservers differ, sometimes silently: Dendrite answers `/events` with a stub, conduwuit and
Conduit have no `/events` at all, some refuse initialSync to guests. The doctor runs discovery,
`/versions`, guest registration, a test room, initialSync, `/events` and `/messages` in turn and
reports each; the report is plain data: rendering belongs to the command layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from peekcli.auth import Identity, register_guest
from peekcli.connect import ConnectOptions, Server, effective, open_server, resolve
from peekcli.errors import (
    EXIT_ERROR,
    EXIT_FORBIDDEN,
    EXIT_GUEST_REFUSED,
    EXIT_OK,
    EXIT_UNSUPPORTED,
    ForbiddenError,
    GuestRefused,
    MatrixError,
    NetworkError,
    PeekError,
    TokenRejected,
    UnrecognizedError,
    UsageError,
)
from peekcli.matrix.client import JSON, MatrixClient, server_software
from peekcli.matrix.directory import public_rooms
from peekcli.matrix.discovery import discover
from peekcli.matrix.http import RequestLog
from peekcli.matrix.ids import RoomRef, normalize_homeserver, parse_room
from peekcli.probe.account import own_identity
from peekcli.state import Notice, StateStore

PASS, FAIL, INFO, SKIP = "pass", "fail", "info", "skip"
#: How many directory entries the doctor looks through for a world-readable room to test with.
DIRECTORY_SCAN = 200


@dataclass
class Check:
    name: str
    status: str
    detail: str


@dataclass
class DoctorReport:
    homeserver: str | None
    checks: list[Check] = field(default_factory=list)
    #: The stream peek would use: "events", "messages" or None (nothing works).
    stream: str | None = None
    room: str | None = None
    exit_code: int = EXIT_ERROR

    def add(self, name: str, status: str, detail: str) -> Check:
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    def to_json(self) -> JSON:
        return {
            "homeserver": self.homeserver,
            "room": self.room,
            "stream": self.stream,
            "ok": self.exit_code == EXIT_OK,
            "checks": [asdict(c) for c in self.checks],
        }


def _why(exc: PeekError) -> str:
    if isinstance(exc, MatrixError):
        code = f"HTTP {exc.status} {exc.errcode}" if exc.errcode else f"HTTP {exc.status}"
        return code
    return exc.message


def doctor(
    server: str | None,
    *,
    room: str | None = None,
    token: str | None = None,
    state_path: Path | None = None,
    log: RequestLog | None = None,
    notice: Notice | None = None,
    poll_interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> DoctorReport:
    """Check each step a watch depends on; `exit_code` is 0 only when watching works."""
    ref = parse_room(room) if room else None
    given, token = effective(server, token)
    text = given or (ref.server_name if ref else None)
    if not text:
        raise UsageError("give the HOMESERVER to check (or --room with a server name)")
    report = DoctorReport(None)
    url = _discovery(report, text, log)
    if url is None:
        return _skip_rest(report, "discovery failed")
    report.homeserver = url
    places = open_server(ConnectOptions(url, token, state_path, notice=notice), log=log)
    client = places.client
    try:
        versions = client.versions().get("versions")
    except PeekError as exc:
        report.add("/versions", FAIL, exc.message)
        return _skip_rest(report, "the server does not answer")
    names = [v for v in versions if isinstance(v, str)] if isinstance(versions, list) else []
    if not names:
        report.add("/versions", FAIL, "the reply lists no spec versions: not a Matrix server?")
        return _skip_rest(report, "not a Matrix client API")
    report.add("/versions", PASS, f"spec {names[-1]} ({len(names)} versions)")
    software = server_software(client)
    report.add(
        "server software",
        INFO,
        software or "not told (the federation version endpoint is not served on this URL)",
    )

    identity = _identities(report, places, token)
    if identity is None:
        report.exit_code = EXIT_GUEST_REFUSED
        return _skip_rest(report, "no identity to peek with: log in or give --token")

    room_id = _test_room(report, client, ref, places.store)
    if room_id is None:
        return _skip_rest(report, "no room to test with")
    report.room = room_id

    token_for_events: str | None = None
    forbidden = 0
    try:
        reply = client.initial_sync(room_id, 1)
        messages = reply.get("messages")
        end = messages.get("end") if isinstance(messages, dict) else None
        if isinstance(end, str) and end:
            token_for_events = end
            report.add("initialSync", PASS, "answered with history and a stream token")
        else:
            report.add("initialSync", FAIL, "answered without messages.end")
    except PeekError as exc:
        forbidden += isinstance(exc, ForbiddenError)
        report.add("initialSync", FAIL, _why(exc))

    events_ok = False
    if token_for_events is None:
        report.add("/events peeking", SKIP, "needs initialSync's token; peek would use /messages")
    else:
        events_ok = _check_events(report, client, room_id, token_for_events, clock)

    messages_ok = False
    try:
        back = client.messages(room_id, None, "b", 1)
        start = back.get("start")
        if not isinstance(start, str) or not start:
            report.add("/messages", FAIL, "dir=b answered without a start token")
        else:
            client.messages(room_id, start, "f", 1)
            messages_ok = True
            report.add("/messages", PASS, "pages backwards and forwards")
    except PeekError as exc:
        forbidden += isinstance(exc, ForbiddenError)
        report.add("/messages", FAIL, _why(exc))

    if events_ok:
        report.stream = "events"
        report.add("peek will use", PASS, "/events long-polling (--stream auto)")
    elif messages_ok:
        report.stream = "messages"
        report.add(
            "peek will use",
            PASS,
            f"/messages polling every {poll_interval:g} s, slower while quiet (the fallback of "
            "--stream auto)",
        )
    else:
        report.add("peek will use", FAIL, "nothing: neither /events peeking nor /messages works")
    if report.stream is not None:
        report.exit_code = EXIT_OK
    elif forbidden == 2:
        report.exit_code = EXIT_FORBIDDEN
    else:
        report.exit_code = EXIT_UNSUPPORTED
    return report


def _skip_rest(report: DoctorReport, why: str) -> DoctorReport:
    done = {c.name for c in report.checks}
    for name in (
        "/versions",
        "server software",
        "guest registration",
        "test room",
        "initialSync",
        "/events peeking",
        "/messages",
    ):
        if name not in done:
            report.add(name, SKIP, why)
    report.add("peek will use", FAIL, f"unknown: {why}")
    return report


def _discovery(report: DoctorReport, text: str, log: RequestLog | None) -> str | None:
    text = text.strip()
    if "://" in text:
        url = normalize_homeserver(text)
        report.add("discovery", INFO, f"not needed: {url} given as a URL")
        return url
    try:
        url = discover(text, log=log)  # no cache: the doctor looks again
    except NetworkError as exc:
        report.add("discovery", FAIL, exc.message)
        return None
    report.add("discovery", PASS, f"{text} → {url}")
    return url


def _identities(report: DoctorReport, places: Server, token: str | None) -> Identity | None:
    """Check guest registration, then pick the identity a watch would use."""
    hs = places.client.base_url
    guest_client = MatrixClient(hs, log=places.client.log)
    guest: Identity | None = None
    stored = places.creds.get(hs, "guest")
    try:
        if stored is not None:
            guest_client.token = stored["access_token"]
            try:
                guest_client.whoami()
                guest = Identity("guest", stored.get("user_id"))
                report.add("guest registration", PASS, f"stored {guest.describe()} still works")
            except TokenRejected:
                stored = None
        if stored is None:
            guest = register_guest(guest_client, places.creds)
            report.add("guest registration", PASS, f"registered {guest.describe()}")
    except GuestRefused as exc:
        detail = exc.message.split("(", 1)[-1].split(")", 1)[0] if "(" in exc.message else ""
        report.add("guest registration", FAIL, f"refused ({detail or 'no guests'})")
    except PeekError as exc:
        report.add("guest registration", FAIL, exc.message)
    try:
        account = own_identity(places, token)
    except PeekError as exc:
        report.add("identity", FAIL, exc.message)
        account = None
    if account is not None:
        report.add("identity", INFO, f"checks run as {account.describe()}")
        return account
    if guest is not None:
        places.client.token = guest_client.token
        return guest
    return None


def _test_room(
    report: DoctorReport, client: MatrixClient, ref: RoomRef | None, store: StateStore
) -> str | None:
    if ref is not None:
        try:
            room_id = resolve(client, ref, store)
        except PeekError as exc:
            report.add("test room", FAIL, exc.message)
            report.exit_code = exc.exit_code
            return None
        shown = ref.value if room_id == ref.value else f"{ref.value} = {room_id}"
        report.add("test room", INFO, f"{shown} (given)")
        return room_id
    try:
        # The directory `peek rooms` lists; the client already holds the identity, if asked.
        listed = [
            r
            for r in public_rooms(client, limit=DIRECTORY_SCAN, authenticate=lambda: _no_renewal)
            if r.world_readable
        ]
    except PeekError as exc:
        report.add("test room", FAIL, f"the public room directory failed ({_why(exc)}); use --room")
        return None
    if not listed:
        report.add("test room", FAIL, "no world-readable room in the public directory; use --room")
        return None
    pick = next((r for r in listed if r.room_type is None), listed[0])  # rooms before spaces
    shown = f"{pick.alias} = {pick.room_id}" if pick.alias else pick.room_id
    report.add("test room", INFO, f"{shown} (a world-readable room from the public directory)")
    return pick.room_id


def _no_renewal() -> bool:
    return False


def _check_events(
    report: DoctorReport,
    client: MatrixClient,
    room_id: str,
    token: str,
    clock: Callable[[], float],
) -> bool:
    started = clock()
    try:
        reply = client.events(room_id, token, 0, 1)
    except UnrecognizedError as exc:
        report.add("/events peeking", FAIL, f"not implemented ({_why(exc)})")
        return False
    except PeekError as exc:
        report.add("/events peeking", FAIL, _why(exc))
        return False
    end = reply.get("end")
    if not isinstance(end, str) or not end:
        report.add("/events peeking", FAIL, "a stub: it answers with an empty stream token")
        return False
    took = clock() - started
    slow = f", but took {took:.0f} s for a zero timeout (it clamps long-polls)" if took >= 2 else ""
    report.add("/events peeking", PASS, f"answered with a stream token{slow}")
    return True
