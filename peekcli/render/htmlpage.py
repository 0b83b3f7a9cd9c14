"""`peek export --format html`: a room's history as one page people can read and keep.

Semantic HTML, one `<article>` per shown event (author, `<time datetime>`, body, anchor, matrix.to
permalink), built on the relation folding of `render.timeline` (latest edit + "(edited)",
reactions grouped, a redaction as one "message deleted", thread roots with their reply counts), so
the page shows what a chat client shows. Bodies come from `formatted_body` sanitised like Element
(`render.htmlsanitize`), else the plain body with bare URLs linkified. State changes read as the
terminal says them (`PrettyRenderer`), as one-line notices.

The page is one self-contained file: a `<style>` element and no script (its Content-Security-Policy
forbids any), images only from the local media folder (`media`: mxc URI → relative URL of its copy,
or None). Colours are chosen for WCAG AA contrast in the light and the dark scheme
(`prefers-color-scheme`), the layout wraps at 400 px without sideways scrolling, and print styles
drop the chrome. Events are streamed: memory holds the folding window, not the history. Pure:
each call returns the page's next piece of text, which `peekcli.sinks.export_html` writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from peekcli import __version__
from peekcli.render.families.messages import strip_reply_fallback
from peekcli.render.htmlsanitize import LINK_REL, linkify, sanitize_formatted
from peekcli.render.pretty import PrettyRenderer
from peekcli.render.sanitize import clean, one_line
from peekcli.render.timeline import Entry, Timeline

__all__ = ["CSP", "STYLE", "HtmlPage", "PageInfo", "anchor"]

#: Nothing but the page's own style and the media folder's files; no script, no remote load.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' file:; media-src 'self' file:"
#: How many later events can still fold into an event (edits, reactions, redactions).
WINDOW = 2000
_QUOTES = 10_000
_SNIPPET = 120
_MXC = re.compile(r"mxc://([A-Za-z0-9.:\[\]-]{1,255})/([A-Za-z0-9_-]{1,255})")
_ANCHOR_SAFE = re.compile(r"[$!][A-Za-z0-9._~+/=:@-]{1,255}")
#: Event ids that need no percent-encoding in a matrix.to link (most of them).
_PLAIN_ID = re.compile(r"\$[A-Za-z0-9._~:-]{1,255}")

MediaMap = Callable[[str], str | None]

#: Light and dark colours: each text colour has ≥ 4.5:1 contrast on every background it is shown
#: on in its scheme (checked by tests/unit/test_export_html_page.py).
COLOURS: dict[str, dict[str, str]] = {
    "light": {
        "bg": "#ffffff",
        "fg": "#1b1b1f",
        "muted": "#5c5f66",
        "link": "#0b57d0",
        "accent": "#7a3e00",
        "quote-bg": "#f1f3f4",
        "code-bg": "#f1f3f4",
        "line": "#c4c7c5",
    },
    "dark": {
        "bg": "#15171c",
        "fg": "#e3e3e6",
        "muted": "#a6a9b0",
        "link": "#8ab4f8",
        "accent": "#f2b36f",
        "quote-bg": "#23262d",
        "code-bg": "#23262d",
        "line": "#444850",
    },
}
#: (text, background) pairs that appear on the page.
CONTRAST_PAIRS = [
    (fg, bg) for fg in ("fg", "muted", "link", "accent") for bg in ("bg", "quote-bg", "code-bg")
]


def _vars(scheme: str) -> str:
    return " ".join(f"--{name}: {value};" for name, value in COLOURS[scheme].items())


STYLE = f"""
:root {{ color-scheme: light dark; {_vars("light")} }}
@media (prefers-color-scheme: dark) {{ :root {{ {_vars("dark")} }} }}
* {{ box-sizing: border-box; }}
html {{ -webkit-text-size-adjust: 100%; }}
body {{ margin: 0; background: var(--bg); color: var(--fg);
  font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  overflow-wrap: anywhere; }}
a {{ color: var(--link); }}
.page {{ max-width: 52rem; margin: 0 auto; padding: 1rem; }}
.room {{ display: flex; gap: 1rem; align-items: flex-start; padding-bottom: 1rem;
  border-bottom: 1px solid var(--line); }}
.room img.avatar {{ width: 4rem; height: 4rem; border-radius: 50%; object-fit: cover;
  flex: none; }}
.room h1 {{ margin: 0; font-size: 1.5rem; }}
.room .topic {{ margin: .25rem 0; }}
.room dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0 .75rem; margin: .5rem 0 0;
  font-size: .875rem; color: var(--muted); }}
.room dt {{ font-weight: 600; }}
.room dd {{ margin: 0; min-width: 0; }}
h2.day {{ font-size: .875rem; font-weight: 600; color: var(--muted); text-align: center;
  margin: 1.5rem 0 .5rem; border-bottom: 1px solid var(--line); line-height: 0.1em; }}
h2.day time {{ background: var(--bg); padding: 0 .5rem; }}
h2.upgrade {{ font-size: 1rem; margin: 1.5rem 0 .5rem; }}
article {{ padding: .375rem 0; scroll-margin-top: 1rem; }}
article:target {{ outline: 2px solid var(--link); outline-offset: 2px; }}
article > header {{ display: flex; flex-wrap: wrap; gap: 0 .5rem; align-items: baseline; }}
.who {{ font-weight: 600; }}
.meta, .meta a {{ color: var(--muted); font-size: .8125rem; }}
.body {{ margin: .125rem 0 0; }}
.body p, .body ul, .body ol, .body pre, .body blockquote, .body table {{ margin: .25rem 0; }}
.body img {{ max-width: 100%; height: auto; }}
.body img.emoticon {{ height: 1.5em; width: auto; vertical-align: middle; }}
.emote .body {{ font-style: italic; }}
.notice {{ color: var(--muted); font-size: .875rem; padding: .125rem 0; }}
.notice p {{ margin: 0; }}
.notice time {{ margin-right: .5rem; }}
blockquote {{ margin: .25rem 0; padding: .25rem .75rem; border-left: 3px solid var(--line);
  background: var(--quote-bg); }}
blockquote.reply {{ font-size: .875rem; }}
blockquote.reply p {{ margin: 0; }}
pre, code {{ font-family: ui-monospace, Menlo, "DejaVu Sans Mono", Consolas, monospace;
  font-size: .875em; background: var(--code-bg); }}
pre {{ padding: .5rem; white-space: pre-wrap; }}
table {{ display: block; max-width: 100%; overflow-x: auto; border-collapse: collapse; }}
td, th {{ border: 1px solid var(--line); padding: .125rem .375rem; }}
.edited, .deleted, .thread, .file .details {{ color: var(--muted); font-size: .875rem; }}
.deleted {{ font-style: italic; }}
.edited, .deleted, .thread, .file {{ margin: .125rem 0; }}
.reactions {{ list-style: none; display: flex; flex-wrap: wrap; gap: .25rem; margin: .25rem 0;
  padding: 0; }}
.reactions li {{ border: 1px solid var(--line); border-radius: 1rem; padding: 0 .5rem;
  font-size: .875rem; }}
figure {{ margin: .25rem 0; }}
figure img {{ max-width: min(100%, 32rem); max-height: 32rem; height: auto; width: auto;
  display: block; }}
figcaption {{ color: var(--muted); font-size: .875rem; }}
.file {{ margin: .25rem 0; }}
.spoiler {{ background-color: currentColor; border-radius: .25rem; }}
.spoiler:hover, .spoiler:focus {{ background: transparent; }}
footer.about {{ margin-top: 2rem; padding-top: .5rem; border-top: 1px solid var(--line);
  color: var(--muted); font-size: .8125rem; }}
@media print {{
  :root {{ {_vars("light")} }}
  body {{ font-size: 10pt; }}
  .page {{ max-width: none; padding: 0; }}
  .perm {{ display: none; }}
  .spoiler {{ background: none; }}
  article {{ break-inside: avoid; }}
  article:target {{ outline: none; }}
  .body a[href^="http"]::after {{ content: " <" attr(href) ">"; font-size: .8em; }}
}}
"""


def anchor(event_id: str) -> str:
    """The page's `id` for an event: the event id itself where it is safe in an id and in a
    fragment, else a stable digest (the same for the event and every reply that links to it)."""
    if _ANCHOR_SAFE.fullmatch(event_id):
        return event_id
    return "e-" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _a(value: str) -> str:
    return html.escape(value, quote=True)


def _t(value: object, limit: int = 0) -> str:
    return html.escape(clean(value, limit), quote=True)


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) < 1e18 else None


def _human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _server_of(user_id: str) -> str | None:
    server = user_id.partition(":")[2]
    return server if server and re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,255}", server) else None


def _snippet(text: str) -> str:
    collapsed = " ".join(text[: _SNIPPET * 4].split())
    return collapsed if len(collapsed) <= _SNIPPET else collapsed[:_SNIPPET].rstrip() + "…"


@dataclass
class PageInfo:
    """What the header says beyond the room's state: the range asked and the one found."""

    homeserver: str = ""
    since_ms: int | None = None
    until_ms: int | None = None
    oldest_ms: int | None = None
    newest_ms: int | None = None
    count: int | None = None
    exported_at: dt.datetime | None = None


@dataclass
class _Quote:
    sender: str
    snippet: str


class HtmlPage:
    """A room's events (oldest first) as one HTML page: `begin`, `write` and `finish` each return
    the page's next piece, in order."""

    def __init__(
        self,
        *,
        media: MediaMap | None = None,
        tz: dt.tzinfo | None = None,
        window: int = WINDOW,
    ) -> None:
        self.media: MediaMap = media or (lambda _url: None)
        self.tz = tz
        self.timeline = Timeline(window=window)
        self.notices = PrettyRenderer(seconds=False, tz=tz)
        self.names: dict[str, str] = {}
        self._who_cache: dict[str, str] = {}
        self._room_q = ""
        self.quotes: OrderedDict[str, _Quote] = OrderedDict()
        self.room_id = ""
        self.day: dt.date | None = None
        self.room: str | None = None

    # -- the page --------------------------------------------------------------------------------

    def begin(self, room_id: str, state: Iterable[Mapping[str, Any]], info: PageInfo) -> str:
        self.room_id = room_id
        facts: dict[str, Mapping[str, Any]] = {}
        for event in state:
            if not isinstance(event, Mapping):
                continue
            self._learn(event)
            if event.get("state_key") == "" and isinstance(event.get("type"), str):
                facts[event["type"]] = _map(event.get("content"))
        self.notices.learn_state(e for e in state if isinstance(e, Mapping))
        name = _str(facts.get("m.room.name", {}).get("name"))
        alias = _str(facts.get("m.room.canonical_alias", {}).get("alias"))
        topic = _str(facts.get("m.room.topic", {}).get("topic"))
        avatar = _str(facts.get("m.room.avatar", {}).get("url"))
        title = one_line((name or "").strip() or alias or room_id, 200)
        head = [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f'<meta name="generator" content="peek {_a(__version__)}">\n',
            f"<title>{_a(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
            '<div class="page">\n<header class="room">\n',
        ]
        local_avatar = self.media(avatar) if avatar else None
        if local_avatar:
            head.append(f'<img class="avatar" src="{_a(local_avatar)}" alt="">\n')
        head.append(f"<div>\n<h1>{_a(title)}</h1>\n")
        if topic and topic.strip():
            head.append(f'<p class="topic">{linkify(topic[:2000])}</p>\n')
        head.append("<dl>\n")
        if alias:
            link = f"https://matrix.to/#/{quote(alias, safe='@:!$', errors='replace')}"
            head.append(
                f'<dt>Address</dt><dd><a href="{_a(link)}" rel="{LINK_REL}">{_t(alias, 255)}</a>'
                "</dd>\n"
            )
        head.append(f"<dt>Room</dt><dd>{_t(room_id, 255)}</dd>\n")
        head.append(f"<dt>Range</dt><dd>{self._range(info)}</dd>\n")
        exported = (info.exported_at or dt.datetime.now(dt.UTC)).astimezone(self.tz)
        via = f" from {_t(info.homeserver, 300)}" if info.homeserver else ""
        head.append(
            f"<dt>Exported</dt><dd>{self._stamp(exported, full=True)}{via} by peek</dd>\n"
            "</dl>\n</div>\n</header>\n<main>\n"
        )
        return "".join(head)

    def _range(self, info: PageInfo) -> str:
        def when(ms: int | None, fallback: str) -> str:
            stamp = self._dt(ms) if ms is not None else None
            return self._stamp(stamp, full=True) if stamp else fallback

        asked = (
            f"{when(info.since_ms, 'the start of the room')} to "
            f"{when(info.until_ms, 'the time of export')}"
        )
        if not info.count:
            return f"{asked}: no events"
        found = f"{when(info.oldest_ms, '?')} to {when(info.newest_ms, '?')}"
        events = f"{info.count} event{'' if info.count == 1 else 's'}"
        return f"{asked}: {events}, {found}"

    def write(self, event: Any) -> str:
        parts: list[str] = []
        room = event.get("room_id") if isinstance(event, Mapping) else None
        if isinstance(room, str) and room != self.room:
            # --follow-predecessors: entries of the old room first, then mark the switch
            if self.room is not None:
                parts.extend(self._entry(e) for e in self.timeline.finish())
                parts.append(
                    f'<h2 class="upgrade">── continued in {_t(room, 255)} (room upgrade) ──</h2>\n'
                )
            self.room = room
        if isinstance(event, Mapping):
            self._learn(event)
        parts.extend(self._entry(e) for e in self.timeline.add(event))
        return "".join(parts)

    def finish(self) -> str:
        tail = "".join(self._entry(e) for e in self.timeline.finish())
        tail += (
            '</main>\n<footer class="about">Exported by peek. Times are '
            f"{_t(self._zone())}. Links marked with the event's time lead to that event on this "
            "page; “permalink” opens it in a Matrix client.</footer>\n</div>\n</body>\n</html>\n"
        )
        return tail

    # -- what is remembered ------------------------------------------------------------------------

    def _learn(self, event: Mapping[str, Any]) -> None:
        if event.get("type") != "m.room.member":
            return
        user = _str(event.get("state_key"))
        content = _map(event.get("content"))
        if user is None:
            return
        name = _str(content.get("displayname"))
        if name and name.strip() and content.get("membership") in ("join", "invite"):
            self.names[user] = one_line(name.strip(), 100)
        elif content.get("membership") == "join":
            self.names.pop(user, None)
        self._who_cache.pop(user, None)

    def _name(self, user_id: str) -> str:
        return self.names.get(user_id) or one_line(user_id, 255)

    def _who(self, user_id: str) -> str:
        """The author's element (display name, user id as its title), made once per sender."""
        shown = self._who_cache.get(user_id)
        if shown is None:
            if len(self._who_cache) > 5000:
                self._who_cache.clear()
            shown = self._who_cache[user_id] = (
                f'<span class="who" title="{_t(user_id, 255)}">{_a(self._name(user_id))}</span>'
            )
        return shown

    def _remember(self, event_id: str | None, sender: str, text: str) -> None:
        if not event_id:
            return
        self.quotes[event_id] = _Quote(sender, text[: _SNIPPET * 4])  # cut to a snippet if quoted
        if len(self.quotes) > _QUOTES:
            self.quotes.popitem(last=False)

    # -- times -------------------------------------------------------------------------------------

    def _dt(self, ms: object) -> dt.datetime | None:
        value = _num(ms)
        if value is None:
            return None
        try:
            return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC).astimezone(self.tz)
        except (OverflowError, OSError, ValueError):
            return None

    def _stamp(self, when: dt.datetime, *, full: bool = False) -> str:
        local = when if when.tzinfo is not None and self.tz is None else when.astimezone(self.tz)
        shown = f"{local.hour:02d}:{local.minute:02d}"
        if full:
            shown = f"{local.year:04d}-{local.month:02d}-{local.day:02d} {shown}"
        return f'<time datetime="{local.isoformat(timespec="seconds")}">{shown}</time>'

    def _zone(self) -> str:
        now = dt.datetime.now(dt.UTC).astimezone(self.tz)
        return f"{now.tzname() or ''} (UTC{now:%z})".strip()

    # -- one event ---------------------------------------------------------------------------------

    def _entry(self, entry: Entry) -> str:
        try:
            return self._render(entry)
        except Exception as exc:  # one strange event must not lose the page
            return f'<p class="notice">could not show an event ({_a(type(exc).__name__)})</p>\n'

    def _render(self, entry: Entry) -> str:
        event = entry.event
        when = self._dt(event.get("origin_server_ts"))
        out: list[str] = []
        if when is not None and when.date() != self.day:
            self.day = when.date()
            out.append(
                f'<h2 class="day"><time datetime="{when.date().isoformat()}">'
                f"{when:%A} {when.day} {when:%B %Y}</time></h2>\n"
            )
        event_id = _str(event.get("event_id"))
        etype = _str(event.get("type")) or ""
        sender = _str(event.get("sender")) or ""
        is_message = etype in ("m.room.message", "m.sticker", "m.room.encrypted")
        relation = entry.relation
        if relation is not None and relation.kind in ("edit", "reaction", "redaction"):
            out.append(self._orphan(entry, when))
        elif entry.deleted is not None and "state_key" not in event:
            out.append(self._article(entry, when, '<p class="deleted">message deleted</p>'))
        elif is_message:
            out.append(self._article(entry, when, self._message(entry)))
        else:
            out.append(self._notice(entry, when))
        if is_message and entry.deleted is None:
            self._remember(event_id, sender, self._quote_text(entry.content, etype))
        return "".join(out)

    def _ids(self, entry: Entry) -> tuple[str, str | None]:
        """The element's id attribute and the event's matrix.to permalink."""
        event_id = entry.event_id
        if not event_id:
            return "", None
        attr = f' id="{_a(anchor(event_id))}"'
        room = self.room or self.room_id
        if not self._room_q.startswith(f"{room}\n"):
            self._room_q = (
                f"{room}\nhttps://matrix.to/#/{quote(room, safe='!:', errors='replace')}/"
            )
        link = self._room_q.partition("\n")[2]
        link += (
            event_id
            if _PLAIN_ID.fullmatch(event_id)
            else quote(event_id, safe="$:", errors="replace")
        )
        server = _server_of(_str(entry.event.get("sender")) or "")
        if server:
            link += f"?via={quote(server, safe=':')}"
        return attr, link

    def _article(self, entry: Entry, when: dt.datetime | None, body: str) -> str:
        event = entry.event
        sender = _str(event.get("sender")) or ""
        attr, permalink = self._ids(entry)
        classes = "msg"
        content = entry.content
        if content.get("msgtype") == "m.emote":
            classes += " emote"
        out = [f'<article class="{classes}"{attr}>\n<header>', self._who(sender)]
        meta: list[str] = []
        if when is not None:
            stamp = self._stamp(when)
            event_id = entry.event_id
            meta.append(f'<a href="#{_a(anchor(event_id))}">{stamp}</a>' if event_id else stamp)
        if permalink:
            meta.append(f'<a class="perm" href="{_a(permalink)}" rel="{LINK_REL}">permalink</a>')
        if meta:
            out.append(f' <span class="meta">{" · ".join(meta)}</span>')
        out.append("</header>\n")
        out.append(self._context(entry))
        out.append(body)
        if entry.edited:
            out.append('<p class="edited">(edited)</p>\n')
        out.append(self._reactions(entry))
        out.append(self._thread(entry))
        out.append("</article>\n")
        return "".join(out)

    def _context(self, entry: Entry) -> str:
        """A reply quotes its target and links to it; a thread reply links to its root."""
        relation = entry.relation
        if relation is None or entry.deleted is not None:
            return ""
        target = relation.target
        href = f"#{_a(anchor(target))}"
        if relation.kind == "reply":
            seen = self.quotes.get(target)
            if seen is None:
                return (
                    f'<blockquote class="reply"><p><a href="{href}">In reply to an earlier '
                    "message</a></p></blockquote>\n"
                )
            return (
                f'<blockquote class="reply"><p><a href="{href}">In reply to</a> '
                f'<span class="who">{_a(self._name(seen.sender))}</span></p>'
                f"<p>{_t(_snippet(seen.snippet))}</p></blockquote>\n"
            )
        if relation.kind == "thread":
            return f'<p class="thread"><a href="{href}">In a thread</a></p>\n'
        return ""

    def _reactions(self, entry: Entry) -> str:
        reactions = entry.reaction_list() if entry.deleted is None else []
        if not reactions:
            return ""
        items = []
        for reaction in reactions:
            who = ", ".join(self._name(s) for s in reaction.senders[:20])
            if len(reaction.senders) > 20:
                who += f" and {len(reaction.senders) - 20} more"
            items.append(
                f'<li title="{_a(who)}">{_t(reaction.key, 64)} <span>{reaction.count}</span></li>'
            )
        return f'<ul class="reactions" aria-label="Reactions">{"".join(items)}</ul>\n'

    def _thread(self, entry: Entry) -> str:
        thread = entry.thread
        if thread is None or thread.count <= 0 or entry.deleted is not None:
            return ""
        replies = f"{thread.count} repl{'y' if thread.count == 1 else 'ies'} in thread"
        return f'<p class="thread">{replies}</p>\n'

    # -- bodies --------------------------------------------------------------------------------

    def _message(self, entry: Entry) -> str:
        event = entry.event
        etype = event.get("type")
        content = entry.content
        if etype == "m.room.encrypted":
            return '<p class="body deleted">encrypted message (not readable by peek)</p>\n'
        if etype == "m.sticker":
            return self._media_body(content, "sticker")
        msgtype = content.get("msgtype")
        if msgtype in ("m.image", "m.video", "m.audio", "m.file"):
            return self._media_body(content, str(msgtype)[2:])
        if msgtype == "m.location":
            geo = _str(content.get("geo_uri")) or ""
            body = _t(content.get("body"), 2000)
            return (
                f'<p class="body">📍 {body} {linkify(geo) if geo.startswith("geo:") else ""}</p>\n'
            )
        return f'<div class="body">{self._text_body(content)}</div>\n'

    def _text_body(self, content: Mapping[str, Any]) -> str:
        formatted = content.get("formatted_body")
        if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
            safe = sanitize_formatted(formatted, self.media)
            if safe.strip():
                return safe
        body = content.get("body")
        if not isinstance(body, str):
            return '<p class="deleted">(no text)</p>'
        rel = _map(content.get("m.relates_to"))
        if "m.in_reply_to" in rel:
            body = strip_reply_fallback(body)
        lines = body[:65536].split("\n")
        return "<p>" + "<br>".join(map(linkify, lines)) + "</p>"

    def _media_body(self, content: Mapping[str, Any], kind: str) -> str:
        info = _map(content.get("info"))
        body = _str(content.get("body"))
        filename = _str(content.get("filename"))
        name = one_line(filename or body or kind, 200)
        details: list[str] = []
        mimetype = _str(info.get("mimetype"))
        if mimetype:
            details.append(one_line(mimetype, 100))
        size = _num(info.get("size"))
        if size is not None and size >= 0:
            details.append(_human_size(size))
        width, height = _num(info.get("w")), _num(info.get("h"))
        if width is not None and height is not None:
            details.append(f"{width:.0f}×{height:.0f}")
        about = f' <span class="details">({_a(", ".join(details))})</span>' if details else ""
        caption = ""
        if filename and body and body != filename:  # MSC2530: the body is a caption
            caption = f'<div class="body">{self._text_body({"body": body})}</div>\n'
        encrypted = _map(content.get("file"))
        url = _str(content.get("url"))
        if url is None and _str(encrypted.get("url")):
            return (
                f'<p class="file">🔒 encrypted {kind} “{_a(name)}”{about}: not downloaded '
                "(peek cannot decrypt it)</p>\n" + caption
            )
        local = self.media(url) if url else None
        thumb_url = _str(info.get("thumbnail_url"))
        thumb = self.media(thumb_url) if thumb_url else None
        if kind in ("image", "sticker") and (local or thumb):
            shown = _a(local or thumb or "")
            size_attr = ""
            if width is not None and height is not None and 0 < width < 1e5 and 0 < height < 1e5:
                size_attr = f' width="{width:.0f}" height="{height:.0f}"'
            img = f'<img src="{shown}" alt="{_a(name)}"{size_attr}>'
            if local:
                img = f'<a href="{_a(local)}">{img}</a>'
            return f"<figure>{img}<figcaption>{_a(name)}{about}</figcaption></figure>\n" + caption
        link = f'<a href="{_a(local)}" download="{_a(name)}">{_a(name)}</a>' if local else _a(name)
        poster = ""
        if kind == "video" and thumb:
            img = f'<img src="{_a(thumb)}" alt="video: {_a(name)}">'
            if local:
                img = f'<a href="{_a(local)}">{img}</a>'
            poster = f"<figure>{img}</figure>"
        missing = "" if local else " (not saved: export with --media DIR to keep it)"
        label = {"image": "🖼", "video": "🎞", "audio": "🔊", "file": "📄", "sticker": "🖼"}[kind]
        return f'{poster}<p class="file">{label} {kind}: {link}{about}{missing}</p>\n' + caption

    def _quote_text(self, content: Mapping[str, Any], etype: str) -> str:
        if etype == "m.room.encrypted":
            return "encrypted message"
        body = content.get("body")
        if not isinstance(body, str):
            return ""
        if "m.in_reply_to" in _map(content.get("m.relates_to")):
            body = strip_reply_fallback(body)
        msgtype = content.get("msgtype")
        if etype == "m.sticker" or msgtype in ("m.image", "m.video", "m.audio", "m.file"):
            kind = "sticker" if etype == "m.sticker" else str(msgtype)[2:]
            return f"[{kind}] {body}"
        return body

    # -- everything else -----------------------------------------------------------------------

    def _notice(self, entry: Entry, when: dt.datetime | None) -> str:
        """A state change or other event: the terminal's one-line description, as a notice."""
        lines = self.notices.render(entry.event)
        text = ""
        if lines:
            last = lines[-1]
            text = getattr(last, "body", last).plain
        attr, _ = self._ids(entry)
        stamp = self._stamp(when) if when is not None else ""
        return f'<article class="notice"{attr}><p>{stamp}{_t(text)}</p></article>\n'

    def _orphan(self, entry: Entry, when: dt.datetime | None) -> str:
        """An edit, reaction or redaction whose target is not on the page (or long before)."""
        relation = entry.relation
        assert relation is not None
        event = entry.event
        sender = self._name(_str(event.get("sender")) or "")
        target = f'<a href="#{_a(anchor(relation.target))}">a message</a>'
        if relation.kind == "edit":
            new = _map(_map(event.get("content")).get("m.new_content"))
            text = _str(new.get("body")) or ""
            what = f"edited {target}: {_t(_snippet(text))}"
        elif relation.kind == "reaction":
            what = f"reacted {_t(relation.key or '', 64)} to {target}"
        else:
            what = f"deleted {target}"
        attr, _ = self._ids(entry)
        stamp = self._stamp(when) if when is not None else ""
        return f'<article class="notice"{attr}><p>{stamp}{_a(sender)} {what}</p></article>\n'
