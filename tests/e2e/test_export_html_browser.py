"""The exported HTML page in a real browser: Debian's chromium driven by Playwright.

The page is exported by the installed `peek` from the Synapse fixture (with `--media`), then
opened from disk the way a reader would open a kept archive. Skipped, with the reason, where no
chromium or no Playwright is installed (`.ci/run` installs chromium when it can); nothing else in
the suite depends on these tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.peekproc import run_peek
from tests.e2e.test_export_media_e2e import PNG, upload
from tests.homeserver import Homeserver, User

CHROMIUM = os.environ.get("PEEK_TEST_CHROMIUM") or shutil.which("chromium") or ""
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
if not CHROMIUM:
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

LONG_URL = "https://example.org/" + "a" * 300


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as exc:  # a broken install: say so, as a skip
            pytest.skip(f"chromium at {CHROMIUM} does not start under Playwright: {exc}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def exported(
    synapse: Homeserver, alice: User, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A room with what a page must show, exported to `room.html` beside its `media/`."""
    hs = synapse
    room = hs.create_room(
        alice, world_readable=True, name="Browser <check>", topic="See https://matrix.org"
    )
    hs.send_state(
        alice, room, "m.room.member", {"membership": "join", "displayname": "Alice"}, alice.user_id
    )
    image = upload(hs, alice, PNG, "image/png", "dot.png")
    first = hs.send_event(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"first, with a link https://matrix.org and {LONG_URL}",
            "format": "org.matrix.custom.html",
            "formatted_body": 'first, <b>bold</b> <a href="https://matrix.org">a link</a> '
            f"{LONG_URL}<pre><code>{'x' * 400}</code></pre>",
        },
    )
    for i in range(60):  # enough to scroll: a permalink must jump
        hs.send_text(alice, room, f"filler {i}")
    picture = hs.send_event(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "dot.png",
            "url": image,
            "info": {"mimetype": "image/png", "size": len(PNG), "w": 1, "h": 1},
        },
    )
    reply = hs.send_event(
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "> <@alice:localhost> first\n\nthe reply",
            "m.relates_to": {"m.in_reply_to": {"event_id": first}},
        },
    )
    hs.send_event(
        alice,
        room,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
    )
    work = tmp_path_factory.mktemp("browser")
    page = work / "room.html"
    result = run_peek(
        "export",
        room,
        "--homeserver",
        hs.base_url,
        "--format",
        "html",
        "-o",
        str(page),
        "--media",
        str(work / "media"),
        state_file=work / "state.json",
    )
    assert result.returncode == 0, result.stderr
    return {"page": page, "first": first, "picture": picture, "reply": reply, "work": work}


def _open(browser: Any, url: str, **context: Any) -> tuple[Any, Any, list[str]]:
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.goto(url)
    page.wait_for_load_state("load")
    return ctx, page, problems


def test_links_are_anchors_images_load_and_nothing_is_refused(
    browser: Any, exported: dict[str, Any]
) -> None:
    ctx, page, problems = _open(browser, exported["page"].as_uri())
    try:
        links = page.eval_on_selector_all("a", "els => els.map(a => [a.tagName, a.href, a.rel])")
        hrefs = [href for _, href, _ in links]
        assert "https://matrix.org/" in hrefs and LONG_URL in hrefs
        assert all(
            rel == "nofollow noopener noreferrer"
            for _, href, rel in links
            if href.startswith("http")
        )
        images = page.eval_on_selector_all(
            "main img", "els => els.map(i => [i.complete, i.naturalWidth, i.currentSrc])"
        )
        assert images, "the picture is on the page"
        media = (exported["work"] / "media").as_uri()
        for complete, width, src in images:
            assert complete and width > 0, src
            assert src.startswith(media), src
        # The reply's quote links to its target: clicking it goes there.
        page.click(f'article[id="{exported["reply"]}"] blockquote a')
        assert page.evaluate("decodeURIComponent(location.hash)") == f"#{exported['first']}"
        assert page.evaluate("document.querySelector(':target').id") == exported["first"]
        assert problems == [], problems  # no CSP violation, no console error
    finally:
        ctx.close()


def test_a_permalink_opens_the_page_at_its_event(browser: Any, exported: dict[str, Any]) -> None:
    url = f"{exported['page'].as_uri()}#{exported['picture']}"
    ctx, page, problems = _open(browser, url, viewport={"width": 800, "height": 600})
    try:
        top = page.evaluate(
            "id => document.getElementById(id).getBoundingClientRect().top", exported["picture"]
        )
        assert 0 <= top < 600 and page.evaluate("window.scrollY") > 0
        assert problems == []
    finally:
        ctx.close()


def test_dark_mode_and_a_400px_screen(browser: Any, exported: dict[str, Any]) -> None:
    url = exported["page"].as_uri()
    colours = {}
    for scheme in ("light", "dark"):
        ctx, page, problems = _open(
            browser, url, color_scheme=scheme, viewport={"width": 400, "height": 800}
        )
        try:
            colours[scheme] = page.evaluate(
                "[getComputedStyle(document.body).backgroundColor,"
                " getComputedStyle(document.body).color]"
            )
            overflow = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            assert overflow[0] <= overflow[1] == 400, overflow  # nothing scrolls sideways
            page.screenshot(path=str(exported["work"] / f"page-{scheme}-400.png"), full_page=False)
            assert problems == []
        finally:
            ctx.close()
    assert colours["light"] == ["rgb(255, 255, 255)", "rgb(27, 27, 31)"]
    assert colours["dark"] == ["rgb(21, 23, 28)", "rgb(227, 227, 230)"]
