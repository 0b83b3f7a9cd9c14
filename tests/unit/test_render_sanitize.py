"""sanitize.clean / one_line: server text becomes literal text a terminal cannot act on."""

from __future__ import annotations

import unicodedata

import pytest

from peekcli.render.sanitize import clean, one_line


def test_ordinary_text_is_unchanged() -> None:
    text = "Hello, wörld! 你好 👋 «quotes» — 1 < 2 & [bold]x[/bold]\nsecond line"
    assert clean(text) == text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\x1b[2Jb", "a\\x1b[2Jb"),  # clear screen
        (
            "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\",
            "\\x1b]8;;http://evil\\x1b\\click\\x1b]8;;\\x1b\\",
        ),
        ("\x1b]52;c;cm0gLXJm\x07", "\\x1b]52;c;cm0gLXJm\\x07"),  # clipboard write
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # window title
        ("\x9b31mred", "\\x9b31mred"),  # C1 CSI
        ("\x90dcs\x9c", "\\x90dcs\\x9c"),  # C1 DCS … ST
        ("nel\x85", "nel\\x85"),
        ("del\x7f", "del\\x7f"),
        ("nul\x00bell\x07bs\x08ff\x0cvt\x0b", "nul\\x00bell\\x07bs\\x08ff\\x0cvt\\x0b"),
        ("over\rwrite", "over\\x0dwrite"),  # a lone CR would rewind the line
    ],
)
def test_control_characters_become_visible_escapes(raw: str, shown: str) -> None:
    assert clean(raw) == shown


@pytest.mark.parametrize(
    "char",
    [
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200e",
        "\u200f",
        "\u061c",
    ],
)
def test_bidi_controls_are_escaped(char: str) -> None:
    assert clean(f"a{char}b") == f"a\\u{ord(char):04x}b"


@pytest.mark.parametrize(
    ("char", "escape"),
    [
        ("\u200b", "\\u200b"),
        ("\u2060", "\\u2060"),
        ("\u2063", "\\u2063"),
        ("\u2064", "\\u2064"),
        ("\ufeff", "\\ufeff"),
        ("\u00ad", "\\xad"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ("\u3164", "\\u3164"),  # Hangul filler: an "invisible letter" used for blank names
        ("\U000e0041", "\\U000e0041"),  # tag character: hidden ASCII
        ("\ud800", "\\ud800"),  # lone surrogate
    ],
)
def test_invisible_and_separator_characters_are_escaped(char: str, escape: str) -> None:
    assert clean(f"x{char}y") == f"x{escape}y"


def test_joiners_are_escaped_next_to_latin_but_kept_inside_emoji_and_scripts() -> None:
    assert clean("ad\u200dmin") == "ad\\u200dmin"
    assert clean("pay\u200cpal") == "pay\\u200cpal"
    assert clean("\u200dstart") == "\\u200dstart"
    assert clean("end\u200d") == "end\\u200d"
    family = "👨\u200d👩\u200d👧"
    assert clean(family) == family
    assert clean("❤\ufe0f\u200d🔥") == "❤\ufe0f\u200d🔥"
    persian = "می\u200cخواهم"
    assert clean(persian) == persian
    assert clean("👨\u200d\u200d👩") == "👨\\u200d\\u200d👩"  # doubled: not a real sequence


def test_newlines_kept_tabs_expanded_crlf_normalised() -> None:
    assert clean("a\tb\r\nc\n") == "a   b\nc\n"


def test_no_unsafe_character_survives_anywhere_in_unicode() -> None:
    everything = "".join(chr(c) for c in range(0x110000))
    out = clean(everything, limit=0)
    bad = {
        char
        for char in out
        if char != "\n"
        and (
            unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")
            or char in "\u115f\u1160\u3164\uffa0"
        )
    }
    assert not bad, sorted(f"U+{ord(c):04X}" for c in bad)[:20]


def test_escapes_are_idempotent() -> None:
    once = clean("a\x1b[31m\u202eb")
    assert clean(once) == once


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        (42, "42"),
        (1.5, "1.5"),
        (True, "true"),
        ({"a": [1, None]}, '{"a": [1, null]}'),
        (["x\x1b", 2], '["x\\u001b", 2]'),  # JSON's own escape: still literal text
        (b"bytes", "b'bytes'"),
    ],
)
def test_non_strings_are_converted_safely(value: object, shown: str) -> None:
    assert clean(value) == shown


def test_unprintable_objects_do_not_raise() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert clean(Hostile()) == "<unprintable Hostile>"
    assert clean(10**5000) == "<huge number>"
    nested: list[object] = []
    nested.append(nested)
    assert clean(nested) == "[[...]]"


def test_long_text_is_cut_with_a_marker() -> None:
    assert clean("x" * 2500) == "x" * 2000 + "… [+500 chars]"
    assert clean("x" * 2000) == "x" * 2000
    assert clean("abcdef", limit=3) == "abc… [+3 chars]"
    assert clean("abcdef", limit=0) == "abcdef"


def test_one_megabyte_is_cut_before_escaping() -> None:
    body = ("\x1b[31m" + "y" * 100) * 10_000
    out = clean(body)
    assert out.endswith(f"… [+{len(body) - 2000} chars]")
    assert "\x1b" not in out


def test_one_line_makes_newlines_visible() -> None:
    assert one_line("Eve\n\x1b[31mADMIN") == "Eve⏎\\x1b[31mADMIN"
    assert one_line("n" * 300) == "n" * 200 + "… [+100 chars]"
    assert one_line(None) == ""
