"""formatted_body (Matrix HTML) → styled Text: what is shown, how it is styled, what is dropped."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Text

from peekcli.render.matrix_html import html_to_text, safe_link


def shown(html: object) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    console.print(html_to_text(html))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def style_of(text: Text, word: str) -> Style:
    return text.get_style_at_offset(Console(), text.plain.index(word))


@pytest.mark.parametrize(
    ("html", "word", "attribute"),
    [
        ("<b>w</b>", "w", "bold"),
        ("<strong>w</strong>", "w", "bold"),
        ("<i>w</i>", "w", "italic"),
        ("<em>w</em>", "w", "italic"),
        ("<u>w</u>", "w", "underline"),
        ("<s>w</s>", "w", "strike"),
        ("<del>w</del>", "w", "strike"),
        ("<strike>w</strike>", "w", "strike"),
        ("<h1>w</h1>", "w", "bold"),
        ("<h6>w</h6>", "w", "bold"),
        ("<a href='https://x.example'>w</a>", "w", "underline"),
    ],
)
def test_inline_styles(html: str, word: str, attribute: str) -> None:
    text = html_to_text(f"before {html} after")
    assert getattr(style_of(text, word), attribute) is True
    assert not getattr(style_of(text, "after"), attribute)


def test_code_is_coloured() -> None:
    text = html_to_text("run <code>peek watch</code> now")
    assert text.plain == "run peek watch now"
    assert style_of(text, "peek").color is not None
    assert style_of(text, "now").color is None


def test_styles_do_not_leak_from_misnested_tags() -> None:
    text = html_to_text("<b>bold <i>both</b> rest</i> plain")
    assert style_of(text, "both").bold and style_of(text, "both").italic
    assert not style_of(text, "rest").bold
    assert not style_of(text, "plain").bold and not style_of(text, "plain").italic


def test_paragraphs_and_line_breaks() -> None:
    assert shown("<p>one</p>\n<p>two</p>") == "one\n\ntwo\n"
    assert shown("a<br>b<br/>c<br><br>d") == "a\nb\nc\n\nd\n"
    assert shown("<br>leading and trailing<br>") == "leading and trailing\n"
    assert shown("  lots   of\n  space  ") == "lots of space\n"


def test_pre_keeps_newlines_and_indentation() -> None:
    html = "<pre><code class='language-python'>def f():\n    return 1\n\nf()\n</code></pre>"
    assert shown(html) == "def f():\n    return 1\n\nf()\n"


def test_blockquote_lines_are_prefixed() -> None:
    html = "<blockquote><p>first</p><p>second<br>third</p></blockquote><p>after</p>"
    assert shown(html) == "▎ first\n▎\n▎ second\n▎ third\n\nafter\n"
    assert shown("<blockquote>outer<blockquote>inner</blockquote></blockquote>") == (
        "▎ outer\n▎ ▎ inner\n"
    )


def test_lists() -> None:
    html = (
        "<p>Steps:</p><ol start='3'><li>three</li><li>four<ul><li>nested</li></ul></li></ol>"
        "<ul><li>dot</li><li>multi<br>line</li></ul>"
    )
    assert shown(html) == ("Steps:\n3. three\n4. four\n   • nested\n• dot\n• multi\n  line\n")


def test_headings_and_rules() -> None:
    assert shown("<h2>Title</h2><p>text</p><hr><p>more</p>") == (
        "Title\n\ntext\n──────────\n\nmore\n"
    )


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<a href='https://example.org'>site</a>", "site (https://example.org)\n"),
        ("<a href='https://example.org'>https://example.org</a>", "https://example.org\n"),
        ("<a href='https://example.org'></a>", "https://example.org\n"),
        ("<a href='mailto:a@example.org'>a@example.org</a>", "a@example.org\n"),
        ("<a href='https://matrix.to/#/@bob:example.org'>Bob</a>", "Bob (@bob:example.org)\n"),
        (
            "<a href='https://matrix.to/#/%40bob%3Aexample.org'>@bob:example.org</a>",
            "@bob:example.org\n",
        ),
        ("<a href='javascript:alert(1)'>click</a>", "click (javascript:alert(1))\n"),
        ("<a>no href</a>", "no href\n"),
    ],
)
def test_links_show_their_target(html: str, expected: str) -> None:
    assert shown(html) == expected


def test_only_safe_urls_become_hyperlinks() -> None:
    text = html_to_text(
        "<a href='https://ok.example/a?b=1;c'>ok</a> <a href='javascript:alert(1)'>js</a> "
        "<a href='data:text/html,x'>data</a> <a href='https://x.example/\x1b]52;c;QQ\x07'>esc</a>"
    )
    assert style_of(text, "ok").link == "https://ok.example/a?b=1;c"
    for word in ("js", "data", "esc"):
        assert style_of(text, word).link is None, word
    assert "\\x1b]52;c;QQ\\x07" in text.plain


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.org/x", True),
        ("HTTP://EXAMPLE.ORG", True),
        ("mailto:a@b.c", True),
        ("matrix:r/room:example.org", True),
        ("javascript:alert(1)", False),
        ("file:///etc/passwd", False),
        ("https://example.org/a b", False),
        ("https://example.org/\x07", False),
        ("https://exämple.org", False),
        ("no-scheme", False),
        ("https://" + "a" * 3000, False),
    ],
)
def test_safe_link(url: str, ok: bool) -> None:
    assert (safe_link(url) == url) is ok


def test_reply_fallback_script_style_and_head_are_dropped() -> None:
    html = (
        "<mx-reply><blockquote><a href='https://matrix.to/#/!r:x/$e'>In reply to</a> "
        "<a href='https://matrix.to/#/@a:x'>@a:x</a><br>old text</blockquote></mx-reply>"
        "<script>alert('x')</script><style>body { display: none }</style>"
        "<head><title>t</title></head>new text"
    )
    assert shown(html) == "new text\n"


def test_unclosed_reply_fallback_leaves_nothing() -> None:
    assert html_to_text("<mx-reply>everything after").plain == ""


def test_spoilers_are_hidden() -> None:
    text = html_to_text(
        "ending: <span data-mx-spoiler>he dies</span>, "
        "twist: <span data-mx-spoiler='plot'>it was <b>a dream</b></span> ok"
    )
    assert text.plain == "ending: [spoiler], twist: [spoiler: plot] ok"
    assert style_of(text, "[spoiler]").dim


def test_images_show_alt_text() -> None:
    assert shown("<img src='mxc://x/y' alt='a cat'> <img src='mxc://x/z'>") == (
        "[image: a cat] [image]\n"
    )
    assert shown("party <img data-mx-emoticon src='mxc://x/p' alt=':party:'>") == "party :party:\n"


def test_unknown_tags_show_their_text() -> None:
    assert shown("<marquee>moving</marquee> <blink>blink</blink> <details>d</details>") == (
        "moving blink\nd\n"
    )


def test_tables() -> None:
    html = "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
    assert shown(html) == "a │ b\n1 │ 2\n"


def test_colours_only_from_valid_hex() -> None:
    text = html_to_text(
        "<font color='#ff0000'>red</font> <span data-mx-color='#00ff00'>green</span> "
        "<font color='red on white'>named</font> <span data-mx-color='[bold]'>bad</span>"
    )
    assert style_of(text, "red").color is not None
    assert style_of(text, "green").color is not None
    assert style_of(text, "named").color is None
    assert style_of(text, "bad").color is None


def test_entities_and_control_characters() -> None:
    text = html_to_text("&lt;b&gt;not bold&lt;/b&gt; &amp; \x1b[2J &#x202e;rtl \u200bzw")
    assert text.plain == "<b>not bold</b> & \\x1b[2J \\u202ertl \\u200bzw"
    assert not style_of(text, "not").bold


def test_rich_markup_is_never_interpreted() -> None:
    assert shown("[bold red]x[/] [link=http://evil]y[/link] :smile:") == (
        "[bold red]x[/] [link=http://evil]y[/link] :smile:\n"
    )


def test_attribute_values_are_sanitised() -> None:
    assert shown("<img alt='\x1b[31mred\u202e'>") == "[image: \\x1b[31mred\\u202e]\n"
    assert shown("<span data-mx-spoiler='\x1b]0;t\x07'>x</span>") == "[spoiler: \\x1b]0;t\\x07]\n"


def test_broken_and_hostile_markup_never_raises() -> None:
    for html in (
        "<",
        "<<<>>>",
        "<a href=",
        "<!-- unclosed comment",
        "<![CDATA[x",
        "</p></p></li></ol>",
        "<b>" * 5000 + "deep" + "</b>" * 5000,
        "<ol start='99999999999'><li>x</li></ol>",
        "<p>" * 3000,
        "<li>orphan</li>",
    ):
        html_to_text(html)
    assert "deep" in html_to_text("<b>" * 5000 + "deep").plain


def test_non_string_input() -> None:
    assert html_to_text(None).plain == ""
    assert html_to_text(42).plain == "42"


def test_output_is_cut_with_marker() -> None:
    text = html_to_text("<p>" + "x" * 20_000 + "</p>", limit=100)
    assert text.plain == "x" * 100 + "… [+19900 chars]"


def test_coloured_output_contains_only_sgr_and_safe_hyperlinks() -> None:
    console = Console(file=io.StringIO(), width=60, color_system="truecolor", force_terminal=True)
    console.print(
        html_to_text(
            "<b>\x1b[2J</b> <a href='https://ok.example/'>ok</a> \x9b31m "
            "<a href='javascript:x'>js</a> <code>\x1b]52;c;QQ\x07</code>"
        )
    )
    out = console.file.getvalue()  # type: ignore[attr-defined]
    rest = re.sub(r"\x1b\[[0-9;]*m", "", out)
    rest = re.sub(r"\x1b\]8;id=[0-9]+;https://ok\.example/\x1b\\|\x1b\]8;;\x1b\\", "", rest)
    assert "\x1b" not in rest and "\x9b" not in rest and "\x07" not in rest
