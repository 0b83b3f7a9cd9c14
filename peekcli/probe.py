"""What a homeserver and a room really support, found out before (or instead of) watching.

Homeservers differ, sometimes silently: Dendrite answers `/events` with a stub, conduwuit and
Conduit have no `/events` at all, some refuse initialSync to guests. `peek info` asks the room
summary endpoint (no token needed on many servers) and says whether peek can watch the room;
`peek doctor` runs each step a watch depends on and names the stream peek would use. Both return
plain data: rendering belongs to the command layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from peekcli.auth import Identity, choose_identity
from peekcli.connect import ConnectOptions, Server, open_server, resolve, room_not_found
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
    NotFoundError,
    PeekError,
    RateLimited,
    TokenRejected,
    UnrecognizedError,
    UsageError,
)
from peekcli.matrix.client import JSON, MatrixClient, server_software
from peekcli.matrix.http import RequestLog
from peekcli.matrix.ids import RoomRef, parse_room
from peekcli.state import StateStore


def _account(places: Server, token: str | None) -> Identity | None:
    """The user's own identity (`--token`, config, or a stored login), or None: not a guest."""
    if token or places.creds.get(places.client.base_url, "login") is not None:
        identity, _ = choose_identity(places.client, places.creds, token=token)
        return identity
    return None


# -- peek info ------------------------------------------------------------------------------------


@dataclass
class RoomFacts:
    """What is known about a room; None where the source does not say."""

    room_id: str | None = None
    name: str | None = None
    canonical_alias: str | None = None
    topic: str | None = None
    num_joined_members: int | None = None
    room_version: str | None = None
    room_type: str | None = None
    join_rule: str | None = None
    history_visibility: str | None = None
    guest_access: str | None = None
    encryption: str | None = None
    membership: str | None = None

    @property
    def world_readable(self) -> bool:
        return self.history_visibility == "world_readable"


@dataclass
class Verdict:
    """Can peek watch the room, as whom (`guest` / `account`), and why; `exit_code` for scripts."""

    watchable: bool
    how: str | None
    reason: str
    exit_code: int

    @property
    def headline(self) -> str:
        if self.watchable:
            return "watchable as guest" if self.how == "guest" else "watchable with your account"
        return "not watchable"


@dataclass
class RoomReport:
    homeserver: str
    room: str
    facts: RoomFacts
    verdict: Verdict
    #: Which endpoint the facts came from: "room_summary", "im.nheko.summary" or "state".
    source: str | None
    identity: str | None = None

    def to_json(self) -> JSON:
        return {
            "homeserver": self.homeserver,
            "room": self.room,
            **asdict(self.facts),
            "source": self.source,
            "identity": self.identity,
            "verdict": {
                "watchable": self.verdict.watchable,
                "as": self.verdict.how,
                "summary": self.verdict.headline,
                "reason": self.verdict.reason,
            },
        }


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def facts_from_summary(reply: JSON) -> RoomFacts:
    """MSC3266 / spec v1.15 summary → facts; it says world_readable but not the exact value."""
    members = reply.get("num_joined_members")
    world = reply.get("world_readable")
    guests = reply.get("guest_can_join")
    encryption = _str(reply.get("encryption")) or _str(reply.get("im.nheko.summary.encryption"))
    return RoomFacts(
        room_id=_str(reply.get("room_id")),
        name=_str(reply.get("name")),
        canonical_alias=_str(reply.get("canonical_alias")),
        topic=_str(reply.get("topic")),
        num_joined_members=members if isinstance(members, int) else None,
        room_version=_str(reply.get("room_version")) or _str(reply.get("im.nheko.summary.version")),
        room_type=_str(reply.get("room_type")),
        join_rule=_str(reply.get("join_rule")) or _str(reply.get("join_rules")),
        history_visibility="world_readable" if world is True else None,
        guest_access=("can_join" if guests else "forbidden") if isinstance(guests, bool) else None,
        encryption=encryption or "none",
        membership=_str(reply.get("membership")),
    )


def facts_from_state(room_id: str, state: list[Any]) -> RoomFacts:
    """The same facts from the room's current state events (initialSync or GET /state)."""
    facts = RoomFacts(room_id=room_id, encryption="none", history_visibility="shared")
    members = 0
    for ev in state:
        if not isinstance(ev, dict) or not isinstance(ev.get("content"), dict):
            continue
        content, kind = ev["content"], ev.get("type")
        if kind == "m.room.member":
            members += content.get("membership") == "join"
        elif kind == "m.room.name":
            facts.name = _str(content.get("name"))
        elif kind == "m.room.canonical_alias":
            facts.canonical_alias = _str(content.get("alias"))
        elif kind == "m.room.topic":
            facts.topic = _str(content.get("topic"))
        elif kind == "m.room.create":
            facts.room_version = _str(content.get("room_version")) or "1"
            facts.room_type = _str(content.get("type"))
        elif kind == "m.room.join_rules":
            facts.join_rule = _str(content.get("join_rule"))
        elif kind == "m.room.history_visibility":
            facts.history_visibility = _str(content.get("history_visibility"))
        elif kind == "m.room.guest_access":
            facts.guest_access = _str(content.get("guest_access"))
        elif kind == "m.room.encryption":
            facts.encryption = _str(content.get("algorithm")) or "unknown"
    facts.num_joined_members = members
    return facts


def fetch_summary(client: MatrixClient, ref: RoomRef) -> tuple[JSON, str] | None:
    """The room summary, stable endpoint first; None when the server has neither form.

    Raises `NotFoundError` when the server says the room is unknown or not visible, and
    `TokenRejected` when it wants a token.
    """
    for unstable, source in ((False, "room_summary"), (True, "im.nheko.summary")):
        try:
            return client.room_summary(ref.value, ref.via, unstable=unstable), source
        except UnrecognizedError:
            continue
        except NotFoundError as exc:
            if exc.errcode in (None, "M_UNRECOGNIZED"):  # a bare 404: no such endpoint
                continue
            raise
        except RateLimited:
            raise
        except NetworkError:
            continue  # an HTML error page from a proxy: treat as absent
    return None


def room_info(
    room: str,
    *,
    homeserver: str | None = None,
    token: str | None = None,
    state_path: Path | None = None,
    log: RequestLog | None = None,
) -> RoomReport:
    """What peek can tell about `room` before watching it, and whether it can.

    The summary is asked without a token where no account is configured (many servers answer
    it so); a guest is registered only when the server wants a token or the verdict needs one.
    """
    ref = parse_room(room)
    places = open_server(ConnectOptions(homeserver, token, state_path), ref=ref, log=log)
    token = places.token
    client = places.client
    account = _account(places, token)
    guests = _Guest(places)

    found: tuple[JSON, str] | None = None
    #: The summary said the server does not know this room id: if reading it is refused too,
    #: the answer is "not found" (exit 4), not "not world-readable" (exit 3).
    unknown = False
    try:
        try:
            found = fetch_summary(client, ref)
        except TokenRejected:
            if account is not None or guests.get() is None:
                raise
            found = fetch_summary(client, ref)
    except NotFoundError as exc:
        if ref.is_alias:
            resolve(client, ref, places.store)  # an unknown alias ends here with exit 4
        unknown = exc.errcode == "M_NOT_FOUND"
    except TokenRejected:
        if guests.error is None:
            raise
        return _report(places, ref, RoomFacts(), None, account, guests)
    except MatrixError as exc:
        # Synapse: 400 "Missing via to query remote room" for a room it is not in.
        if ref.is_alias or exc.status != 400:
            raise
        unknown = True

    source: str | None
    if found is not None:
        reply, source = found
        facts = facts_from_summary(reply)
        if account is not None and facts.membership is None and not facts.world_readable:
            facts.membership = "join" if _readable(client, facts.room_id) else None
    else:
        if account is None and guests.get() is None:
            return _report(places, ref, RoomFacts(), None, account, guests)
        room_id = resolve(client, ref, places.store)
        try:
            facts = facts_from_state(room_id, _state(client, room_id))
            source = "state"
        except ForbiddenError:
            if unknown:
                raise room_not_found(ref.value, client.base_url) from None
            facts, source = RoomFacts(room_id=room_id), None
        if account is not None and source == "state" and not facts.world_readable:
            facts.membership = "join"  # it let us read the state without world-readability
    if facts.world_readable and account is None:
        guests.get()
    return _report(places, ref, facts, source, account, guests)


class _Guest:
    """A guest identity got at most once, on demand; remembers a refusal."""

    def __init__(self, places: Server) -> None:
        self.places = places
        self.identity: Identity | None = None
        self.error: GuestRefused | None = None

    def get(self) -> Identity | None:
        if self.identity is None and self.error is None:
            try:
                self.identity, _ = choose_identity(
                    self.places.client, self.places.creds, token=None, guest="force"
                )
            except GuestRefused as exc:
                self.error = exc
        return self.identity


def _readable(client: MatrixClient, room_id: str | None) -> bool:
    if room_id is None:
        return False
    try:
        client.room_state(room_id)
    except PeekError:
        return False
    return True


def _state(client: MatrixClient, room_id: str) -> list[Any]:
    try:
        return client.room_state(room_id)
    except (UnrecognizedError, NotFoundError):
        reply = client.initial_sync(room_id, 1)
        state = reply.get("state")
        return state if isinstance(state, list) else []


def _report(
    places: Server,
    ref: RoomRef,
    facts: RoomFacts,
    source: str | None,
    account: Identity | None,
    guests: _Guest,
) -> RoomReport:
    hs = places.client.base_url
    verdict = judge(hs, ref.value, facts, source, account, guests.identity, guests.error)
    who = account or guests.identity
    return RoomReport(hs, ref.value, facts, verdict, source, who.describe() if who else None)


def judge(
    homeserver: str,
    room: str,
    facts: RoomFacts,
    source: str | None,
    account: Identity | None,
    guest: Identity | None,
    guest_error: GuestRefused | None,
) -> Verdict:
    """The verdict from the facts and the identities peek could get."""
    encrypted = facts.encryption not in (None, "none")
    note = "; its messages are end-to-end encrypted, so peek shows them as encrypted" * encrypted
    if source is None and not facts.world_readable:
        if facts.room_id is None and guest_error is not None:
            return Verdict(False, None, guest_error.message, EXIT_GUEST_REFUSED)
        who = account.describe() if account else (guest.describe() if guest else "a guest")
        return Verdict(
            False,
            None,
            f"{homeserver} shows nothing of {room} to {who}: it is not world-readable and not "
            "joined (or unknown to this server)",
            EXIT_FORBIDDEN,
        )
    if facts.world_readable:
        if account is not None:
            return Verdict(True, "account", f"the room is world-readable{note}", EXIT_OK)
        if guest is not None:
            return Verdict(True, "guest", f"the room is world-readable{note}", EXIT_OK)
        detail = guest_error.message if guest_error else f"{homeserver} gives no guest access"
        return Verdict(
            False,
            None,
            f"the room is world-readable (any account can read it), but {detail}",
            EXIT_GUEST_REFUSED,
        )
    if account is not None and facts.membership == "join":
        return Verdict(True, "account", f"{account.describe()} has joined it{note}", EXIT_OK)
    history = facts.history_visibility or "not world_readable"
    who = f"{account.describe()} has" if account else "you have"
    how = (
        "join it with a Matrix client, then watch with that account (`peek login`)"
        if facts.join_rule == "public"
        else f"only members can read it (join rule: {facts.join_rule or 'unknown'})"
    )
    return Verdict(
        False, None, f"its history is {history} and {who} not joined; {how}", EXIT_FORBIDDEN
    )


# -- peek doctor ----------------------------------------------------------------------------------

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
    poll_interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> DoctorReport:
    """Check each step a watch depends on; `exit_code` is 0 only when watching works."""
    from peekcli.connect import effective

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
    places = open_server(ConnectOptions(url, token, state_path), log=log)
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
    from peekcli.matrix.discovery import discover
    from peekcli.matrix.ids import normalize_homeserver

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
            from peekcli.auth import register_guest

            guest = register_guest(guest_client, places.creds)
            report.add("guest registration", PASS, f"registered {guest.describe()}")
    except GuestRefused as exc:
        detail = exc.message.split("(", 1)[-1].split(")", 1)[0] if "(" in exc.message else ""
        report.add("guest registration", FAIL, f"refused ({detail or 'no guests'})")
    except PeekError as exc:
        report.add("guest registration", FAIL, exc.message)
    try:
        account = _account(places, token)
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
    from peekcli.matrix.directory import public_rooms

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
