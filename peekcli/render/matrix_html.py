"""Matrix `formatted_body` HTML to styled rich Text.

Uses the standard library's HTMLParser (a real tokenizer, tolerant of broken markup) and keeps its
own element stack so styles and quote/list prefixes are undone correctly when tags are mis-nested.
All text and attribute values pass through `sanitize.clean`; nothing is ever parsed as rich markup.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote

from rich.color import Color, ColorParseError
from rich.style import Style
from rich.text import Text

from peekcli.render.sanitize import clean, one_line

__all__ = ["SPOILER", "SPOILER_MARK", "html_to_text", "safe_link"]

#: Style meta keys of spoiler text shown with `spoilers=True`, and of the marker before it.
SPOILER = "peek_spoiler"
SPOILER_MARK = "peek_spoiler_mark"

# Matrix events are at most 64 KiB; anything longer is not worth parsing.
_MAX_INPUT = 65536
_MAX_DEPTH = 200
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "matrix"})
_URL_CHARS = re.compile(r"[\x21-\x7e]{1,2048}")
_SPACES = re.compile(r"[ \t\n\r\f]+")
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")

_VOID = frozenset(
    {"br", "img", "hr", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"}
)
# Content of these is never shown: reply fallbacks, scripts, styles, document metadata.
_SKIP = frozenset(
    {"mx-reply", "script", "style", "template", "head", "title", "svg", "math", "iframe", "object"}
)
_INLINE_STYLES: dict[str, Style] = {
    "b": Style(bold=True),
    "strong": Style(bold=True),
    "i": Style(italic=True),
    "em": Style(italic=True),
    "cite": Style(italic=True),
    "u": Style(underline=True),
    "ins": Style(underline=True),
    "s": Style(strike=True),
    "del": Style(strike=True),
    "strike": Style(strike=True),
    "code": Style(color="cyan"),
    "th": Style(bold=True),
    "h1": Style(bold=True, underline=True),
    "h2": Style(bold=True),
    "h3": Style(bold=True),
    "h4": Style(bold=True),
    "h5": Style(bold=True),
    "h6": Style(bold=True),
    "summary": Style(bold=True),
}
_BLOCKS = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6"}
    | {"table", "tr", "details", "summary", "dl", "dt", "dd"}
)
_PRE_STYLE = Style(color="cyan")
_LINK_STYLE = Style(color="blue", underline=True)
_DIM = Style(dim=True)
_QUOTE_STYLE = Style(color="green", dim=True)
_NULL = Style()
_MATRIX_TO = "https://matrix.to/#/"
_LIST_TAGS = frozenset({"ul", "ol"})
_P_SCOPE = frozenset({"li", "blockquote", "div", "td", "th"})


def safe_link(url: str) -> str | None:
    """`url` if it may become a terminal hyperlink (OSC 8), else None.

    Only well-known schemes and printable ASCII without spaces: the URL ends up inside an escape
    sequence, so a stray ESC or BEL in it would let a message break out and drive the terminal.
    """
    if not _URL_CHARS.fullmatch(url):
        return None
    scheme, sep, _ = url.partition(":")
    if not sep or scheme.lower() not in _LINK_SCHEMES:
        return None
    return url


@dataclass(slots=True, eq=False)
class _Ctx:
    """A line-prefix contributor: a blockquote bar or a list item's marker/indent."""

    cont: str
    marker: str | None = None
    style: Style = _NULL


@dataclass(slots=True)
class _Frame:
    tag: str
    style: Style  # effective style inside this element
    ctx: _Ctx | None = None
    skip: bool = False
    pre: bool = False
    link: tuple[list[str], str] | None = None  # (collected text, href) of an <a>
    counter: int = 1  # next number of an <ol>
    ordered: bool = False
    cells: int = 0


class _Converter(HTMLParser):
    def __init__(self, spoilers: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self._spoilers = spoilers
        self.parts: list[tuple[str, Style]] = []
        self._stack: list[_Frame] = []
        self._ctx: list[_Ctx] = []
        self._links: list[list[str]] = []  # text collected by each open <a>
        self._style = _NULL
        self._skip = 0
        self._pre = 0
        self._pending = 0  # newlines owed before the next content
        self._bol = True  # at beginning of a line (prefix not yet written)
        self._empty = True  # no content written yet
        self._space = False  # last content character was a space
        self._block_start = False  # a block opened and no content written since

    # -- output primitives -------------------------------------------------------------------

    def _need(self, newlines: int) -> None:
        self._pending = max(self._pending, newlines)

    def _trim_spaces(self) -> None:
        """Drop trailing spaces of the current line (never crossing a newline)."""
        parts = self.parts
        while parts:
            text, style = parts[-1]
            stripped = text.rstrip(" ")
            if stripped == text:
                return
            if stripped:
                parts[-1] = (stripped, style)
                return
            parts.pop()

    def _flush_newlines(self) -> None:
        if self._empty:
            self._pending = 0
            return
        parts = self.parts
        while self._pending:
            if self._bol:  # a blank line: keep the quote bar so quoted paragraphs stay joined
                bar = "".join(c.cont for c in self._ctx if c.marker is None and c.cont.strip())
                if bar:
                    parts.append((bar.rstrip(), _QUOTE_STYLE))
            else:
                self._trim_spaces()
            parts.append(("\n", _NULL))
            self._bol = True
            self._pending -= 1
        self._space = False

    def _prefix(self) -> None:
        for ctx in self._ctx:
            if ctx.marker is not None:
                self.parts.append((ctx.marker, ctx.style))
                ctx.marker = None
            elif ctx.cont:
                self.parts.append((ctx.cont, ctx.style))
        self._bol = False

    def _emit(self, text: str, style: Style | None = None) -> None:
        """Write already-cleaned inline text."""
        if not text:
            return
        if self._pending:
            self._flush_newlines()
        if self._bol:
            self._prefix()
        self.parts.append((text, style or self._style))
        for buffer in self._links:
            buffer.append(text)
        self._empty = False
        self._block_start = False
        self._space = text.endswith(" ")

    # -- stack ---------------------------------------------------------------------------------

    def _push(self, frame: _Frame) -> None:
        self._stack.append(frame)
        self._style = frame.style
        if frame.ctx is not None:
            self._ctx.append(frame.ctx)
        if frame.skip:
            self._skip += 1
        if frame.pre:
            self._pre += 1
        if frame.link is not None:
            self._links.append(frame.link[0])

    def _pop(self) -> None:
        frame = self._stack.pop()
        self._style = self._stack[-1].style if self._stack else _NULL
        if frame.ctx is not None:
            self._ctx = [ctx for ctx in self._ctx if ctx is not frame.ctx]
        if frame.skip:
            self._skip -= 1
        if frame.pre:
            self._pre -= 1
        if frame.link is not None:
            buffer, href = frame.link
            self._links = [b for b in self._links if b is not buffer]
            self._end_link("".join(buffer).strip(), href)
        if frame.tag in _BLOCKS:
            self._need(1)

    def _close(self, tag: str, stop_at: frozenset[str] = frozenset()) -> bool:
        """Close the innermost open `tag` (and everything inside it); False if none is open."""
        for index in range(len(self._stack) - 1, -1, -1):
            open_tag = self._stack[index].tag
            if open_tag == tag:
                while len(self._stack) > index:
                    self._pop()
                return True
            if open_tag in stop_at:
                return False
        return False

    # -- links ---------------------------------------------------------------------------------

    def _end_link(self, shown: str, href: str) -> None:
        if self._skip:
            return
        target = href
        lowered = href.lower()
        if lowered.startswith(_MATRIX_TO):
            # Mentions/permalinks: the identifier is what matters (and exposes a spoofed pill).
            target = unquote(href[len(_MATRIX_TO) :].partition("?")[0])
        elif lowered.startswith("mailto:"):
            target = href[len("mailto:") :]
        target_shown = one_line(target, 300)
        if not shown:
            link = safe_link(href)
            style = self._style + Style(link=link) + _LINK_STYLE if link else self._style
            self._emit(target_shown, style)
        elif shown not in (target_shown, one_line(href, 300)):
            self._emit(f" ({target_shown})", _DIM)

    # -- HTMLParser callbacks ------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag in _VOID:
            self._void(tag, attr)
            return
        if len(self._stack) >= _MAX_DEPTH:
            return
        if tag == "li":
            self._close("li", stop_at=_LIST_TAGS)
        elif tag == "a":
            self._close("a")
        elif tag in _BLOCKS and tag not in ("dt", "dd"):
            self._close("p", stop_at=_P_SCOPE)
        style = self._style
        frame = _Frame(tag, style)
        if tag in _SKIP:
            frame.skip = True
        elif tag in _INLINE_STYLES:
            frame.style = style + _INLINE_STYLES[tag]
        if tag == "span" and "data-mx-spoiler" in attr:
            reason = one_line(attr["data-mx-spoiler"], 100)
            mark = f"[spoiler: {reason}]" if reason else "[spoiler]"
            if self._spoilers:
                # Shown (--spoilers): the marker, then the text, both tagged in their style's meta
                # so that a writer can still tell spoiler text from the rest.
                if not self._skip:
                    self._emit(mark, _DIM + Style(meta={SPOILER_MARK: reason}))
                    self._emit(" ", Style(meta={SPOILER: True}))
                frame.style = frame.style + Style(meta={SPOILER: True})
            else:
                if not self._skip:
                    self._emit(mark, _DIM)
                frame.skip = True
        color = attr.get("data-mx-color") or attr.get("color")
        if color and _HEX_COLOR.fullmatch(color):
            with contextlib.suppress(ColorParseError):
                frame.style = frame.style + Style(color=Color.parse(color))
        if tag in _BLOCKS:
            # A blank line between paragraphs; a plain newline at any other block boundary (a list
            # after a paragraph, a paragraph opening a quote): chat should stay compact.
            if tag == "p" and not self._block_start:
                self._need(2)
            else:
                self._pending = min(self._pending, 1)
                self._need(1)
            self._block_start = True
        if tag == "blockquote":
            frame.ctx = _Ctx("▎ ", style=_QUOTE_STYLE)
        elif tag in _LIST_TAGS:
            frame.ordered = tag == "ol"
            if frame.ordered:
                start = attr.get("start", "1").strip()
                frame.counter = int(start) if start.isdecimal() and len(start) < 7 else 1
        elif tag == "li":
            marker = "• "
            for parent in reversed(self._stack):
                if parent.tag in _LIST_TAGS:
                    if parent.ordered:
                        marker = f"{parent.counter}. "
                        parent.counter += 1
                    break
            frame.ctx = _Ctx(" " * len(marker), marker=marker)
        elif tag == "dd":
            frame.ctx = _Ctx("    ")
        elif tag == "pre":
            frame.pre = True
            frame.style = frame.style + _PRE_STYLE
        elif tag in ("td", "th"):
            for parent in reversed(self._stack):
                if parent.tag == "tr":
                    if parent.cells and not self._skip:
                        self._emit(" │ ", _DIM)
                    parent.cells += 1
                    break
        elif tag == "a":
            href = attr.get("href", "").strip()
            if href:
                link = safe_link(href)
                if link is not None:
                    frame.style = frame.style + Style(link=link) + _LINK_STYLE
                frame.link = ([], href)
        self._push(frame)

    def _void(self, tag: str, attr: dict[str, str]) -> None:
        if self._skip:
            return
        if tag == "br":
            if not self._empty:
                self._pending += 1
        elif tag == "hr":
            self._need(1)
            self._emit("──────────", _DIM)
            self._need(1)
        elif tag == "img":
            alt = one_line(attr.get("alt", ""), 100)
            if "data-mx-emoticon" in attr and alt:
                self._emit(alt)
            else:
                self._emit(f"[image: {alt}]" if alt else "[image]", _DIM)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "br":  # browsers treat </br> as <br>
            self._void("br", {})
        elif not self._close(tag) and tag == "p":
            self._need(1)

    def handle_data(self, data: str) -> None:
        if self._skip or not data:
            return
        if self._pre:
            for index, line in enumerate(clean(data, 0).split("\n")):
                if index and not self._empty:
                    self._pending += 1
                self._emit(line)
            return
        text = _SPACES.sub(" ", data)
        if self._bol or self._pending or self._space:
            text = text.lstrip(" ")
        self._emit(clean(text, 0))


def html_to_text(formatted_body: object, *, limit: int = 8000, spoilers: bool = False) -> Text:
    """Render Matrix HTML as styled Text; cut to `limit` characters with a marker.

    Spoilers (`<span data-mx-spoiler>`) show as `[spoiler: reason]` only, unless `spoilers`: then
    the marker is followed by the text, both carrying `SPOILER_MARK`/`SPOILER` in their style's
    meta.

    Never raises: malformed markup degrades to whatever text was recognised. An empty result means
    nothing was left to show (e.g. only a reply fallback); the caller should use the plain body.
    """
    source = formatted_body if isinstance(formatted_body, str) else clean(formatted_body, 0)
    converter = _Converter(spoilers)
    try:
        converter.feed(source[:_MAX_INPUT])
        converter.close()
    except Exception:  # HTMLParser is lenient, but the renderer must be total
        pass
    parts = converter.parts
    while parts and not parts[-1][0].strip():
        parts.pop()
    out = Text()
    for text, style in parts:
        out.append(text, style)
    out.rstrip()
    if 0 < limit < len(out):
        extra = len(out) - limit
        out.right_crop(extra)
        out.append(f"… [+{extra} chars]", _DIM)
    return out
