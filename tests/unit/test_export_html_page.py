"""`peek export --format html`: the page a reader keeps (structure, folding, sanitising, AA)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result

from peekcli.cli import cli
from peekcli.render.htmlsanitize import sanitize_formatted
from tests.unit.timelinehs import HS, OLD, TimelineHS

ALICE = "@alice:hs.test"
BOB = "@bob:hs.test"
DAY = 86_400_000


@pytest.fixture
def tl() -> Iterator[TimelineHS]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TimelineHS(rsps).install()


@pytest.fixture
def page(state_file: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "UTC")

    def run(*args: str) -> str:
        result: Result = CliRunner().invoke(
            cli,
            ["export", OLD, "--format", "html", *args, "-s", HS, "--state-file", str(state_file)],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.stderr
        return result.stdout

    return run


class Tree(HTMLParser):
    """Every element of a page: (tag, attributes), and the text inside each element with an id."""

    def __init__(self, doc: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.open: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.ids: list[str] = []
        self.feed(doc)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attr))
        if "id" in attr:
            self.ids.append(attr["id"])
            self.text.setdefault(attr["id"], [])
        if tag not in ("br", "img", "meta", "hr"):
            self.open.append(attr.get("id", ""))

    def handle_endtag(self, tag: str) -> None:
        if self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self.open:
            if element_id:
                self.text[element_id].append(data)

    def of(self, element_id: str) -> str:
        return " ".join("".join(self.text[element_id]).split())

    def tags(self, tag: str) -> list[dict[str, str]]:
        return [attr for t, attr in self.elements if t == tag]


def msg(tl: TimelineHS, body: str, *, sender: str = ALICE, **extra: Any) -> dict[str, Any]:
    event = tl.send(OLD, content={"msgtype": "m.text", "body": body, **extra})
    event["sender"] = sender
    return event


def test_one_article_per_event_with_author_time_anchor_and_permalink(
    tl: TimelineHS, page: Any
) -> None:
    tl.send(OLD, "m.room.name", content={"name": "Tea <room>"}, state_key="")
    tl.send(OLD, "m.room.topic", content={"topic": "Talk: https://tea.example/x"}, state_key="")
    tl.send(OLD, "m.room.canonical_alias", content={"alias": "#tea:hs.test"}, state_key="")
    member = tl.send(
        OLD,
        "m.room.member",
        content={"membership": "join", "displayname": "Alice"},
        state_key=ALICE,
    )
    first = msg(tl, "hello")
    second = msg(tl, "again")
    doc = page()
    tree = Tree(doc)
    articles = tree.tags("article")
    assert [a["id"] for a in articles if "msg" in a["class"]] == [
        first["event_id"],
        second["event_id"],
    ]
    assert member["event_id"] in tree.ids  # a state change is an element of its own too
    assert "Alice joined" in tree.of(member["event_id"])
    assert tree.of(first["event_id"]).startswith("Alice 22:") and "hello" in tree.of(
        first["event_id"]
    )
    when = datetime.fromtimestamp(first["origin_server_ts"] / 1000, UTC)
    assert when.isoformat(timespec="seconds") in [t["datetime"] for t in tree.tags("time")]
    hrefs = [a["href"] for a in tree.tags("a")]
    assert f"#{first['event_id']}" in hrefs
    assert f"https://matrix.to/#/{OLD}/{first['event_id']}?via=hs.test" in hrefs
    # The header: name, topic with its link, address as a matrix.to link, range and export time.
    assert "<title>Tea &lt;room&gt;</title>" in doc and "<h1>Tea &lt;room&gt;</h1>" in doc
    assert "https://tea.example/x" in hrefs and "https://matrix.to/#/%23tea:hs.test" in hrefs
    header = doc[doc.index('<header class="room">') : doc.index("<main>")]
    assert "Range</dt>" in header and "Exported</dt>" in header and "6 events" in header


def test_relations_fold_like_a_chat_client(tl: TimelineHS, page: Any) -> None:
    root = msg(tl, "original text")
    reply = msg(
        tl,
        "> <@alice:hs.test> original text\n\nmy answer",
        sender=BOB,
        **{"m.relates_to": {"m.in_reply_to": {"event_id": root["event_id"]}}},
    )
    for sender in (BOB, ALICE, BOB):  # bob twice: counted once
        tl.send(
            OLD,
            "m.reaction",
            content={
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": root["event_id"],
                    "key": "👍",
                }
            },
        )["sender"] = sender
    tl.send(
        OLD,
        content={
            "msgtype": "m.text",
            "body": "* fixed",
            "m.new_content": {"msgtype": "m.text", "body": "fixed text"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": root["event_id"]},
        },
    )
    in_thread = msg(
        tl,
        "in the thread",
        sender=BOB,
        **{"m.relates_to": {"rel_type": "m.thread", "event_id": root["event_id"]}},
    )
    doomed = msg(tl, "regrettable words")
    tl.send(OLD, "m.room.redaction", content={"redacts": doomed["event_id"]})["redacts"] = doomed[
        "event_id"
    ]
    doc = page()
    tree = Tree(doc)
    shown = tree.of(root["event_id"])
    assert "fixed text" in shown and "(edited)" in shown and "original text" not in shown
    assert "👍 2" in shown and "1 reply in thread" in shown
    assert doc.count("👍") == 1  # reactions are not events of their own on the page
    # The reply quotes its target (as edited by the time it is shown) and links to its anchor.
    quoted = tree.of(reply["event_id"])
    assert quoted.startswith(f"{BOB}") and "In reply to Alice" not in quoted
    assert "In reply to" in quoted and "my answer" in quoted and "> <@alice" not in quoted
    reply_links = re.findall(r'<a href="([^"]+)">In reply to</a>', doc)
    assert reply_links == [f"#{root['event_id']}"]
    assert f'<a href="#{root["event_id"]}">In a thread</a>' in doc
    assert "in the thread" in tree.of(in_thread["event_id"])
    # The redaction: one "message deleted", no trace of the words, no line for the redaction.
    assert tree.of(doomed["event_id"]).endswith("message deleted")
    assert doc.count("message deleted") == 1 and "regrettable" not in doc


def test_day_separators(tl: TimelineHS, page: Any) -> None:
    base = 1_700_000_000_000
    for day in range(3):
        for i in range(2):
            tl.send(OLD, body=f"day {day} #{i}", ts=base + day * DAY + i * 1000)
    tree = Tree(page())
    days = [
        t["datetime"] for t in tree.tags("time") if re.fullmatch(r"\d{4}-\d\d-\d\d", t["datetime"])
    ]
    assert days == ["2023-11-14", "2023-11-15", "2023-11-16"]
    assert len(tree.tags("h2")) == 3


def test_lone_surrogates_in_an_address_or_event_id_do_not_end_the_export(
    tl: TimelineHS, page: Any
) -> None:
    """JSON can carry a lone surrogate (`"\\ud800"`), which no UTF-8 link can hold: a room
    address or an event id with one ended the export with a traceback."""
    tl.send(OLD, "m.room.canonical_alias", content={"alias": "#a\ud800b:hs.test"}, state_key="")
    tl.send(OLD, body="still here")["event_id"] = "$odd\udfffid"
    tree = Tree(page())
    assert "still here" in " ".join(tree.of(i) for i in tree.ids)
    assert "https://matrix.to/#/%23a%3Fb:hs.test" in [a["href"] for a in tree.tags("a")]


PAGE_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "div",
    "header",
    "main",
    "footer",
    "h1",
    "h2",
    "p",
    "dl",
    "dt",
    "dd",
    "article",
    "span",
    "time",
    "a",
    "blockquote",
    "ul",
    "li",
    "figure",
    "figcaption",
    "img",
    "br",
}
BODY_TAGS = {
    "del",
    "s",
    "h3",
    "h4",
    "h5",
    "h6",
    "ol",
    "sup",
    "sub",
    "b",
    "i",
    "u",
    "strong",
    "em",
    "strike",
    "code",
    "hr",
    "table",
    "thead",
    "caption",
    "tbody",
    "tr",
    "th",
    "td",
    "pre",
    "details",
    "summary",
}
HOSTILE = [
    '<script>alert(1)</script><b onclick="x()">bold</b>',
    '<a href="javascript:alert(1)">js</a><a href=" JAVASCRIPT:alert(1)">js2</a>',
    '<a href="data:text/html,<script>alert(1)</script>">data</a>',
    '<img src="https://tracker.example/p.gif" alt="tracked"><img src=x onerror=alert(1)>',
    '<iframe src="https://evil.example"></iframe><object data="x"></object>',
    '<style>body{display:none}</style><div style="position:fixed">fixed</div>',
    '<font color="#ffffff" data-mx-bg-color="#ffffff">white on white</font>',
    "<svg><script>alert(1)</script></svg><math><mi>x</mi></math>",
    '<a href="https://ok.example" target="_blank" onmouseover="x()">ok</a>',
    "<b><i>unclosed <u>tags",
    '<form action="https://evil.example"><input name=x><button>go</button></form>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example"><base href="https://evil/">',
    "<p>see https://bare.example/path?q=1, and mailto:me@example.org.</p>",
    '<a href="matrix:r/room:example.org">m</a><a href="https://matrix.to/#/@bob:hs.test">Bob</a>',
    '<a href="ftp://old.example">ftp</a><a href="file:///etc/passwd">file</a>',
    '<code class="language-python" onclick="x">x = 1</code><pre>https://not.linked</pre>',
    '<span data-mx-spoiler="why">hidden</span>',
    "<" * 100 + "b>deep" + "<blockquote>" * 300,
]


@pytest.mark.parametrize("formatted", HOSTILE)
def test_formatted_bodies_keep_only_allowed_tags_and_safe_links(
    tl: TimelineHS, page: Any, formatted: str
) -> None:
    tl.send(
        OLD,
        content={
            "msgtype": "m.text",
            "body": "plain",
            "format": "org.matrix.custom.html",
            "formatted_body": formatted,
        },
    )
    doc = page()
    tree = Tree(doc)
    for tag, attr in tree.elements:
        assert tag in PAGE_TAGS | BODY_TAGS, tag
        assert not [name for name in attr if name.startswith("on") or name == "style"]
        if tag == "a":
            href = attr["href"]
            assert href.startswith(("#", "https://", "http://", "mailto:", "matrix:")), href
            if not href.startswith("#"):
                assert attr["rel"] == "nofollow noopener noreferrer"
        if tag == "img":
            pytest.fail(f"an image with no local copy was kept: {attr}")
    assert (
        tree.tags("script") == []
        and tree.tags("meta")[1]["http-equiv"] == "Content-Security-Policy"
    )
    assert len(tree.tags("meta")) == 4  # the page's own four: nothing from the event


def test_what_the_sanitiser_keeps() -> None:
    assert sanitize_formatted('<a href="javascript:alert(1)">js</a>') == "js"
    assert sanitize_formatted("<b><i>unclosed") == "<b><i>unclosed</i></b>"
    out = sanitize_formatted("<p>see https://bare.example/path?q=1, and mailto:me@example.org.</p>")
    assert out == (
        '<p>see <a href="https://bare.example/path?q=1" rel="nofollow noopener noreferrer">'
        'https://bare.example/path?q=1</a>, and <a href="mailto:me@example.org" '
        'rel="nofollow noopener noreferrer">mailto:me@example.org</a>.</p>'
    )
    assert sanitize_formatted("<pre>https://x.example</pre>") == "<pre>https://x.example</pre>"
    assert sanitize_formatted('<img src="https://t.example/p" alt="tracked">') == "[image: tracked]"
    local = sanitize_formatted(
        '<img src="mxc://hs.test/abc" alt="cat" width="30" onload="x">',
        lambda url: "media/hs.test/abc" if url == "mxc://hs.test/abc" else None,
    )
    assert local == '<img src="media/hs.test/abc" alt="cat" width="30">'
    assert sanitize_formatted("a\u202eb") == "a\\u202eb"  # bidi overrides made visible


def test_plain_bodies_are_escaped_and_linkified(tl: TimelineHS, page: Any) -> None:
    event = tl.send(OLD, body='<script>alert("x")</script> https://example.org/a_(b) end.\nline 2')
    doc = page()
    assert "<script>" not in doc.split("</style>", 1)[1]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in doc
    assert (
        '<a href="https://example.org/a_(b)" rel="nofollow noopener noreferrer">'
        "https://example.org/a_(b)</a> end.<br>line 2" in doc
    )
    assert event["event_id"] in Tree(doc).ids


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_every_text_colour_meets_wcag_aa_in_light_and_dark(tl: TimelineHS, page: Any) -> None:
    tl.send(OLD, body="x")
    style = page().split("<style>", 1)[1].split("</style>", 1)[0]
    light_block = re.search(r":root \{ color-scheme: light dark; ([^}]*)\}", style)
    dark_block = re.search(r"prefers-color-scheme: dark\) \{ :root \{ ([^}]*)\}", style)
    assert light_block and dark_block
    texts = set(re.findall(r"(?<![-\w])color: var\(--([\w-]+)\)", style)) | {"link"}
    backgrounds = set(re.findall(r"background(?:-color)?: var\(--([\w-]+)\)", style))
    assert {"fg", "muted", "link"} <= texts and {"bg", "quote-bg"} <= backgrounds
    for block in (light_block.group(1), dark_block.group(1)):
        colours = dict(re.findall(r"--([\w-]+): (#[0-9a-f]{6});", block))
        for fg in texts:
            for bg in backgrounds:
                ratio = _contrast(colours[fg], colours[bg])
                assert ratio >= 4.5, (fg, bg, ratio)
    assert "@media print" in style and "overflow-wrap: anywhere" in style
