"""JSON lines: each event exactly as the server sent it, one per line, for jq and scripts.

Pure encoding; `peekcli.sinks.jsonl` writes the lines.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Characters a terminal may act on even inside a JSON string: C1 controls (CSI is U+009B), DEL,
# bidi overrides and other invisible format characters. json.dumps escapes C0 itself.
_RISKY = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
#: One encoder for every line: `json.dumps` with options builds a new one per call (issue 6:
#: JSON output within 1.5× the cost of json.dumps).
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_event(event: Any) -> bytes:
    """One event as a UTF-8 JSON line. Risky characters and lone surrogates become `\\uXXXX`."""
    line = _COMPACT.encode(event)
    # Most lines are ASCII (a flag check), where DEL is the only risky character: a plain
    # substring scan instead of the regex, which costs as much as a third of the encoding.
    if ("\x7f" not in line) if line.isascii() else (_RISKY.search(line) is None):
        try:
            return line.encode("utf-8") + b"\n"
        except UnicodeEncodeError:  # lone surrogates from the server's \\ud800 escapes
            pass
    return json.dumps(event, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"
