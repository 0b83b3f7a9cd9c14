"""Rendering: pretty and JSON output of a recorded mixed chunk, to /dev/null, through peek's sinks.

The chunk is recorded from the bench's Synapse: a busy room's mix (plain and HTML messages,
replies, reactions, edits, media, notices, encrypted events, profile changes, topic changes,
redactions, from several senders) is sent for real and read back with /messages, so the events
are exactly what a server hands peek (ids, `unsigned`, redacted content). The mix is
`synthetic_event`, also used in-process by the memory measurement (with ever-new ids and
senders, so bounded caches really are exercised).

Pretty output goes through `PrettySink(make_console(...), PrettyRenderer(...))` exactly as
`peek watch` builds it for a file that is not a terminal (plain, no wrapping); JSON through
`JsonLinesSink`, i.e. `encode_event`, onto a binary stream like `sys.stdout.buffer`. Each sink is
flushed once per chunk, as the stream loop does. The JSON baseline is `json.dumps(event)` of the
same events.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.bench.core import Row, Sizes, log, median
from tests.bench.server import BenchServer
from tests.homeserver import Homeserver, User

T0 = 1_795_000_000_000
PRETTY_TARGET = 5_000
JSON_TARGET = 50_000
JSON_RATIO = 1.5


def synthetic_event(n: int, users: int = 40, room_id: str = "!room:example.org") -> dict[str, Any]:
    """Event number `n` of a busy room's timeline: mostly text, some HTML, replies, reactions,
    edits, media, profile and topic changes, redactions, notices, encrypted events."""
    sender = f"@user{n % users}:example.org"
    base: dict[str, Any] = {
        "sender": sender,
        "event_id": f"$ev{n}",
        "origin_server_ts": T0 + n * 7_000,
        "room_id": room_id,
    }
    kind = n % 20
    previous = f"$ev{max(0, n - 3)}"
    if kind < 9:
        body = f"message {n}: the quick brown fox jumps over the lazy dog " * (1 + n % 3)
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        event = {"type": "m.room.message", "content": content}
    elif kind == 9:
        html = f"<p>some <b>bold</b> and <code>code</code> {n}</p>"
        html += "<ul><li>one</li><li>two</li></ul>"
        content = {
            "msgtype": "m.text",
            "body": f"some bold and code {n}\n- one\n- two",
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        }
        event = {"type": "m.room.message", "content": content}
    elif kind == 10:
        content = {
            "msgtype": "m.text",
            "body": f"> <@user1:example.org> quoted\n\nreply {n}",
            "format": "org.matrix.custom.html",
            "formatted_body": f"<mx-reply><blockquote>quoted</blockquote></mx-reply>reply {n}",
            "m.relates_to": {"m.in_reply_to": {"event_id": previous}},
        }
        event = {"type": "m.room.message", "content": content}
    elif kind in (11, 12):
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": previous, "key": "👍"}}
        event = {"type": "m.reaction", "content": content}
    elif kind == 13:
        content = {
            "msgtype": "m.text",
            "body": f"* edited {n}",
            "m.new_content": {"msgtype": "m.text", "body": f"edited {n}"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": previous},
        }
        event = {"type": "m.room.message", "content": content}
    elif kind == 14:
        content = {
            "msgtype": "m.image",
            "body": f"photo{n}.jpg",
            "url": f"mxc://example.org/media{n}",
            "info": {"size": 123_456 + n, "w": 1024, "h": 768, "mimetype": "image/jpeg"},
        }
        event = {"type": "m.room.message", "content": content}
    elif kind == 15:
        content = {"membership": "join", "displayname": f"User {n % users}"}
        event = {"type": "m.room.member", "state_key": sender, "content": content}
    elif kind == 16:
        event = {"type": "m.room.redaction", "redacts": previous, "content": {"reason": "spam"}}
    elif kind == 17:
        event = {"type": "m.room.topic", "state_key": "", "content": {"topic": f"topic {n}"}}
    elif kind == 18:
        content = {"msgtype": "m.notice", "body": f"bot notice {n}\nsecond line"}
        event = {"type": "m.room.message", "content": content}
    else:
        event = {"type": "m.room.encrypted", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    return {**base, **event}


def mixed_chunk(size: int = 2000) -> list[dict[str, Any]]:
    return [synthetic_event(n) for n in range(size)]


def _relink(content: dict[str, Any], previous: str) -> dict[str, Any]:
    """Point a synthetic relation at a real event id."""
    rel = content.get("m.relates_to")
    if isinstance(rel, dict):
        rel = dict(rel)
        if "event_id" in rel:
            rel["event_id"] = previous
        if "m.in_reply_to" in rel:
            rel["m.in_reply_to"] = {"event_id": previous}
        content = {**content, "m.relates_to": rel}
    return content


def record(server: BenchServer, admin: User, users: list[User], size: int) -> list[dict[str, Any]]:
    """Send `size` mixed events to a new room and read its whole timeline back, oldest first."""
    hs: Homeserver = server.hs
    room_id = server.room(admin, users, "recorded mix")
    ids: list[str] = []
    for n in range(size):
        ev = synthetic_event(n, users=len(users))
        user = users[n % len(users)]
        previous = ids[max(0, n - 3)] if ids else ""
        etype, content = ev["type"], ev["content"]
        if etype == "m.room.member":
            event_id = hs.send_state(user, room_id, etype, content, state_key=user.user_id)
        elif etype == "m.room.redaction":
            event_id = hs.redact(admin, room_id, previous, reason="spam")
        elif etype == "m.room.topic":
            event_id = hs.send_state(admin, room_id, etype, content)
        else:
            event_id = hs.send_event(user, room_id, etype, _relink(content, previous))
        ids.append(event_id)
    reply = hs.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages",
        user=admin,
        params={"dir": "b", "limit": size + 100},
    )
    return list(reversed(reply["chunk"]))


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else float("inf")


def pretty_rate(chunk: list[dict[str, Any]], total: int, *, color: bool | None) -> float:
    from peekcli.render.pretty import PrettyRenderer
    from peekcli.sinks.terminal import PrettySink, make_console

    rounds = max(1, math.ceil(total / len(chunk)))
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        sink = PrettySink(
            make_console(devnull, color), PrettyRenderer(homeserver="http://127.0.0.1:8008")
        )
        gc.collect()
        began = time.perf_counter()
        for _ in range(rounds):
            for event in chunk:
                sink.write(event)
            sink.flush()
        return _rate(rounds * len(chunk), time.perf_counter() - began)


def json_seconds(chunk: list[dict[str, Any]], total: int) -> tuple[float, float, int]:
    """(peek's JSON sink, json.dumps) seconds for the same events, interleaved per round."""
    from peekcli.sinks.jsonl import JsonLinesSink

    rounds = max(1, math.ceil(total / len(chunk)))
    sink_time = dumps_time = 0.0
    dumps = json.dumps
    with open(os.devnull, "wb") as devnull:
        sink = JsonLinesSink(devnull)
        gc.collect()
        for _ in range(rounds):
            began = time.perf_counter()
            for event in chunk:
                sink.write(event)
            sink.flush()
            middle = time.perf_counter()
            for event in chunk:
                dumps(event)
            ended = time.perf_counter()
            sink_time += middle - began
            dumps_time += ended - middle
    return sink_time, dumps_time, rounds * len(chunk)


def run(sizes: Sizes, chunk: list[dict[str, Any]], work: Path) -> list[Row]:
    (work / "recorded-chunk.json").write_text(json.dumps(chunk))
    log(f"rendering: {len(chunk)} recorded events × {sizes.render_runs} runs")
    pretty, colour, sink_rates, dumps_rates, ratios = [], [], [], [], []
    for _ in range(sizes.render_runs):
        pretty.append(pretty_rate(chunk, sizes.render_events, color=None))
        colour.append(pretty_rate(chunk, sizes.render_events, color=True))
        sink_s, dumps_s, n = json_seconds(chunk, sizes.render_events * 10)
        sink_rates.append(_rate(n, sink_s))
        dumps_rates.append(_rate(n, dumps_s))
        ratios.append(sink_s / dumps_s)
    pretty_med, json_med, ratio = median(pretty), median(sink_rates), median(ratios)
    kinds = sorted({str(ev.get("type")) for ev in chunk})
    return [
        Row(
            "rendering: pretty to /dev/null",
            pretty_med,
            "ev/s",
            target=f"≥ {PRETTY_TARGET:,} ev/s",
            ok=pretty_med >= PRETTY_TARGET,
            note=f"recorded chunk of {len(chunk)} events, {len(kinds)} types",
        ),
        Row(
            "rendering: pretty, colour forced (--color) to /dev/null",
            median(colour),
            "ev/s",
            target="",
            ok=None,
        ),
        Row(
            "rendering: --json to /dev/null",
            json_med,
            "ev/s",
            median(dumps_rates),
            "json.dumps",
            f"{ratio:.2f}× cost",
            f"≥ {JSON_TARGET:,} ev/s, ≤ {JSON_RATIO:g}× cost",
            json_med >= JSON_TARGET and ratio <= JSON_RATIO,
        ),
    ]
