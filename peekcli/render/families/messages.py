"""Messages: text, notices, emotes, replies, thread replies, and the notifications a live stream
prints for relations whose target is not in the batch (edits, reactions, redactions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

from peekcli.render.context import (
    BODY_LIMIT,
    BODY_LINES,
    DELETE,
    DIM,
    EDIT,
    META,
    NOTICE,
    Ev,
    Room,
    as_map,
    as_str,
    reason_of,
    snippet,
)
from peekcli.render.families import media
from peekcli.render.matrix_html import html_to_text
from peekcli.render.sanitize import clean, one_line


def strip_reply_fallback(body: str) -> str:
    """Drop the "> <@alice:hs> quoted" lines + blank line that old clients put atop a reply."""
    if not body.startswith(">"):
        return body
    lines = body.split("\n", 200)
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and lines[index] == "":
        return "\n".join(lines[index + 1 :])
    return body


def cap_lines(text: Text, limit: int = BODY_LINES) -> Text:
    """Cut a body to `limit` lines, so a message of blank lines cannot scroll the screen away."""
    plain = text.plain
    if plain.count("\n") < limit:
        return text
    cut = -1
    for _ in range(limit):
        cut = plain.index("\n", cut + 1)
    hidden = plain.count("\n", cut) or 1
    out = text[:cut]
    out.append(f"\n… [+{hidden} lines]", META)
    return out


def formatted(content: Mapping[str, Any], room: Room) -> Text | None:
    """`formatted_body` as styled text, or None when there is none (or nothing left of it)."""
    source = content.get("formatted_body")
    if content.get("format") != "org.matrix.custom.html" or not isinstance(source, str):
        return None
    text = html_to_text(source, limit=BODY_LIMIT, spoilers=room.spoilers)
    return text if text.plain.strip() else None


def content_text(content: Mapping[str, Any], room: Room, *, reply: bool) -> Text:
    """The body of a message (text, notice, emote, media, location) as styled Text."""
    msgtype = as_str(content.get("msgtype"))
    if msgtype in media.KINDS:
        return media.attachment(content, room, media.KINDS[msgtype])
    if msgtype == "m.location":
        return media.location(content)
    if msgtype == "m.key.verification.request":
        out = Text("🔐 wants to verify ", DIM)
        out.append(one_line(content.get("to"), 100) or "a device", DIM)
        return out
    text = formatted(content, room)
    if text is None:
        body = content.get("body")
        plain = body if isinstance(body, str) else ("" if body is None else clean(body, 0))
        if reply:
            plain = strip_reply_fallback(plain)
        text = Text(clean(plain, BODY_LIMIT)) if plain.strip() else None
    if text is None:
        return Text("(empty message)", META)
    text = cap_lines(text)
    if msgtype == "m.notice":
        text.stylize(NOTICE)
    elif msgtype not in (None, "m.text", "m.emote", "m.notice"):
        text.append(f" [{one_line(msgtype, 60)}]", DIM)
    return text


def message_snippet(content: Mapping[str, Any]) -> str:
    """First words of a message as other lines quote it (replies, reactions, pins)."""
    msgtype = as_str(content.get("msgtype"))
    body = content.get("body")
    text = body if isinstance(body, str) else clean(body, 200)
    if msgtype in media.KINDS:
        name = as_str(content.get("filename")) or text
        return f"[{media.kind_of(content, media.KINDS[msgtype])}] {snippet(name)}"
    if msgtype == "m.location":
        return f"[location] {snippet(media.location_name(content) or 'shared a location')}"
    if "m.in_reply_to" in as_map(content.get("m.relates_to")):
        text = strip_reply_fallback(text)
    return snippet(text) or "(empty message)"


def _quote(room: Room, event_id: object, verb: str) -> Text:
    """ "↳ replying to alice: “first words…”", on the reply's own first line."""
    seen = room.events.get(event_id)
    out = Text()
    out.append(f" {verb} ", DIM)
    if seen is None:
        out.append("an earlier message", DIM)
        return out
    out.append_text(room.who(seen.sender))
    if seen.kind == "reaction":
        out.append(f"'s reaction {seen.snippet}", DIM)
    elif seen.kind == "deleted":
        out.append("'s deleted message", DIM)
    else:
        out.append(f": “{seen.snippet}”", DIM)
    return out


def message(ev: Ev, room: Room) -> Text | None:
    content = ev.content
    rel = as_map(content.get("m.relates_to"))
    if rel.get("rel_type") == "m.replace":
        return edit_notice(ev, room)
    reply_to = as_str(as_map(rel.get("m.in_reply_to")).get("event_id"))
    in_thread = rel.get("rel_type") == "m.thread"
    if in_thread and rel.get("is_falling_back") is True:
        reply_to = None  # a thread's fallback reply for old clients, not a real reply
    body = content_text(content, room, reply=reply_to is not None or "m.in_reply_to" in rel)
    msgtype = content.get("msgtype")
    if msgtype in ("m.text", "m.notice", "m.emote") and body.plain.strip():
        shown = snippet(body.plain)  # the rendered text: no markdown or fallback quotes
    else:
        shown = message_snippet(content)
    out = Text()
    context = Text()
    if in_thread:
        root = rel.get("event_id")
        context.append(" 🧵 in thread", DIM)
        seen = room.events.get(root)
        if seen is not None and seen.kind != "reaction":
            context.append(f" “{seen.snippet}”", DIM)
    if reply_to is not None and not (in_thread and reply_to == rel.get("event_id")):
        context.append_text(_quote(room, reply_to, "↳ replying to"))
    room.remember(ev, "message", shown)
    if context:  # the reply's own block: who, what it answers, then the body below
        out.append_text(room.who(ev.sender))
        out.append_text(context)
        out.append("\n")
        if msgtype == "m.emote":
            out.append("* ")
            out.append_text(room.who(ev.sender))
            out.append(" ")
    elif msgtype == "m.emote":
        out.append("* ")
        out.append_text(room.who(ev.sender))
        out.append(" ")
    else:
        out.append_text(room.who(ev.sender))
        out.append(": ")
    out.append_text(body)
    return out


def edit_notice(ev: Ev, room: Room) -> Text | None:
    """An edit whose message is not in this batch: "✎ alice edited their message “…”: new".

    An edit the spec says to ignore (by another sender, or of an edit) shows nothing.
    """
    content = ev.content
    rel = as_map(content.get("m.relates_to"))
    new = as_map(content.get("m.new_content"))
    if not new:  # no m.new_content: the fallback body is "* new text"
        body = content.get("body")
        stripped = body[2:] if isinstance(body, str) and body.startswith("* ") else body
        new = {"msgtype": content.get("msgtype"), "body": stripped}
    target = rel.get("event_id")
    seen = room.events.get(target)
    if seen is not None and (seen.sender != ev.sender or seen.kind in ("edit", "deleted")):
        return None
    if ev.event_id:  # an edit of this edit must be ignored too
        room.remember(ev, "edit", "")
    out = room.lead("✎", ev, EDIT)
    if seen is None:
        out.append(" edited a message")
    else:
        out.append(" edited their message ")
        out.append(f"“{seen.snippet}”", DIM)
        if isinstance(target, str):
            seen.snippet = message_snippet(new)
    out.append(": ")
    out.append_text(content_text(new, room, reply=False))
    return out


def reaction(ev: Ev, room: Room) -> Text:
    """A reaction whose message is not in this batch: "alice reacted 👍 to bob's message …"."""
    rel = as_map(ev.content.get("m.relates_to"))
    key = one_line(rel.get("key"), 32) or "(no key)"
    out = room.who(ev.sender)
    out.append(f" reacted {key} to ")
    out.append_text(room.describe(rel.get("event_id"), ev.sender))
    room.remember(ev, "reaction", key)
    return out


def redaction(ev: Ev, room: Room) -> Text | None:
    """A redaction whose target is not in this batch. The removed text is never repeated."""
    target = as_str(ev.raw.get("redacts")) or as_str(ev.content.get("redacts"))
    seen = room.events.get(target)
    if seen is not None and seen.kind == "edit":
        return None  # a withdrawn edit: the message stays as it was shown
    out = room.lead("✗", ev, DELETE)
    if seen is None:
        out.append(" deleted a message")
    elif seen.kind == "reaction":
        out.append(" removed ")
        out.append_text(room.whose(seen.sender, ev.sender))
        out.append(f" reaction {seen.snippet}")
    else:
        out.append(" deleted ")
        out.append_text(room.whose(seen.sender, ev.sender))
        out.append(" poll" if seen.kind == "poll" else " message")
    if seen is not None and target is not None:
        seen.kind = "deleted" if seen.kind != "reaction" else seen.kind
        seen.snippet = "[deleted]" if seen.kind == "deleted" else seen.snippet
    out.append(reason_of(ev.content), DIM)
    return out


def deleted(ev: Ev, room: Room, redactor: str | None, reason: str | None) -> Text:
    """A deleted message, as one line: who sent it, who deleted it, why; never what it said."""
    room.remember(ev, "deleted", "[deleted]")
    out = room.who(ev.sender)
    out.append(": ")
    out.append("(message deleted", META)
    if redactor and redactor != ev.sender:
        out.append(" by ", META)
        out.append_text(room.who(redactor))
    out.append(")", META)
    if reason:
        out.append(f" (reason: {one_line(reason, 200)})", DIM)
    return out


def encrypted(ev: Ev, room: Room) -> Text:
    room.remember(ev, "message", "🔒 encrypted message")
    out = room.who(ev.sender)
    out.append(": ")
    out.append("🔒 encrypted message (cannot be read without joining and keys)", META)
    return out


def sticker(ev: Ev, room: Room) -> Text:
    room.remember(ev, "message", f"[sticker] {snippet(clean(ev.content.get('body'), 200))}")
    out = room.who(ev.sender)
    out.append(": ")
    out.append_text(media.attachment(ev.content, room, "sticker"))
    return out


def learn(ev: Ev, room: Room) -> None:
    """Remember a message's first words without printing it (state and history context)."""
    rel = as_map(ev.content.get("m.relates_to"))
    if rel.get("rel_type") != "m.replace":
        room.remember(ev, "message", message_snippet(ev.content))


def verification(ev: Ev, room: Room) -> Text | None:
    """In-room key verification: the end says how it went; the exchange of keys shows nothing."""
    if ev.type.endswith(".done"):
        out = room.lead("🔐", ev)
        out.append(" finished a key verification")
        return out
    if ev.type.endswith(".cancel"):
        out = room.lead("🔐", ev)
        out.append(" cancelled a key verification")
        reason = ev.content.get("reason")
        if reason:
            out.append(f" ({one_line(reason, 200)})", DIM)
        return out
    return None
