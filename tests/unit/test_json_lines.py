"""`--json` lines: exactly the server's event, compact, with terminal-risky characters escaped.

`encode_event` has a fast path for ASCII lines (issue 6's rendering target); these pin down that
both paths escape what a terminal could act on and keep everything else byte for byte.
"""

from __future__ import annotations

import io
import json

import pytest

from peekcli.render.jsonl import encode_event
from peekcli.sinks.jsonl import JsonLinesSink


def _event(body: str) -> dict[str, object]:
    return {"type": "m.room.message", "content": {"msgtype": "m.text", "body": body}}


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("plain ascii", "plain ascii"),
        ("tab\tand \x1b[2J", "tab\\tand \\u001b[2J"),  # C0: json's own escapes
        ("del\x7f only ascii", "del\\u007f only ascii"),  # the ASCII fast path
        ("ünïcode 👍 stays", "ünïcode 👍 stays"),
        ("c1 \x9b31m and ü", "c1 \\u009b31m and \\u00fc"),
        ("bidi \u202e override", "bidi \\u202e override"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ],
)
def test_risky_characters_are_escaped_and_the_rest_kept(body: str, shown: str) -> None:
    line = encode_event(_event(body))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    text = line.decode("utf-8")
    assert f'"body":"{shown}"' in text
    assert json.loads(text) == _event(body)


def test_lines_are_compact_and_in_the_servers_key_order() -> None:
    event = {"z": 1, "a": [1, 2], "content": {"body": "x"}}
    assert encode_event(event) == b'{"z":1,"a":[1,2],"content":{"body":"x"}}\n'


def test_sink_writes_one_line_per_event() -> None:
    out = io.BytesIO()
    sink = JsonLinesSink(out)
    for n in range(3):
        sink.write(_event(f"m{n}"))
    sink.flush()
    assert [json.loads(line)["content"]["body"] for line in out.getvalue().splitlines()] == [
        "m0",
        "m1",
        "m2",
    ]
