"""Calls: 1:1 VoIP (`m.call.*`), Element Call membership (MSC3401/MSC4143) and widgets.

One call is up to eight events; a person reads two or three lines: started, answered, ended or
declined. The signalling (candidates, negotiation, SDP metadata) shows nothing in pretty output and
stays in `--json`.
"""

from __future__ import annotations

from rich.text import Text

from peekcli.render.context import DIM, TAG, Ev, Room, as_map, as_str
from peekcli.render.sanitize import one_line

#: Call signalling: nothing a person reads.
SIGNALLING = (
    "m.call.candidates",
    "m.call.negotiate",
    "m.call.select_answer",
    "m.call.sdp_stream_metadata_changed",
    "org.matrix.call.sdp_stream_metadata_changed",
    "m.call.asserted_identity",
    "org.matrix.call.asserted_identity",
    "org.matrix.msc3401.call.encryption_keys",
    "io.element.call.encryption_keys",
)
_HANGUP_REASONS = {
    "invite_timeout": "the call was not answered",
    "ice_failed": "the connection failed",
    "ice_timeout": "the connection was lost",
    "user_media_failed": "their camera or microphone failed",
    "user_busy": "busy",
}


def hidden(ev: Ev, room: Room) -> None:
    return None


def _is_video(ev: Ev) -> bool:
    offer = as_map(ev.content.get("offer"))
    sdp = offer.get("sdp")
    return isinstance(sdp, str) and "m=video" in sdp


def invite(ev: Ev, room: Room) -> Text:
    out = room.lead("📞", ev)
    out.append(f" started a {'video' if _is_video(ev) else 'voice'} call")
    invitee = as_str(ev.content.get("invitee"))
    if invitee:
        out.append(" with ")
        out.append_text(room.who(invitee))
    return out


def answer(ev: Ev, room: Room) -> Text:
    out = room.lead("📞", ev)
    out.append(" answered the call")
    return out


def hangup(ev: Ev, room: Room) -> Text:
    out = room.lead("📞", ev)
    out.append(" ended the call")
    reason = as_str(ev.content.get("reason"))
    if reason and reason != "user_hangup":
        out.append(f" ({_HANGUP_REASONS.get(reason, one_line(reason, 60))})", DIM)
    return out


def reject(ev: Ev, room: Room) -> Text:
    out = room.lead("📞", ev)
    out.append(" declined the call")
    return out


def _joined_call(content: object) -> bool:
    content = as_map(content)
    memberships = content.get("memberships")
    if isinstance(memberships, list):  # the older form: one event per user, a list of devices
        return any(isinstance(m, dict) and m for m in memberships)
    return bool(content.get("application") or content.get("call_id") is not None)


def member(ev: Ev, room: Room) -> Text:
    """Element Call: "alice joined the call" / "left the call" (empty content = left)."""
    out = room.lead("📞", ev)
    out.append(" joined the call" if _joined_call(ev.content) else " left the call")
    return out


def group_call(ev: Ev, room: Room) -> Text:
    out = room.lead("📞", ev)
    content = ev.content
    if not content or content.get("m.terminated"):
        out.append(" ended the group call")
    else:
        intent = as_str(content.get("m.intent")) or ""
        kind = "video" if "video" in intent or content.get("m.type") == "m.video" else "voice"
        out.append(f" started a group {kind} call")
        name = as_str(content.get("m.name"))
        if name:
            out.append(f" “{one_line(name, 100)}”", TAG)
    return out


def widget(ev: Ev, room: Room) -> Text:
    """Widgets (`im.vector.modular.widgets`, `m.widget`): added, changed or removed, by name."""
    content = ev.content
    out = room.lead("•", ev)
    name = as_str(content.get("name")) or as_str(ev.prev.get("name"))
    kind = as_str(content.get("type")) or as_str(ev.prev.get("type"))
    label = f"“{one_line(name, 100)}”" if name else one_line(ev.state_key or "a widget", 100)
    if not content.get("url") and not content.get("type"):
        out.append(" removed the widget ")
        out.append(label, TAG)
        return out
    out.append(" changed the widget " if ev.prev else " added the widget ")
    out.append(label, TAG)
    if kind:
        shown = {"jitsi": "Jitsi video conference", "m.etherpad": "Etherpad"}.get(kind, kind)
        out.append(f" ({one_line(shown, 60)})", DIM)
    return out


def widget_layout(ev: Ev, room: Room) -> Text:
    out = room.lead("•", ev)
    out.append(" changed the widget layout")
    return out
