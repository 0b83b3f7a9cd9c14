"""The public room directory (`peek rooms`): pages of `/publicRooms`, read defensively."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from peekcli.errors import NetworkError, TokenRejected
from peekcli.matrix.client import MatrixClient


@dataclass(frozen=True)
class PublicRoom:
    """One entry of a room directory, with the fields `peek rooms` shows (server text, raw)."""

    room_id: str
    alias: str | None = None
    name: str | None = None
    topic: str | None = None
    members: int | None = None
    world_readable: bool = False
    guest_can_join: bool = False
    join_rule: str | None = None
    room_type: str | None = None

    @property
    def address(self) -> str:
        """What to pass to `peek watch`: the alias when there is one."""
        return self.alias or self.room_id

    @classmethod
    def from_chunk(cls, item: Any) -> PublicRoom | None:
        if not isinstance(item, dict) or not isinstance(item.get("room_id"), str):
            return None

        def text(key: str) -> str | None:
            value = item.get(key)
            return value if isinstance(value, str) and value else None

        members = item.get("num_joined_members")
        return cls(
            room_id=item["room_id"],
            alias=text("canonical_alias"),
            name=text("name"),
            topic=text("topic"),
            members=members if isinstance(members, int) and not isinstance(members, bool) else None,
            world_readable=item.get("world_readable") is True,
            guest_can_join=item.get("guest_can_join") is True,
            join_rule=text("join_rule"),
            room_type=text("room_type"),
        )


def public_rooms(
    client: MatrixClient,
    *,
    search: str | None = None,
    limit: int | None = None,
    page_size: int = 100,
    authenticate: Callable[[], Callable[[], bool]],
) -> Iterator[PublicRoom]:
    """The room directory, page after page (`since`), up to `limit` rooms (None: all).

    Asked without a token first: a directory is public on most servers, and nobody's identity
    needs to be spent on it. On 401 `authenticate()` sets the client's token (the identity a
    watch would use: given token, stored login or guest) and returns its renewal; a guest token
    that has gone stale is renewed once.
    """
    since: str | None = None
    seen: set[str] = set()
    count = 0
    authed = False
    renew: Callable[[], bool] | None = None
    while limit is None or count < limit:
        ask = page_size if limit is None else min(page_size, limit - count)
        try:
            reply = client.public_rooms(limit=ask, since=since, search=search, auth=authed)
        except TokenRejected:
            if not authed:
                renew, authed = authenticate(), True
                continue
            if renew is not None and renew():
                renew = None
                continue
            raise
        chunk = reply.get("chunk")
        if not isinstance(chunk, list):
            raise NetworkError(f"{client.base_url} sent a room directory page without a chunk")
        for item in chunk:
            room = PublicRoom.from_chunk(item)
            if room is None:
                continue
            yield room
            count += 1
            if limit is not None and count >= limit:
                return
        nxt = reply.get("next_batch")
        if not chunk or not isinstance(nxt, str) or not nxt or nxt in seen:
            return
        seen.add(nxt)
        since = nxt
