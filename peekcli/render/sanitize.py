"""Turn untrusted server text into literal, terminal-safe text.

Everything a homeserver sends (bodies, names, topics, URLs, keys) can contain characters that a
terminal interprets: ESC/CSI/OSC sequences that clear the screen, rewrite the title, plant
hyperlinks or write the clipboard; C1 controls that some terminals treat as CSI; bidi overrides
that make text read differently from what it is; invisible characters that hide or spoof content.
`clean` makes each of those characters visible as a backslash escape (``\\x1b``, ``\\u202e``) so
the reader sees that they were there and the terminal never acts on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

__all__ = ["clean", "one_line"]

# Characters made visible. Kept as one compiled class so the common case (nothing to escape) is a
# single C-level scan. "\t" and "\n" are absent on purpose: tabs are expanded first, newlines kept.
_UNSAFE_CLASS = (
    "\x00-\x08\x0b-\x1f"  # C0 controls except \t and \n (CR included: it rewinds the line)
    "\x7f-\x9f"  # DEL and C1 controls (\x9b is a one-byte CSI on some terminals)
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180e"  # Hangul fillers and other blank "letters" used to fake names
    "\u200b-\u200f"  # zero-width space/non-joiner/joiner, LRM, RLM
    "\u2028-\u202e"  # line/paragraph separators, bidi embeddings and overrides
    "\u2060-\u2064\u2066-\u206f"  # word joiner, invisible operators, bidi isolates, deprecated
    "\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"  # language tag and tag characters (hidden ASCII)
    "\ud800-\udfff"  # lone surrogates (JSON "\ud800" decodes to one)
)
_UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
_JOINERS = frozenset("\u200c\u200d")
_ESCAPES: dict[str, str] = {}


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _joins_script(text: str, index: int) -> bool:
    """ZWJ/ZWNJ between two non-Latin characters is real text (emoji sequences, Persian, Indic).

    Next to ASCII/Latin or at a boundary it only hides or spoofs, so it is escaped there.
    """
    if index == 0 or index + 1 >= len(text):
        return False
    before, after = text[index - 1], text[index + 1]
    return (
        ord(before) > 0x2FF
        and ord(after) > 0x2FF
        and not before.isspace()
        and not after.isspace()
        and _UNSAFE.match(before) is None
        and _UNSAFE.match(after) is None
    )


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    if char in _JOINERS and _joins_script(match.string, match.start()):
        return char
    escaped = _ESCAPES.get(char)
    if escaped is None:
        escaped = _ESCAPES[char] = _escape_char(char)
    return escaped


def _to_str(value: object) -> str:
    """Any JSON value (or anything else) as text, without ever raising."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return repr(value)
        except ValueError:  # int too large for str() (PEP 651 digit limit)
            return "<huge number>"
    if isinstance(value, Mapping | list | tuple):
        try:  # JSON, as the server sent it
            return json.dumps(value, ensure_ascii=False, default=repr)
        except Exception:  # circular, or an element whose repr raises
            pass
    try:
        return repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def clean(text: object, limit: int = 2000) -> str:
    """Return `text` as literal terminal-safe text, cut to `limit` characters with a marker.

    Non-str values are converted (None → ""). Newlines are kept, tabs become spaces, CRLF becomes
    LF; every other control, bidi or invisible format character becomes a visible escape.
    `limit <= 0` disables the cut.
    """
    s = text if type(text) is str else _to_str(text)
    extra = 0
    if 0 < limit < len(s):
        extra = len(s) - limit
        s = s[:limit]
    if "\r" in s:
        s = s.replace("\r\n", "\n")
    if "\t" in s:
        s = s.expandtabs(4)
    if _UNSAFE.search(s) is not None:
        s = _UNSAFE.sub(_replace, s)
    if extra:
        s = f"{s}… [+{extra} chars]"
    return s


def one_line(text: object, limit: int = 200) -> str:
    """`clean` for names, topics and other one-line fields: newlines become a visible ⏎."""
    s = clean(text, limit)
    if "\n" in s:
        s = s.replace("\n", "⏎")
    return s
