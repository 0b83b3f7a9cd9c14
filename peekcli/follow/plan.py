"""What a follow run was asked to do, as plain data the command layer fills in.

`FollowOptions` is how the room is read (where to start, which endpoint, when to stop);
`Delivery` is where its events go (sink, filter, hooks, lock): the one seam between the loop
and the code around it, so the upgrade walk and the sinks never import the loop itself;
`Start` is what the run tells its sink's header when it begins.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from peekcli.auth import Identity
from peekcli.matrix.client import JSON
from peekcli.matrix.ids import RoomRef
from peekcli.sinks import Sink

#: "events" (/events long-poll), "messages" (/messages polling) or "auto" (events, else messages).
StreamMode = Literal["auto", "events", "messages"]
STREAM_MODES: tuple[StreamMode, ...] = ("auto", "events", "messages")


@dataclass
class FollowOptions:
    """How one run reads its rooms: start, endpoint, stop, retries."""

    history: int = 10
    from_token: str | None = None
    reset: bool = False
    timeout_ms: int = 30_000
    #: The timeout is peek's choice for many rooms (no --timeout): a poll cut short by something
    #: between peek and the server brings it back to the usual 30 s (peekcli/follow/strategies.py).
    timeout_chosen: bool = False
    max_events: int | None = None
    #: snapshot: read what is there, then stop (requests retried quickly).
    drain: bool = False
    wait: bool = True
    max_retries: int | None = None
    stream: StreamMode = "auto"
    #: Seconds between /messages polls while events flow (it grows while the room is quiet).
    poll_interval: float = 2.0
    #: Go on in the replacement room after a tombstone (`--no-follow`: stop there).
    follow_upgrades: bool = True


@dataclass
class Start:
    """How a run begins, for the renderer's header: fresh (with initialSync's reply) or resuming."""

    room_id: str
    ref: RoomRef
    identity: Identity
    resuming: bool
    #: True when the position came from `--from` rather than the state file.
    from_token: bool = False
    initial: JSON | None = None


def _ignore(*_: Any) -> None:
    return None


@dataclass
class Hooks:
    """How the loop talks to the outside (status line, warnings, token renewal)."""

    status: Callable[[str | None], None] = _ignore
    warn: Callable[[str], None] = _ignore
    renew_token: Callable[[], bool] = lambda: False


@dataclass
class Delivery:
    """Where a room's events go, and what the loop must do around them."""

    sink: Sink
    hooks: Hooks = field(default_factory=Hooks)
    #: The filters (--type, --sender, --grep, --messages-only); None: every event.
    accept: Callable[[JSON], bool] | None = None
    #: Presence, typing and receipts are dropped unless asked for (--json --ephemeral).
    include_ephemeral: bool = False
    #: Held around each chunk's "write, flush, save" (and the header) when several rooms share
    #: one output.
    lock: AbstractContextManager[Any] | None = None
    #: Called once when the run begins (the pretty header), under `lock`.
    on_start: Callable[[Start], None] | None = None
    #: The position passes every event as soon as the sink took it (--exec: at least once per
    #: event), not only after every chunk.
    save_each_event: bool = False
    #: Called when the room's stream is about to start (its first position known): a many-room
    #: run counts its rooms live with it.
    on_live: Callable[[], None] | None = None
