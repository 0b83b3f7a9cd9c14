"""Room references as people share them, server names and homeserver URLs: parsing only.

Accepted (Matrix spec, appendices "Identifier grammar" and "URIs"): `!id:server`, `!id` (room
version 12 ids carry no server), `#alias:server`, `https://matrix.to/#/…` links (percent-encoded
or not, with `?via=` and event permalinks) and `matrix:r/…` / `matrix:roomid/…` URIs (with
`/e/…` event parts, `?via=` and `action=`; the legacy `room`/`event` types too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from peekcli.errors import UsageError

#: A server name: DNS name, IPv4 or bracketed IPv6 literal, optional port. Strict, because it ends
#: up in a discovery URL (`https://NAME/.well-known/…`): no path, user info or query can sneak in.
SERVER_NAME = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}))(?::\d{1,5})?"
)

#: A room id peek will name, follow or suggest: `!opaque` (room version 12) or `!opaque:server`.
#: Stricter than the spec's historical grammar on purpose: ids come from servers (tombstones,
#: directories) and end up in URLs, completions and suggested commands, so only the characters
#: servers actually generate (letters, digits, `._~+=-`) are accepted.
ROOM_ID = re.compile(r"![A-Za-z0-9._~+=\-]{1,255}(?::" + SERVER_NAME.pattern + r")?")


def is_room_id(value: object) -> bool:
    """True for a well-formed room id (see `ROOM_ID`) of at most 255 characters."""
    return isinstance(value, str) and len(value) <= 255 and ROOM_ID.fullmatch(value) is not None


_HINT = "expected !id, !id:server, #alias:server, a https://matrix.to/#/… link or a matrix: URI"


def is_server_name(text: str) -> bool:
    return SERVER_NAME.fullmatch(text) is not None


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
        """Where to look the room up: an alias's server; for a room id the link's first `via`
        (a server in the room, which the id's creator may have left), else the id's server."""
        _, sep, server = self.value.partition(":")
        if self.is_alias:
            return server
        if self.via:
            return self.via[0]
        return server if sep and server else None


def parse_room(text: str) -> RoomRef:
    """Parse a room argument; raise `UsageError` with a hint when it is none of the known forms."""
    raw = text.strip()
    lowered = raw.lower()
    if lowered.startswith(("https://matrix.to/", "http://matrix.to/", "matrix.to/")):
        return _parse_matrix_to(raw, text)
    if lowered.startswith("matrix:"):
        return _parse_matrix_uri(raw, text)
    return _check(raw, (), None, text)


def _check(value: str, via: tuple[str, ...], event_id: str | None, original: str) -> RoomRef:
    via = tuple(v for v in via if is_server_name(v))  # a broken via is no reason to refuse a link
    if value.startswith(("@", "+")):
        kind = "a user" if value.startswith("@") else "a community"
        raise UsageError(f"not a room: {original!r} is {kind}; {_HINT}")
    if not any(c.isspace() for c in value) and len(value) <= 255:
        local, sep, server = value[1:].partition(":")
        if value.startswith("#") and local and sep and is_server_name(server):
            return RoomRef(value, via, event_id)
        if value.startswith("!") and local and (not sep or is_server_name(server)):
            return RoomRef(value, via, event_id)
    raise UsageError(f"not a room: {original!r} ({_HINT})")


def _via(query: str) -> tuple[str, ...]:
    return tuple(parse_qs(query).get("via", []))


def _parse_matrix_to(raw: str, original: str) -> RoomRef:
    if "://" not in raw:
        raw = "https://" + raw
    fragment = urlsplit(raw).fragment  # "/#alias:server/$event?via=a&via=b", maybe %-encoded
    path, _, query = fragment.partition("?")
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts:
        raise UsageError(f"not a room: {original!r} (the matrix.to link names no room)")
    rest = "/".join(parts[1:])  # an unencoded v3 event id may itself contain "/"
    event_id = rest if rest.startswith("$") else None
    return _check(parts[0], _via(query), event_id, original)


#: `matrix:` id types that name a room, and the legacy long forms the spec says to accept.
_ROOM_TYPES = {"r": "#", "room": "#", "roomid": "!"}
_EVENT_TYPES = ("e", "event")


def _parse_matrix_uri(raw: str, original: str) -> RoomRef:
    rest = raw[len("matrix:") :].partition("#")[0]  # the fragment is reserved: ignore it
    body, _, query = rest.partition("?")
    if body.startswith("//"):  # an authority is reserved for future use: ignore it
        body = body[2:].partition("/")[2]
    parts = body.split("/")
    kind = parts[0].lower() if parts else ""
    if kind in ("u", "user"):
        raise UsageError(f"not a room: {original!r} is a user; {_HINT}")
    if len(parts) < 2 or kind not in _ROOM_TYPES or not parts[1]:
        raise UsageError(f"not a room: {original!r} (expected matrix:r/… or matrix:roomid/…)")
    event_id = None
    if len(parts) >= 4 and parts[2].lower() in _EVENT_TYPES and parts[3]:
        event_id = "$" + unquote(parts[3])
    elif len(parts) > 2 and any(parts[2:]):
        raise UsageError(f"not a room: {original!r} (after the room only /e/EVENT may follow)")
    return _check(_ROOM_TYPES[kind] + unquote(parts[1]), _via(query), event_id, original)


def normalize_homeserver(url: str) -> str:
    """`example.org` → `https://example.org`; no trailing slash, so it keys the state stably."""
    url = url.strip()
    if not url:
        raise UsageError("empty --homeserver")
    if "://" not in url:
        url = "https://" + url
    expected = "expected https://host[:port][/path]"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # both raise ValueError on `[` or a bad port
    except ValueError as exc:
        raise UsageError(f"not a homeserver URL: {url!r} ({exc}; {expected})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"not a homeserver URL: {url!r} ({expected})")
    if "@" in parts.netloc:
        # requests would send user:pass as Basic auth in place of the Bearer token, and the
        # password would show in -v, messages and the state file.
        raise UsageError(
            f"not a homeserver URL: credentials in the URL are refused ({expected}; "
            "log in with `peek login`)"
        )
    if parts.query or parts.fragment or any(c.isspace() or not c.isprintable() for c in url):
        raise UsageError(f"not a homeserver URL: {url!r} ({expected})")
    del port
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
