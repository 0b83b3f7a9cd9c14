"""Room references as people share them, and turning them into a room id on a homeserver.

Accepted: `!id:server`, `!id` (room version 12 ids carry no server), `#alias:server`,
`https://matrix.to/#/…` links (with `?via=` and event permalinks) and `matrix:r/…` /
`matrix:roomid/…` URIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from peekcli.errors import NetworkError, NotFoundError, UsageError

if TYPE_CHECKING:
    from peekcli.client import MatrixClient
    from peekcli.state import StateStore


@dataclass(frozen=True)
class RoomRef:
    """A parsed room argument: a room id or an alias, plus routing hints from a link."""

    value: str
    via: tuple[str, ...] = ()
    event_id: str | None = None

    @property
    def is_alias(self) -> bool:
        return self.value.startswith("#")

    @property
    def server_name(self) -> str | None:
        """The server part of an alias or a v1–v11 room id, else the first `via`."""
        _, sep, server = self.value.partition(":")
        if sep and server:
            return server
        return self.via[0] if self.via else None


def parse_room(text: str) -> RoomRef:
    """Parse a room argument; raise `UsageError` with a hint when it is none of the known forms."""
    raw = text.strip()
    if raw.startswith(("https://matrix.to/", "http://matrix.to/")):
        return _parse_matrix_to(raw, text)
    if raw.startswith("matrix:"):
        return _parse_matrix_uri(raw, text)
    return _check(raw, (), None, text)


def _check(value: str, via: tuple[str, ...], event_id: str | None, original: str) -> RoomRef:
    if value.startswith("#"):
        local, sep, server = value[1:].partition(":")
        if local and sep and server:
            return RoomRef(value, via, event_id)
    elif value.startswith("!") and len(value) > 1 and not any(c.isspace() for c in value):
        local, sep, server = value[1:].partition(":")
        if local and (not sep or server):
            return RoomRef(value, via, event_id)
    raise UsageError(
        f"not a room: {original!r} (expected !id, !id:server, #alias:server, "
        "a https://matrix.to/#/… link or a matrix: URI)"
    )


def _parse_matrix_to(raw: str, original: str) -> RoomRef:
    fragment = urlsplit(raw).fragment  # "/#alias:server/$event?via=a&via=b"
    path, _, query = fragment.partition("?")
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    via = tuple(parse_qs(query).get("via", []))
    if not parts:
        raise UsageError(f"not a room: {original!r} (the matrix.to link names no room)")
    event_id = parts[1] if len(parts) > 1 and parts[1].startswith("$") else None
    return _check(parts[0], via, event_id, original)


def _parse_matrix_uri(raw: str, original: str) -> RoomRef:
    body, _, query = raw[len("matrix:") :].partition("?")
    parts = [unquote(p) for p in body.split("/")]
    via = tuple(parse_qs(query).get("via", []))
    sigils = {"r": "#", "roomid": "!"}
    if len(parts) < 2 or parts[0] not in sigils or not parts[1]:
        raise UsageError(f"not a room: {original!r} (expected matrix:r/… or matrix:roomid/…)")
    event_id = None
    if len(parts) >= 4 and parts[2] == "e" and parts[3]:
        event_id = "$" + parts[3]
    return _check(sigils[parts[0]] + parts[1], via, event_id, original)


def normalize_homeserver(url: str) -> str:
    """`example.org` → `https://example.org`; no trailing slash, so it keys the state stably."""
    url = url.strip()
    if not url:
        raise UsageError("empty --homeserver")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"not a homeserver URL: {url!r} (expected https://host[:port])")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def resolve(client: MatrixClient, ref: RoomRef, store: StateStore | None = None) -> str:
    """The room id for `ref`: ids as they are; aliases through the directory, remembered.

    A remembered alias keeps the saved position reachable when the alias is later removed or the
    directory is unreachable.
    """
    if not ref.is_alias:
        return ref.value
    try:
        reply = client.resolve_alias(ref.value)
    except NotFoundError:
        known = store.known_alias(client.base_url, ref.value) if store else None
        if known:
            return known
        raise NotFoundError(
            f"room alias {ref.value} not found on {client.base_url}", status=404
        ) from None
    except NetworkError:
        known = store.known_alias(client.base_url, ref.value) if store else None
        if known:
            return known
        raise
    room_id = reply.get("room_id")
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        raise NetworkError(f"{client.base_url} resolved {ref.value} to no usable room id")
    if store is not None:
        store.remember_alias(client.base_url, ref.value, room_id)
    return room_id
