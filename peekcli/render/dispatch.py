"""The one table from event type to the renderer of its family.

Each renderer is `(Ev, Room) -> Text | None` (see `context.Renderer`); None means the event shows
nothing in pretty output (call signalling), while `--json` still carries it. A type missing here
falls back to `generic.unknown`, the one line for truly custom events.
"""

from __future__ import annotations

from peekcli.render.context import Renderer
from peekcli.render.families import (
    calls,
    ephemeral,
    generic,
    membership,
    messages,
    polls,
    room_state,
)

HANDLERS: dict[str, Renderer] = {
    # messages
    "m.room.message": messages.message,
    "m.sticker": messages.sticker,
    "m.room.encrypted": messages.encrypted,
    "m.reaction": messages.reaction,
    "m.room.redaction": messages.redaction,
    # polls
    "m.poll.start": polls.start,
    "org.matrix.msc3381.poll.start": polls.start,
    "m.poll.response": polls.response,
    "org.matrix.msc3381.poll.response": polls.response,
    "m.poll.end": polls.end,
    "org.matrix.msc3381.poll.end": polls.end,
    # calls and widgets
    "m.call.invite": calls.invite,
    "m.call.answer": calls.answer,
    "m.call.hangup": calls.hangup,
    "m.call.reject": calls.reject,
    **dict.fromkeys(calls.SIGNALLING, calls.hidden),
    "m.call.member": calls.member,
    "org.matrix.msc3401.call.member": calls.member,
    "m.call": calls.group_call,
    "org.matrix.msc3401.call": calls.group_call,
    "im.vector.modular.widgets": calls.widget,
    "m.widget": calls.widget,
    "io.element.widgets.layout": calls.widget_layout,
    # membership
    "m.room.member": membership.member,
    # room state
    "m.room.name": room_state.room_name,
    "m.room.topic": room_state.topic,
    "m.room.avatar": room_state.room_avatar,
    "m.room.canonical_alias": room_state.canonical_alias,
    "m.room.history_visibility": room_state.history_visibility,
    "m.room.guest_access": room_state.guest_access,
    "m.room.join_rules": room_state.join_rules,
    "m.room.power_levels": room_state.power_levels,
    "m.room.pinned_events": room_state.pinned,
    "m.room.encryption": room_state.encryption,
    "m.room.tombstone": room_state.tombstone,
    "m.room.create": room_state.create,
    "m.room.server_acl": room_state.server_acl,
    "m.room.third_party_invite": room_state.third_party_invite,
    "m.space.child": room_state.space_child,
    "m.space.parent": room_state.space_parent,
    "m.room.policy": room_state.policy_server,
    "m.room.image_pack": room_state.image_pack,
    "im.ponies.room_emotes": room_state.image_pack,
    "m.policy.rule.user": room_state.policy_rule,
    "m.policy.rule.room": room_state.policy_rule,
    "m.policy.rule.server": room_state.policy_rule,
    # in-room key verification
    **{
        f"m.key.verification.{step}": messages.verification
        for step in ("ready", "start", "accept", "key", "mac", "done", "cancel")
    },
    # ephemeral
    "m.typing": ephemeral.typing,
    "m.receipt": ephemeral.receipt,
    "m.presence": ephemeral.presence,
}

unknown: Renderer = generic.unknown
