"""Room state: name, topic, avatar, addresses, history visibility, guest access, join rules
(restricted ones with the rooms they allow), power levels, pins, encryption, upgrades, creation,
server ACLs, third-party invites, spaces."""

from __future__ import annotations

import re
import shlex
from itertools import islice

from rich.text import Text

from peekcli.render.context import (
    DIM,
    LIST_LIMIT,
    META,
    NAME_LIMIT,
    TAG,
    Ev,
    Room,
    as_map,
    as_str,
    as_strs,
    more,
    reason_of,
)
from peekcli.render.sanitize import clean, one_line

#: Only ids servers generate (letters, digits, `._~+=-`): one is suggested as a command to paste.
_ROOM_ID = re.compile(r"![A-Za-z0-9._~+=\-]{1,255}(?::[A-Za-z0-9.\-:\[\]]{1,255})?")
_HISTORY = {
    "world_readable": "anyone (world_readable)",
    "shared": "members, including history from before they joined (shared)",
    "invited": "members, from when they were invited (invited)",
    "joined": "members, from when they joined (joined)",
}
_PL_DEFAULTS: dict[str, int] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}


def room_name(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    name = ev.content.get("name")
    if name:
        out.append(" renamed the room to ")
        out.append(f"“{one_line(name, 200)}”", TAG)
    else:
        out.append(" removed the room name")
    return out


def topic(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    topic = ev.content.get("topic")
    if topic:
        out.append(" changed the topic to: ")
        out.append(clean(topic, 1000))
    else:
        out.append(" removed the topic")
    return out


def room_avatar(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    url = ev.content.get("url")
    out.append(" changed the room avatar" if url else " removed the room avatar")
    if isinstance(url, str) and url:
        out.append(f" ({one_line(url, 200)})", DIM)
    return out


def canonical_alias(ev: Ev, room: Room) -> Text:
    content, prev = ev.content, ev.prev
    alias = as_str(content.get("alias"))
    alts = as_strs(content.get("alt_aliases"))
    out = room.lead("•", ev)
    if alias and (alias != prev.get("alias") or not alts):
        out.append(" set the main address to ")
        out.append(one_line(alias, 200), TAG)
        if alts:
            out.append(f" (also {more([one_line(a, 200) for a in alts])})", DIM)
    elif not alias and prev.get("alias"):
        out.append(" removed the main address")
    elif alts:
        out.append(" set the alternative addresses to ")
        out.append(more([one_line(a, 200) for a in alts]))
    else:
        out.append(" removed the room's published addresses")
    return out


def history_visibility(ev: Ev, room: Room) -> Text:
    value = ev.content.get("history_visibility")
    out = room.lead("•", ev)
    out.append(" made future history visible to ")
    out.append(_HISTORY.get(value, one_line(value, 60)) if isinstance(value, str) else "?")
    return out


def guest_access(ev: Ev, room: Room) -> Text:
    value = ev.content.get("guest_access")
    out = room.lead("•", ev)
    if value == "can_join":
        out.append(" allowed guests to join the room")
    elif value == "forbidden":
        out.append(" forbade guests from joining the room")
    else:
        out.append(f" set guest access to {one_line(value, 60)}")
    return out


def join_rules(ev: Ev, room: Room) -> Text:
    value = ev.content.get("join_rule")
    out = room.lead("•", ev)
    if value == "public":
        out.append(" made the room public: anyone can join")
    elif value == "invite":
        out.append(" made the room invite-only")
    elif value == "knock":
        out.append(" made the room invite-only: anyone can ask to join")
    elif value in ("restricted", "knock_restricted"):
        rooms = (
            [
                one_line(as_map(a).get("room_id"), 200)
                for a in ev.content.get("allow") or []
                if as_map(a).get("type") == "m.room_membership" and as_map(a).get("room_id")
            ]
            if isinstance(ev.content.get("allow"), list)
            else []
        )
        out.append(" made the room joinable by members of ")
        out.append(more(rooms, 4) if rooms else "no room (invite only)", TAG if rooms else DIM)
        if value == "knock_restricted":
            out.append("; anyone else can ask to join")
    elif value == "private":
        out.append(" made the room private")
    else:
        out.append(f" set the join rule to {one_line(value, 60)}")
    return out


def power_levels(ev: Ev, room: Room) -> Text:
    content, prev = ev.content, ev.prev
    out = room.lead("•", ev)
    label = room.members.label
    if not prev:
        users = as_map(content.get("users"))
        out.append(" set the power levels")
        if users:
            head = islice(users.items(), LIST_LIMIT)
            levels = [f"{label(str(u))} {one_line(v, 20)}" for u, v in head]
            out.append(f": {more(levels, total=len(users))}", DIM)
        return out
    changes: list[str] = []
    new_default = content.get("users_default", 0)
    old_default = prev.get("users_default", 0)
    new_users, old_users = as_map(content.get("users")), as_map(prev.get("users"))
    for user in dict.fromkeys([*old_users, *new_users]):
        old, new = old_users.get(user, old_default), new_users.get(user, new_default)
        if old != new:
            changes.append(f"{label(str(user))} {one_line(old, 20)}→{one_line(new, 20)}")
    for key, default in _PL_DEFAULTS.items():
        old, new = prev.get(key, default), content.get(key, default)
        if old != new:
            changes.append(f"{key} {one_line(old, 20)}→{one_line(new, 20)}")
    new_events, old_events = as_map(content.get("events")), as_map(prev.get("events"))
    for etype in dict.fromkeys([*old_events, *new_events]):
        old, new = old_events.get(etype), new_events.get(etype)
        if old != new:
            old_s = "default" if old is None else one_line(old, 20)
            new_s = "default" if new is None else one_line(new, 20)
            changes.append(f"{one_line(etype, 60)} {old_s}→{new_s}")
    out.append(" changed the power levels")
    if changes:
        out.append(f": {more(changes)}", DIM)
    return out


def pinned(ev: Ev, room: Room) -> Text:
    content, prev = ev.content, ev.prev
    pinned = as_strs(content.get("pinned"))
    out = room.lead("•", ev)
    before = as_strs(prev.get("pinned"))
    added = [e for e in pinned if e not in set(before)]
    removed = [e for e in before if e not in set(pinned)]
    if len(added) == 1 and not removed:
        out.append(" pinned ")
        out.append_text(room.describe(added[0], ev.sender))
    elif len(removed) == 1 and not added:
        out.append(" unpinned ")
        out.append_text(room.describe(removed[0], ev.sender))
    elif added and not removed:
        out.append(f" pinned {len(added)} messages")
    elif removed and not added:
        out.append(f" unpinned {len(removed)} messages")
    elif added or removed:
        out.append(f" pinned {len(added)} and unpinned {len(removed)} messages")
    elif not pinned:
        out.append(" cleared the pinned messages")
    else:
        out.append(" reordered the pinned messages")
    return out


def encryption(ev: Ev, room: Room) -> Text:
    out = room.lead("🔒", ev)
    out.append(" enabled end-to-end encryption")
    algorithm = ev.content.get("algorithm")
    if algorithm:
        out.append(f" ({one_line(algorithm, 60)})", DIM)
    out.append(": new messages cannot be read by peek", META)
    return out


def tombstone(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    out.append(" replaced this room")
    body = ev.content.get("body")
    if body:
        out.append(f": {one_line(body, 300)}")
    replacement = ev.content.get("replacement_room")
    out.append("\n")
    if isinstance(replacement, str) and _ROOM_ID.fullmatch(replacement):
        out.append(f"room replaced by {replacement}", TAG)
        out.append(f" — watch it with: {shlex.join(['peek', 'watch', replacement])}")
    else:
        out.append(f"room replaced by {one_line(replacement, 300) or '(unknown room)'}", TAG)
    return out


def create(ev: Ev, room: Room) -> Text:
    content = ev.content
    out = room.lead("•", ev)
    kind = "space" if content.get("type") == "m.space" else "room"
    version = content.get("room_version", "1")
    out.append(f" created the {kind} (version {one_line(version, 40)})")
    predecessor = as_map(content.get("predecessor")).get("room_id")
    if predecessor:
        out.append(f", replacing {one_line(predecessor, 300)}", DIM)
    return out


def server_acl(ev: Ev, room: Room) -> Text:
    content = ev.content
    allow = [one_line(s, 100) for s in as_strs(content.get("allow"))]
    deny = [one_line(s, 100) for s in as_strs(content.get("deny"))]
    out = room.lead("•", ev)
    out.append(" changed the server ACL: ")
    parts = [f"allow {more(allow, 3) or 'none'}", f"deny {more(deny, 3) or 'none'}"]
    if content.get("allow_ip_literals") is False:
        parts.append("IP literals denied")
    out.append("; ".join(parts), DIM)
    return out


def third_party_invite(ev: Ev, room: Room) -> Text:
    out = room.lead("→", ev)
    name = ev.content.get("display_name")
    if not ev.content:
        out.append(" revoked a third-party invite")
        return out
    out.append(" invited ")
    out.append(one_line(name, NAME_LIMIT) if name else "someone", TAG)
    out.append(" (third-party invite)", DIM)
    return out


def space_child(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    child = one_line(ev.state_key, 300)
    if "via" in ev.content:
        out.append(f" added {child} to this space")
    else:
        out.append(f" removed {child} from this space")
    return out


def space_parent(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    parent = one_line(ev.state_key, 300)
    if "via" in ev.content:
        out.append(f" set {parent} as a parent space")
    else:
        out.append(f" removed the parent space {parent}")
    return out


_RECOMMENDATIONS = {"m.ban": "ban", "org.matrix.mjolnir.ban": "ban"}
_ENTITIES = {
    "m.policy.rule.user": "users",
    "m.policy.rule.room": "rooms",
    "m.policy.rule.server": "servers",
}


def policy_rule(ev: Ev, room: Room) -> Text:
    """A moderation policy list's rule: "alice recommends to ban users matching @bad*:x"."""
    content = ev.content
    kind = _ENTITIES.get(ev.type.replace("org.matrix.mjolnir.rule.", "m.policy.rule."), "entities")
    entity = as_str(content.get("entity")) or as_str(ev.prev.get("entity"))
    out = room.lead("•", ev)
    if not content.get("entity"):
        out.append(f" removed the policy rule on {kind} matching ")
        out.append(one_line(entity or ev.state_key, 200), TAG)
        return out
    action = content.get("recommendation")
    verb = _RECOMMENDATIONS.get(action) if isinstance(action, str) else None
    out.append(f" recommends to {verb or one_line(action, 60)} {kind} matching ")
    out.append(one_line(entity, 200), TAG)
    out.append(reason_of(content), DIM)
    return out


def policy_server(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    via = as_str(ev.content.get("via"))
    if via:
        out.append(" set the room's policy server to ")
        out.append(one_line(via, 200), TAG)
    else:
        out.append(" removed the room's policy server")
    return out


def image_pack(ev: Ev, room: Room) -> Text:
    """Custom emoji and stickers (MSC2545, `m.room.image_pack`): the pack's name and size."""
    content = ev.content
    pack = as_map(content.get("pack"))
    name = as_str(pack.get("display_name")) or ev.state_key or ""
    images = as_map(content.get("images"))
    out = room.lead("•", ev)
    if not images and not pack:
        out.append(" removed the image pack")
    else:
        out.append(" updated the image pack ")
        out.append(f"“{one_line(name, 100)}”" if name else "of the room", TAG)
        out.append(f" ({len(images)} image{'' if len(images) == 1 else 's'})", DIM)
    return out
