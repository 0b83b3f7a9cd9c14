"""Matrix `formatted_body` → HTML safe to put in a page, the way Element sanitises it.

Element (matrix-react-sdk's `sanitizeHtmlParams`) keeps a short list of tags and, per tag, a few
attributes; everything else is dropped, its text kept (the content of `mx-reply`, `script`,
`style` and the like is dropped too). Links keep only `http`, `https`, `mailto` and `matrix:`
targets (matrix.to is https) and get `rel="nofollow noopener noreferrer"`; images only `mxc://`
sources, which a page can show only as a local copy (`media` maps them; unknown ones become their
alt text). Differences from Element, on purpose: no inline colours (`data-mx-color`, `color`,
`style`) since a sender's colour cannot be kept readable in both light and dark schemes; spoilers
are a focusable span that CSS reveals (no script). Bare URLs in text become links.

Text goes through `sanitize.clean` first (bidi overrides and invisible characters made visible,
as everywhere else in peek), then `html.escape`. The output is always well-nested: every tag this
module opens it closes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

from peekcli.render.sanitize import clean

__all__ = ["LINK_REL", "linkify", "safe_href", "sanitize_formatted"]

LINK_REL = "nofollow noopener noreferrer"
_SCHEMES = ("http://", "https://", "mailto:", "matrix:")
_MAX_INPUT = 65536
_MAX_DEPTH = 50

#: Element's allowed tags (sanitizeHtmlParams.allowedTags); `font` becomes a plain `span`.
_ALLOWED = frozenset(
    {"del", "s", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup"}
    | {"sub", "li", "b", "i", "u", "strong", "em", "strike", "code", "hr", "br", "div", "table"}
    | {"thead", "caption", "tbody", "tr", "th", "td", "pre", "span", "img", "details", "summary"}
    | {"font"}
)
_VOID = frozenset({"br", "hr", "img"})
#: Dropped with everything inside them.
_SKIP = frozenset(
    {"mx-reply", "script", "style", "template", "head", "title", "svg", "math", "iframe"}
    | {"object", "noscript", "textarea", "select", "button"}
)
#: Inside these, bare URLs stay text (a link in a link is invalid; code is shown as written).
_NO_LINKIFY = frozenset({"a", "code", "pre"})
_URL = re.compile(r"(?:https?://|mailto:|matrix:)[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]}*_~"
_URL_CHARS = re.compile(r"[\x21-\x7e]{1,4096}")
_LANGUAGE = re.compile(r"language-[A-Za-z0-9_+-]{1,40}")
_DIGITS = re.compile(r"[0-9]{1,5}")

#: mxc:// URI → the URL of its local copy (relative to the page), or None when there is none.
MediaMap = Callable[[str], str | None]


def safe_href(url: str) -> str | None:
    """`url` if a page may link to it (allowed scheme, printable ASCII, no spaces), else None."""
    url = url.strip()
    if not _URL_CHARS.fullmatch(url):
        return None
    lowered = url.lower()
    if not lowered.startswith(_SCHEMES) or lowered in _SCHEMES:
        return None
    return url


def _text(text: str) -> str:
    return html.escape(clean(text, 0), quote=True)


def _link(url: str, shown: str | None = None) -> str:
    return (
        f'<a href="{html.escape(url, quote=True)}" rel="{LINK_REL}">'
        f"{_text(url if shown is None else shown)}</a>"
    )


def _split_url(candidate: str) -> tuple[str, str]:
    """Trailing punctuation belongs to the sentence, unless it closes a bracket in the URL."""
    url = candidate
    while url and url[-1] in _TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url, candidate[len(url) :]


def linkify(text: str) -> str:
    """Escape plain text, turning bare http(s)/mailto/matrix URLs into links."""
    if ":" not in text:  # no scheme, no link: the common case, kept fast
        return _text(text)
    out: list[str] = []
    at = 0
    for match in _URL.finditer(text):
        url, rest = _split_url(match.group())
        href = safe_href(url)
        if href is None or href.lower() in _SCHEMES:
            continue
        out.append(_text(text[at : match.start()]))
        out.append(_link(href))
        out.append(_text(rest))
        at = match.end()
    out.append(_text(text[at:]))
    return "".join(out)


class _Sanitizer(HTMLParser):
    def __init__(self, media: MediaMap) -> None:
        super().__init__(convert_charrefs=True)
        self.media = media
        self.out: list[str] = []
        #: Open elements: (source tag, tag written or None when dropped).
        self.stack: list[tuple[str, str | None]] = []
        self.skip = 0
        self.no_link = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: (value or "") for name, value in attrs}
        if tag in _VOID:
            self._void(tag, attr)
            return
        if len(self.stack) >= _MAX_DEPTH:
            return
        if tag in _SKIP:
            self.skip += 1
            self.stack.append((tag, None))
            return
        written = self._open(tag, attr) if not self.skip else None
        self.stack.append((tag, written))
        if tag in _NO_LINKIFY:
            self.no_link += 1

    def _open(self, tag: str, attr: dict[str, str]) -> str | None:
        if tag not in _ALLOWED:
            return None
        if tag == "a":
            href = safe_href(attr.get("href", ""))
            if href is None:
                return None
            self.out.append(f'<a href="{html.escape(href, quote=True)}" rel="{LINK_REL}">')
            return "a"
        if tag in ("span", "font"):
            if "data-mx-spoiler" in attr:
                reason = clean(attr["data-mx-spoiler"], 100).replace("\n", " ")
                title = f"Spoiler: {reason}" if reason else "Spoiler"
                self.out.append(
                    f'<span class="spoiler" tabindex="0" title="{html.escape(title, quote=True)}">'
                )
            else:
                self.out.append("<span>")
            return "span"
        if tag == "ol":
            start = attr.get("start", "").strip()
            if _DIGITS.fullmatch(start):
                self.out.append(f'<ol start="{int(start)}">')
                return "ol"
        if tag == "code":
            language = attr.get("class", "").strip()
            if _LANGUAGE.fullmatch(language):
                self.out.append(f'<code class="{language}">')
                return "code"
        self.out.append(f"<{tag}>")
        return tag

    def _void(self, tag: str, attr: dict[str, str]) -> None:
        if self.skip:
            return
        if tag in ("br", "hr"):
            self.out.append(f"<{tag}>")
            return
        alt = clean(attr.get("alt", "") or attr.get("title", ""), 200).replace("\n", " ")
        src = attr.get("src", "").strip()
        local = self.media(src) if src.startswith("mxc://") else None
        if local is None:  # never a remote image: a page that phones home is not an archive
            if alt:
                self.out.append(_text(alt if "data-mx-emoticon" in attr else f"[image: {alt}]"))
            return
        size = ""
        for name in ("width", "height"):
            value = attr.get(name, "").strip()
            if _DIGITS.fullmatch(value):
                size += f' {name}="{min(int(value), 4000)}"'
        cls = ' class="emoticon"' if "data-mx-emoticon" in attr else ""
        self.out.append(
            f'<img src="{html.escape(local, quote=True)}" alt="{html.escape(alt, quote=True)}"'
            f"{size}{cls}>"
        )

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "br":
            self._void("br", {})
            return
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                while len(self.stack) > index:
                    self._close()
                return

    def _close(self) -> None:
        tag, written = self.stack.pop()
        if tag in _SKIP:
            self.skip -= 1
        if tag in _NO_LINKIFY:
            self.no_link -= 1
        if written is not None:
            self.out.append(f"</{written}>")

    def handle_data(self, data: str) -> None:
        if self.skip or not data:
            return
        self.out.append(_text(data) if self.no_link else linkify(data))

    def result(self) -> str:
        while self.stack:
            self._close()
        return "".join(self.out)


def sanitize_formatted(formatted_body: str, media: MediaMap = lambda _url: None) -> str:
    """Matrix HTML as safe HTML (allowed tags and attributes only, links made safe)."""
    sanitizer = _Sanitizer(media)
    try:
        sanitizer.feed(formatted_body[:_MAX_INPUT])
        sanitizer.close()
    except Exception:  # HTMLParser is lenient; whatever was read so far is still safe
        pass
    return sanitizer.result()
