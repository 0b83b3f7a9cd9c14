"""`peek export --media DIR`: every file the events point at, saved once, linked from the page."""

from __future__ import annotations

import contextlib
import json
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result

from peekcli import media as media_module
from peekcli import retry
from peekcli.cli import cli
from peekcli.matrix import http
from tests.unit import hostilehs
from tests.unit.timelinehs import HS, OLD, TimelineHS

V1 = re.compile(re.escape(HS) + r"/_matrix/client/v1/media/download/([^/]+)/([^/?]+)$")
LEGACY = re.compile(re.escape(HS) + r"/_matrix/media/v3/download/([^/]+)/([^/?]+)$")


class Media:
    """The homeserver's media repository: files by media id, and what each request carried."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.files: dict[str, bytes] = {}
        self.asked: list[tuple[str, str | None]] = []  # (url, Authorization)
        #: Replies to send first, by media id: downloads run side by side, so a shared queue
        #: would hand a reply to whichever download asked first.
        self.scripted: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.v1 = True
        self.on_request: Any = None
        rsps.add_callback(responses.GET, V1, callback=self._v1)
        rsps.add_callback(responses.GET, LEGACY, callback=self._legacy)

    def _serve(self, request: Any, pattern: re.Pattern[str]) -> tuple[int, dict[str, str], bytes]:
        self.asked.append((request.url, request.headers.get("Authorization")))
        if self.on_request is not None:
            self.on_request()
        match = pattern.match(request.url)
        assert match is not None
        if self.scripted.get(match.group(2)):
            return self.scripted[match.group(2)].pop(0)
        data = self.files.get(match.group(2))
        if data is None:
            return 404, {}, b'{"errcode": "M_NOT_FOUND", "error": "no such media"}'
        return 200, {"Content-Type": "application/octet-stream"}, data

    def _v1(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        if not self.v1:
            self.asked.append((request.url, request.headers.get("Authorization")))
            return 404, {}, b'{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}'
        return self._serve(request, V1)

    def _legacy(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        return self._serve(request, LEGACY)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def tl(rsps: responses.RequestsMock) -> TimelineHS:
    return TimelineHS(rsps).install()


@pytest.fixture
def media(rsps: responses.RequestsMock) -> Media:
    return Media(rsps)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(retry, "pause", waits.append)
    return waits


@pytest.fixture
def export(state_file: Path, tmp_path: Path) -> Any:
    def run(*args: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["export", OLD, *args, "-s", HS, "--state-file", str(state_file)],
            catch_exceptions=False,
        )

    return run


def image(tl: TimelineHS, media_id: str, *, size: int = 4, thumb: str | None = None) -> None:
    info: dict[str, Any] = {"mimetype": "image/png", "size": size, "w": 2, "h": 2}
    if thumb:
        info["thumbnail_url"] = f"mxc://hs.test/{thumb}"
    tl.send(
        OLD,
        content={
            "msgtype": "m.image",
            "body": f"{media_id}.png",
            "url": f"mxc://hs.test/{media_id}",
            "info": info,
        },
    )


def test_images_files_and_thumbnails_are_saved_once_and_linked_from_the_page(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    media.files = {"img1": b"\x89PNG-1", "thumb1": b"\x89PNG-t", "doc1": b"%PDF", "stk": b"GIF8"}
    image(tl, "img1", thumb="thumb1")
    tl.send(
        OLD,
        content={
            "msgtype": "m.file",
            "body": "report.pdf",
            "url": "mxc://hs.test/doc1",
            "info": {"mimetype": "application/pdf", "size": 4},
        },
    )
    tl.send(OLD, "m.sticker", content={"body": "wave", "url": "mxc://hs.test/stk", "info": {}})
    page = tmp_path / "site" / "room.html"
    page.parent.mkdir()
    result = export("--format", "html", "-o", str(page), "--media", str(tmp_path / "site/media"))
    assert result.exit_code == 0, result.stderr
    saved = tmp_path / "site/media/hs.test"
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == media.files
    assert stat.S_IMODE((saved / "img1").stat().st_mode) & 0o044 == 0o044  # umask, not 0600
    assert "4 downloaded" in result.stderr
    # The token of this watcher (a guest), in the header only, over the authenticated API.
    assert {auth for _, auth in media.asked} == {"Bearer guest-1"}
    assert all("/_matrix/client/v1/media/download/hs.test/" in url for url, _ in media.asked)
    assert all("access_token" not in url for url, _ in media.asked)
    doc = page.read_text()
    assert '<img src="media/hs.test/img1" alt="img1.png"' in doc
    assert '<a href="media/hs.test/doc1" download="report.pdf">report.pdf</a>' in doc
    assert '<img src="media/hs.test/stk"' in doc
    # A second run asks for nothing it has.
    before = len(media.asked)
    again = export("--format", "html", "-o", str(page), "--media", str(tmp_path / "site/media"))
    assert again.exit_code == 0 and len(media.asked) == before
    assert "0 downloaded" in again.stderr and "4 already there" in again.stderr


def test_an_empty_file_left_by_a_power_cut_is_fetched_again(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    """Files are renamed into place without an fsync: after a power cut the name can stand for an
    empty file, which a later run must not count as saved (unless the event says it is empty)."""
    media.files = {"img1": b"\x89PNG-1", "empty": b""}
    image(tl, "img1")
    image(tl, "empty", size=0)
    saved = tmp_path / "media/hs.test"
    saved.mkdir(parents=True)
    (saved / "img1").write_bytes(b"")
    (saved / "empty").write_bytes(b"")
    result = export(
        "--format", "jsonl", "-o", str(tmp_path / "out.jsonl"), "--media", str(tmp_path / "media")
    )
    assert result.exit_code == 0, result.stderr
    assert (saved / "img1").read_bytes() == b"\x89PNG-1"
    assert "1 downloaded" in result.stderr and "1 already there" in result.stderr
    assert [url for url, _ in media.asked] == [
        f"{HS}/_matrix/client/v1/media/download/hs.test/img1"
    ]


def test_json_lines_stay_the_servers_events_and_text_names_the_copies(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    media.files = {"img1": b"png"}
    image(tl, "img1")
    plain = export().stdout
    with_media = export("--media", str(tmp_path / "m"))
    assert (
        with_media.stdout == plain and json.loads(plain)["content"]["url"] == "mxc://hs.test/img1"
    )
    text = export("--format", "text", "--media", str(tmp_path / "m"), "-o", str(tmp_path / "t.txt"))
    assert text.exit_code == 0
    assert "saved file: m/hs.test/img1" in (tmp_path / "t.txt").read_text()


def test_encrypted_attachments_are_named_not_fetched(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    tl.send(
        OLD,
        content={
            "msgtype": "m.file",
            "body": "secret.zip",
            "file": {
                "url": "mxc://hs.test/enc1",
                "key": {"k": "x"},
                "iv": "y",
                "hashes": {},
                "v": "v2",
            },
        },
    )
    result = export("--format", "html", "--media", str(tmp_path / "m"))
    assert result.exit_code == 0
    assert media.asked == []
    assert "1 encrypted attachment(s) not fetched (secret.zip)" in result.stderr
    assert "encrypted file “secret.zip”" in result.stdout and "not downloaded" in result.stdout


def test_the_size_cap_skips_by_declared_announced_and_read_size(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    image(tl, "declared", size=10_000)  # declared too big: never asked for
    image(tl, "honest", size=10)
    image(tl, "liar", size=10)  # declared small, sends more
    media.files = {"declared": b"x" * 10_000, "honest": b"y" * 10, "liar": b"z" * 5000}
    result = export("--media", str(tmp_path / "m"), "--media-max-size", "1k")
    assert result.exit_code == 0, result.stderr
    assert sorted(url.rsplit("/", 1)[1] for url, _ in media.asked) == ["honest", "liar"]
    assert sorted(p.name for p in (tmp_path / "m/hs.test").iterdir()) == ["honest"]
    assert "2 file(s) over --media-max-size skipped" in result.stderr
    bad = export("--media", str(tmp_path / "m"), "--media-max-size", "lots")
    assert bad.exit_code == 2 and "--media-max-size" in bad.stderr


def test_rate_limits_and_server_errors_are_retried_like_the_stream(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path, no_waiting: list[float]
) -> None:
    image(tl, "img1")
    media.files = {"img1": b"png"}
    media.scripted["img1"] = [
        (429, {"Retry-After": "7"}, b'{"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 7000}'),
        (502, {}, b"bad gateway"),
    ]
    result = export("--media", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    assert len(media.asked) == 3 and no_waiting[0] == 7
    assert (tmp_path / "m/hs.test/img1").read_bytes() == b"png"
    # Still failing after --max-retries: reported, the export itself is complete.
    image(tl, "img2")
    media.scripted["img2"] = [(502, {}, b"")] * 3
    failed = export("--media", str(tmp_path / "m"), "--max-retries", "2")
    assert failed.exit_code == 0
    assert "1 download(s) failed: mxc://hs.test/img2" in failed.stderr
    assert not list((tmp_path / "m/hs.test").glob(".*"))  # no .part left


def test_the_token_never_follows_a_redirect_to_another_host(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    image(tl, "img1")
    image(tl, "img2")
    cdn_seen: list[str | None] = []

    def cdn(request: Any) -> tuple[int, dict[str, str], bytes]:
        cdn_seen.append(request.headers.get("Authorization"))
        return 200, {}, b"from the cdn"

    rsps.add_callback(responses.GET, "https://cdn.example/img1", callback=cdn)
    media.files = {"img2": b"local"}
    media.scripted["img1"] = [(302, {"Location": "https://cdn.example/img1"}, b"")]
    result = export("--media", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    assert cdn_seen == [None]
    assert (tmp_path / "m/hs.test/img1").read_bytes() == b"from the cdn"


def test_a_server_without_authenticated_media_is_asked_the_legacy_way(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    image(tl, "img1")
    image(tl, "img2")
    media.files = {"img1": b"1", "img2": b"2"}
    media.v1 = False
    result = export("--media", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    legacy = [(url, auth) for url, auth in media.asked if "/_matrix/media/v3/" in url]
    assert len(legacy) == 2 and all(auth is None for _, auth in legacy)
    assert sorted(p.name for p in (tmp_path / "m/hs.test").iterdir()) == ["img1", "img2"]


@pytest.mark.parametrize(
    "url", ["mxc://../etc", "mxc://hs.test/../../x", "mxc://hs.test/a/b", "mxc://./x", "http://x/y"]
)
def test_hostile_mxc_uris_never_reach_the_disk_or_the_network(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path, url: str
) -> None:
    tl.send(OLD, content={"msgtype": "m.image", "body": "x", "url": url})
    result = export("--media", str(tmp_path / "m"))
    assert result.exit_code == 0
    assert media.asked == []
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").rglob("*")) == []


def test_downloads_run_several_at_once_and_bounded(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    for i in range(12):
        image(tl, f"img{i}")
        media.files[f"img{i}"] = b"x"
    running = 0
    most = 0
    lock = threading.Lock()
    two_at_once = threading.Barrier(2, timeout=10)

    def hold() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        with contextlib.suppress(threading.BrokenBarrierError):
            two_at_once.wait()  # breaks (and fails the test) if downloads ran one by one
        with lock:
            running -= 1

    media.on_request = hold
    result = export("--media", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    assert not two_at_once.broken
    assert 2 <= most <= 6  # six at once, as the README says
    assert len(list((tmp_path / "m/hs.test").iterdir())) == 12


def test_downloads_start_while_the_walk_is_still_paging(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    image(tl, "img1")
    image(tl, "img2")
    media.files = {"img1": b"1", "img2": b"2"}
    tl.page_cap = 1  # one event a page: img2's page, then img1's, then the room's start
    newest_asked = threading.Event()
    media.on_request = newest_asked.set
    asked_before_second_page: list[bool] = []

    def second_page_waits_for_a_download(served: int) -> None:
        if served == 2:
            asked_before_second_page.append(newest_asked.wait(timeout=10))

    tl.on_messages = second_page_waits_for_a_download
    result = export("--media", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    assert asked_before_second_page == [True]
    assert sorted(p.name for p in (tmp_path / "m/hs.test").iterdir()) == ["img1", "img2"]
    assert "2 downloaded" in result.stderr


def test_a_resumed_export_saves_the_media_of_pages_walked_before(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    image(tl, "img1")
    image(tl, "img2")
    media.files = {"img1": b"1"}  # img2 (the first page walked) cannot be saved the first time
    tl.page_cap = 1
    tl.fail_messages_after = 1
    out = tmp_path / "room.jsonl"
    first = export("-o", str(out), "--media", str(tmp_path / "m"), "--max-retries", "0")
    assert first.exit_code == 1 and "--resume" in first.stderr
    media.files["img2"] = b"2"
    tl.fail_messages_after = None
    resumed = export("-o", str(out), "--resume", "--media", str(tmp_path / "m"))
    assert resumed.exit_code == 0, resumed.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "m/hs.test").iterdir()} == {
        "img1": b"1",
        "img2": b"2",
    }


def test_video_posters_show_inline_and_files_are_download_links(
    tl: TimelineHS, media: Media, export: Any, tmp_path: Path
) -> None:
    media.files = {"vid": b"mp4", "poster": b"png", "song": b"ogg"}
    tl.send(
        OLD,
        content={
            "msgtype": "m.video",
            "body": "clip.mp4",
            "url": "mxc://hs.test/vid",
            "info": {"mimetype": "video/mp4", "size": 3, "thumbnail_url": "mxc://hs.test/poster"},
        },
    )
    tl.send(
        OLD,
        content={
            "msgtype": "m.audio",
            "body": "song.ogg",
            "url": "mxc://hs.test/song",
            "info": {"mimetype": "audio/ogg", "size": 3},
        },
    )
    page = tmp_path / "p.html"
    result = export("--format", "html", "-o", str(page), "--media", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    doc = page.read_text()
    assert '<a href="m/hs.test/vid"><img src="m/hs.test/poster" alt="video: clip.mp4"></a>' in doc
    assert '<a href="m/hs.test/vid" download="clip.mp4">clip.mp4</a>' in doc
    assert "(video/mp4, 3 B)" in doc
    assert '<a href="m/hs.test/song" download="song.ogg">song.ogg</a>' in doc


# -- bounded downloads, against a real server on loopback ------------------------------------------

MEDIA_PATH = r"/_matrix/client/v1/media/download/hs\.test/[A-Za-z0-9]+"


def _file_event(media_id: str) -> dict[str, Any]:
    event = hostilehs.message(1)
    event["content"] = {"msgtype": "m.file", "body": "f.bin", "url": f"mxc://hs.test/{media_id}"}
    return event


def _chunks(n: int, size: int, every: float) -> hostilehs.Behaviour:
    """`n` pieces of `size` bytes, one every `every` seconds: slow, but coming."""

    def run(h: hostilehs.Handler, params: dict[str, str]) -> None:
        h.head(200, {"Content-Type": "application/octet-stream", "Content-Length": str(n * size)})
        for _ in range(n):
            time.sleep(every)  # the server's pace is what is tested
            h.wfile.write(b"x" * size)
            h.wfile.flush()

    return run


@pytest.fixture
def one_second_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each 256 KiB of a download must come within 1 s (instead of 60 s + 10 s)."""
    monkeypatch.setattr(media_module, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(http, "REPLY_MARGIN", 0.5)


def test_a_trickled_download_is_cut_off_and_reported_not_waited_for(
    hostile: hostilehs.HostileServer, peek: Any, tmp_path: Path, one_second_chunks: None
) -> None:
    hostile.history = [_file_event("slow1")]
    hostile.on("GET", MEDIA_PATH, hostilehs.trickle(b"x", per_second=50))
    started = time.monotonic()
    result = peek(
        "export", hostile.room, "-s", hostile.url, "--media", str(tmp_path / "m"),
        "--max-retries", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 8
    assert (
        f"1 download(s) failed: mxc://hs.test/slow1: {hostile.url} sent the download too slowly "
        "(under 256 KiB in 1 s)" in result.stderr
    )
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").rglob("*")) == [
        tmp_path / "m/hs.test"
    ]  # neither the file nor a .part


def test_a_large_file_that_keeps_coming_is_not_cut_off(
    hostile: hostilehs.HostileServer, peek: Any, tmp_path: Path, one_second_chunks: None
) -> None:
    hostile.history = [_file_event("big1")]
    hostile.on("GET", MEDIA_PATH, _chunks(8, 256 * 1024, 0.25))  # 2 s in all, 256 KiB each 0.25 s
    result = peek(
        "export", hostile.room, "-s", hostile.url, "--media", str(tmp_path / "m"),
        "--max-retries", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "1 downloaded (2.0 MiB)" in result.stderr
    assert (tmp_path / "m/hs.test/big1").read_bytes() == b"x" * (8 * 256 * 1024)
