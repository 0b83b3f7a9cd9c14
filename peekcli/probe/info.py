"""`peek info ROOM`: what peek can tell about a room before watching it, and whether it can.

The room summary endpoint (stable, then MSC3266's unstable form; no token needed on many servers)
gives the facts, else the room's state does; a guest is registered only when the server wants a
token or the verdict needs one. The report is plain data: rendering belongs to the command layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from peekcli.auth import Identity, choose_identity
from peekcli.connect import ConnectOptions, Server, open_server, resolve, room_not_found
from peekcli.errors import (
    EXIT_FORBIDDEN,
    EXIT_GUEST_REFUSED,
    EXIT_OK,
    ForbiddenError,
    GuestRefused,
    MatrixError,
    NetworkError,
    NotFoundError,
    PeekError,
    RateLimited,
    TokenRejected,
    UnrecognizedError,
)
from peekcli.matrix.client import JSON, MatrixClient
from peekcli.matrix.http import RequestLog
from peekcli.matrix.ids import RoomRef, parse_room
from peekcli.probe.account import own_identity
from peekcli.state import Notice


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


#: State event type → the fact it sets and the content key that holds it.
_STATE_FACTS = {
    "m.room.name": ("name", "name"),
    "m.room.canonical_alias": ("canonical_alias", "alias"),
    "m.room.topic": ("topic", "topic"),
    "m.room.join_rules": ("join_rule", "join_rule"),
    "m.room.history_visibility": ("history_visibility", "history_visibility"),
    "m.room.guest_access": ("guest_access", "guest_access"),
}


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
        elif kind == "m.room.create":
            facts.room_version = _str(content.get("room_version")) or "1"
            facts.room_type = _str(content.get("type"))
        elif kind == "m.room.encryption":
            facts.encryption = _str(content.get("algorithm")) or "unknown"
        elif isinstance(kind, str) and kind in _STATE_FACTS:
            fact, key = _STATE_FACTS[kind]
            setattr(facts, fact, _str(content.get(key)))
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
    notice: Notice | None = None,
) -> RoomReport:
    """What peek can tell about `room` before watching it, and whether it can.

    The summary is asked without a token where no account is configured (many servers answer
    it so); a guest is registered only when the server wants a token or the verdict needs one.
    """
    ref = parse_room(room)
    where = ConnectOptions(homeserver, token, state_path, notice=notice)
    places = open_server(where, ref=ref, log=log)
    token = places.token
    client = places.client
    account = own_identity(places, token)
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
