"""Membership: joins, leaves, invites (third-party ones by their display name), kicks, bans,
knocks, and profile changes."""

from __future__ import annotations

from rich.text import Text

from peekcli.render.context import (
    DIM,
    ID_LIMIT,
    NAME_LIMIT,
    Ev,
    Room,
    as_map,
    as_str,
    reason_of,
    symbol,
)
from peekcli.render.sanitize import one_line


def member(ev: Ev, room: Room) -> Text:
    content, prev = ev.content, ev.prev
    target = ev.state_key or ev.sender
    membership = content.get("membership")
    before = prev.get("membership")
    by_other = bool(ev.sender) and ev.sender != target
    if membership == "join" and before == "join":
        return profile_change(ev, room, target)
    old_label = room.who(target)
    room.update_member(ev)
    subject = room.who(target) if membership in ("join", "invite", "knock") else old_label
    if membership == "join":
        out = symbol("→ ")
        out.append_text(subject)
        out.append(" joined")
    elif membership == "invite":
        out = room.lead("→", ev)
        out.append(" invited ")
        out.append_text(subject)
        invite = as_map(content.get("third_party_invite"))
        shown = as_str(invite.get("display_name"))
        if shown:
            out.append(f" (third-party invite for {one_line(shown, NAME_LIMIT)})", DIM)
    elif membership == "knock":
        out = symbol("→ ")
        out.append_text(subject)
        out.append(" knocked")
    elif membership == "ban":
        out = room.lead("←", ev)
        out.append(" banned ")
        out.append_text(subject)
    elif membership == "leave" and not by_other:
        out = symbol("← ")
        out.append_text(subject)
        if before == "invite":
            out.append(" rejected the invite")
        elif before == "knock":
            out.append(" withdrew their knock")
        else:
            out.append(" left")
    elif membership == "leave":
        out = room.lead("←", ev)
        if before == "ban":
            out.append(" unbanned ")
            out.append_text(subject)
        elif before == "invite":
            out.append(" withdrew the invite for ")
            out.append_text(subject)
        elif before == "knock":
            out.append(" rejected the knock of ")
            out.append_text(subject)
        else:
            out.append(" kicked ")
            out.append_text(subject)
    else:
        out = room.lead("•", ev)
        out.append(" set the membership of ")
        out.append_text(subject)
        out.append(f" to {one_line(membership, 40)}")
    out.append(reason_of(content), DIM)
    return out


def profile_change(ev: Ev, room: Room, target: str) -> Text:
    content, prev = ev.content, ev.prev
    old = as_str(prev.get("displayname")) if "displayname" in prev else room.members.name(target)
    new = as_str(content.get("displayname"))
    room.update_member(ev)
    out = symbol("• ")
    out.append(one_line(target, ID_LIMIT), room.colour(target))
    changes: list[Text] = []
    if old != new:
        change = Text()
        if old and new:
            change.append(f"changed display name from {one_line(old, NAME_LIMIT)} to ")
            change.append(one_line(new, NAME_LIMIT), room.colour(target))
        elif new:
            change.append("set display name to ")
            change.append(one_line(new, NAME_LIMIT), room.colour(target))
        else:
            change.append(f"removed display name {one_line(old, NAME_LIMIT)}")
        changes.append(change)
    avatar = content.get("avatar_url")
    if prev and avatar != prev.get("avatar_url"):
        changes.append(Text("changed avatar" if avatar else "removed avatar"))
    if not changes:
        changes.append(Text("updated their profile"))
    out.append(" ")
    out.append_text(Text(" and ").join(changes))
    return out
