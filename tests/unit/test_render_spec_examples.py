"""Every example event of the Matrix specification, served by a fake homeserver, reads as a line a
person understands: only a truly custom event type may fall back to the generic "sent TYPE" line.

The examples are copies of matrix-org/matrix-spec `data/event-schemas/examples/` (and JSON examples
of the client-server module pages, in `modules/`), kept as data in fixtures/spec_examples/.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from tests.unit.timelinehs import HS, TimelineHS

EXAMPLES = Path(__file__).parent / "fixtures" / "spec_examples"
ROOM = "!spec:hs.test"
T0 = 1_795_512_600_000  # Tuesday 24 November 2026 09:30 UTC
#: Examples that are not room events: account data, to-device messages, the bare event shape.
NOT_IN_A_ROOM = {
    "m.accepted_terms",
    "m.direct",
    "m.dummy",
    "m.forwarded_room_key",
    "m.fully_read",
    "m.identity_server",
    "m.ignored_user_list",
    "m.image_pack.rooms",
    "m.key.verification.request",  # the to-device form; in a room it is a msgtype
    "m.invite_permission_config",
    "m.key_backup",
    "m.marked_unread",
    "m.push_rules",
    "m.recent_emoji",
    "m.room_key",
    "m.room_key.withheld",
    "m.room_key_bundle",
    "m.room_key_request",
    "m.secret.request",
    "m.secret.send",
    "m.tag",
    # ephemeral (EDUs): not in /messages; rendered directly in test_render_pretty.py
    "m.presence",
    "m.receipt",
    "m.typing",
}
#: The one example of a custom type: the generic line is right for it.
CUSTOM = {"org.example.custom.event"}


def _load(path: Path) -> dict[str, Any]:
    """An example with its `$ref` base events merged in (the spec's examples build on them)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    ref = doc.pop("$ref", None)
    if ref is None:
        return doc
    base = _load((path.parent / ref).resolve())
    merged = copy.deepcopy(base)
    for key, value in doc.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "content":
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def spec_events() -> list[tuple[str, dict[str, Any]]]:
    """(example name, event) for every room event among the examples, each with its own id and
    minute so that relations do not collide and the order is the files' order."""
    out: list[tuple[str, dict[str, Any]]] = []
    paths = [*sorted(EXAMPLES.glob("*.yaml")), EXAMPLES / "core" / "event.json"]
    paths += sorted((EXAMPLES / "modules").glob("*.json"))
    for path in paths:
        event = _load(path)
        if "type" not in event:  # a module page's fragment: only whole contents are events
            content = event.get("content", event)
            relation = content.get("m.relates_to", {})
            if relation.get("rel_type") == "m.annotation":
                event = {"type": "m.reaction", "content": content}
            elif "body" in content:
                event = {"type": "m.room.message", "content": content}
            else:
                continue
        if event["type"] in NOT_IN_A_ROOM:
            continue
        if "m.room.<event_type>" in event["type"]:
            event["type"] = "m.room.message"
        out.append((path.name, event))
    for n, (name, event) in enumerate(out):
        event["room_id"] = ROOM
        event.setdefault("sender", "@example:example.org")
        event["origin_server_ts"] = T0 + n * 60_000
        if not str(event.get("event_id", "")).startswith("$") or "PhrSn" in str(
            event.get("event_id")
        ):
            event["event_id"] = f"${n}-{name}"
    return out


@pytest.fixture
def hs() -> Iterator[TimelineHS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server = TimelineHS(rsps).install()
        server.stream.extend(event for _, event in spec_events())
        yield server


def generic(line: str) -> str | None:
    """The event type of a generic fallback line ("• x sent TYPE: …", "• x set TYPE …")."""
    match = re.search(r" (?:sent|set) ([a-z][\w.\-]+\.[\w.\-]+)(?: \[|:|$)", line)
    return match.group(1) if match else None


def test_every_spec_example_reads_as_a_sentence(hs: TimelineHS, peek: Any) -> None:
    result = peek("snapshot", ROOM, "-s", HS, "--history", "500", "--no-color")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    fallbacks = {t for t in map(generic, lines) if t}
    assert fallbacks == CUSTOM
    assert "(empty message)" not in out
    for expected in EXPECTED:
        assert any(expected in line for line in lines), expected
    # One call, four readable lines; its signalling (candidates, negotiation…) shows nothing.
    assert len([line for line in lines if "📞" in line]) == 4
    assert "candidates" not in out and "sdp" not in out


#: A line (part) for the examples whose rendering the issue names.
EXPECTED = [
    "📞 @example:example.org started a voice call",
    "📞 @example:example.org answered the call",
    "📞 @example:example.org declined the call",
    "📞 @example:example.org ended the call",
    # location: the description once, the coordinates once, a map link
    "[location] Big Ben, London, UK · 51.5008, 0.1247",
    "https://www.openstreetmap.org/?mlat=51.5008&mlon=0.1247#map=16/51.5008/0.1247",
    # restricted join rule: the rooms it allows
    "made the room joinable by members of !other:example.org, !elsewhere:example.org",
    # third-party invites keep the display name
    "invited Alice Margatroid (third-party invite)",
    "(third-party invite for alice)",
    # spoilers hidden by default, with their reason
    "Alice [spoiler] in the movie.",
    "Alice [spoiler: health of alice] in the movie.",
    # a caption from formatted_body: the markdown source (~~cat~~) is not shown
    "      this is a cat picture :3",
    # a redaction never repeats anything of what it deleted
    "✗ @example:example.org deleted a message (reason: Spamming)",
    # an edit folded into its message; a thread root with its replies
    "Hello Alice & Bob! (edited)",
    "🧵 2 replies",
    "🧵 in thread “Hello world! How are you?”",
    "🔐 wants to verify @bob:example.org",
    "recommends to ban users matching @alice*:example.org (reason: undesirable behaviour)",
    "updated the image pack “Cats” (2 images)",
    "set the room's policy server to policy.example.org",
    "[m.server_notice]",
]


def test_the_text_export_reads_the_same(hs: TimelineHS, peek: Any, tmp_path: Path) -> None:
    target = tmp_path / "spec.txt"
    result = peek("export", ROOM, "-s", HS, "--format", "text", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    assert {t for t in map(generic, text.splitlines()) if t} == CUSTOM
    assert "Hello Alice & Bob! (edited)" in text
    assert "[location] Big Ben, London, UK · 51.5008, 0.1247" in text
