"""Throughput of the pretty renderer: render + print a mixed ~2000-event chunk to /dev/null.

Not a test (timings depend on the machine); run it by hand:
    .venv/bin/python tests/bench/bench_render.py [rounds]
The target is >= 5,000 events/s for render + Console.print at width 100.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from typing import Any

from rich.console import Console

from peekcli.render.pretty import PrettyRenderer

T0 = 1_795_000_000_000


def mixed_chunk(size: int = 2000) -> list[dict[str, Any]]:
    """A busy room's timeline: mostly text, some HTML, replies, reactions, edits, media, state."""
    events: list[dict[str, Any]] = []
    users = [f"@user{n}:example.org" for n in range(40)]
    for n in range(size):
        sender = users[n % len(users)]
        base: dict[str, Any] = {
            "sender": sender,
            "event_id": f"$ev{n}",
            "origin_server_ts": T0 + n * 7_000,
            "room_id": "!room:example.org",
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
            content = {
                "m.relates_to": {"rel_type": "m.annotation", "event_id": previous, "key": "👍"}
            }
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
            content = {"membership": "join", "displayname": f"User {n % 40}"}
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
        events.append({**base, **event})
    return events


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    chunk = mixed_chunk()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        for color in (False, True):
            console = Console(
                file=sink,
                width=100,
                force_terminal=color,
                color_system="truecolor" if color else None,
            )
            renderer = PrettyRenderer(tz=dt.UTC, homeserver="https://example.org")
            start = time.perf_counter()
            for _ in range(rounds):
                for event in chunk:
                    for line in renderer.render(event):
                        console.print(line)
            elapsed = time.perf_counter() - start
            total = rounds * len(chunk)
            label = "colour" if color else "plain "
            print(f"{label}: {total} events in {elapsed:.2f}s = {total / elapsed:,.0f} events/s")
        renderer = PrettyRenderer(tz=dt.UTC)
        start = time.perf_counter()
        for _ in range(rounds):
            for event in chunk:
                renderer.render(event)
        elapsed = time.perf_counter() - start
        total = rounds * len(chunk)
        print(f"render only: {total / elapsed:,.0f} events/s")


if __name__ == "__main__":
    main()
