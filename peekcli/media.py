"""Media offline: every file a room's events point at, downloaded once into `DIR/server/media_id`.

An archive that links to `mxc://` URIs is not complete offline: the files live on the homeserver
and, since authenticated media (spec v1.11), need a token to fetch. `--media DIR` saves them:

- What: each event's `url` (image, video, audio, file, sticker), its `info.thumbnail_url`, the
  images inside `formatted_body`, the room's avatar. Encrypted attachments (`file`, a key peek
  does not have) are named in the report, never fetched.
- How: `GET /_matrix/client/v1/media/download/{server}/{id}` with the watcher's own token (a
  guest's too), the legacy unauthenticated `/_matrix/media/v3/download` only when the server has
  no v1 (`M_UNRECOGNIZED`/404/405), all through the transport's `Http.download`, which
  follows redirects by hand: the token goes only to the homeserver's own origin, never to
  another host.
- Where: `DIR/<server>/<media_id>`, both validated (no path can leave DIR), written through a
  `.part` file renamed into place with the umask's mode, so a second run skips what it has and an
  interrupted download never looks complete.
- Several at once (bounded), each with the one retry policy (backoff, Retry-After on 429, a
  rejected guest renewed once), and a size cap checked against the declared size, the
  Content-Length and the bytes actually read.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from peekcli.errors import NetworkError, PeekError, UnrecognizedError

Kind = Literal["image", "video", "audio", "file", "sticker", "thumbnail", "inline", "avatar"]

#: Downloads running at once: a browser's connections per host. A server's media endpoint is
#: mostly its own CPU; six in flight keep it busy while one waits on its database or disk
#: (measured against Synapse: 6 and 8 about 5 % faster than 4, 2 far slower), few enough to
#: be polite.
WORKERS = 6
#: Seconds a download waits for its reply, and for each chunk of its body after that.
READ_TIMEOUT = 60.0
V1 = "/_matrix/client/v1/media/download"
LEGACY = "/_matrix/media/v3/download"

_SERVER = re.compile(
    r"(?=[^/]*[A-Za-z0-9])[A-Za-z0-9.-]{1,255}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?"
)
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_INLINE_IMG = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']?(mxc://[^"'\s>]+)""", re.IGNORECASE)
_MSGTYPES: dict[str, Kind] = {
    "m.image": "image",
    "m.video": "video",
    "m.audio": "audio",
    "m.file": "file",
}


def parse_mxc(url: object) -> tuple[str, str] | None:
    """`mxc://server/media_id` → (server, media_id), or None when either part is unsafe as a
    path segment (the server's word: `..`, slashes and the like must never reach the disk)."""
    if not isinstance(url, str) or not url.startswith("mxc://"):
        return None
    server, sep, media_id = url[6:].partition("/")
    if not sep or not _SERVER.fullmatch(server) or not _MEDIA_ID.fullmatch(media_id):
        return None
    if server.strip(".") == "" or server.startswith("."):
        return None
    return server, media_id


@dataclass(frozen=True)
class MediaItem:
    """One file an event points at."""

    url: str
    kind: Kind
    name: str = ""
    declared_size: int | None = None
    encrypted: bool = False

    @property
    def parts(self) -> tuple[str, str] | None:
        return parse_mxc(self.url)


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _size(info: Mapping[str, Any]) -> int | None:
    size = info.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def media_in(event: object) -> list[MediaItem]:
    """The media an event points at (nothing for anything that is not an object)."""
    if not isinstance(event, Mapping):
        return []
    etype = event.get("type")
    content = _map(event.get("content"))
    if etype == "m.room.avatar":
        url = content.get("url")
        return [MediaItem(url, "avatar", "room avatar")] if isinstance(url, str) else []
    if etype not in ("m.room.message", "m.sticker"):
        return []
    items: list[MediaItem] = []
    for body in (content, _map(content.get("m.new_content"))):
        if not body:
            continue
        kind: Kind | None = (
            "sticker" if etype == "m.sticker" else _MSGTYPES.get(str(body.get("msgtype")))
        )
        info = _map(body.get("info"))
        name = body.get("filename") or body.get("body")
        name = name if isinstance(name, str) else ""
        if kind is not None:
            url = body.get("url")
            encrypted_file = _map(body.get("file"))
            if isinstance(url, str):
                items.append(MediaItem(url, kind, name, _size(info)))
            elif isinstance(encrypted_file.get("url"), str):
                items.append(MediaItem(encrypted_file["url"], kind, name, _size(info), True))
            thumb = info.get("thumbnail_url")
            thumb_file = _map(info.get("thumbnail_file"))
            thumb_info = _map(info.get("thumbnail_info"))
            if isinstance(thumb, str):
                items.append(MediaItem(thumb, "thumbnail", name, _size(thumb_info)))
            elif isinstance(thumb_file.get("url"), str):
                items.append(
                    MediaItem(thumb_file["url"], "thumbnail", name, _size(thumb_info), True)
                )
        formatted = body.get("formatted_body")
        if isinstance(formatted, str) and "mxc://" in formatted:
            for match in _INLINE_IMG.finditer(formatted[:65536]):
                items.append(MediaItem(match.group(1), "inline", "inline image"))
    return items


@dataclass
class MediaStore:
    """`DIR/<server>/<media_id>`: where a file is, whether it is there, how a page links to it."""

    root: Path

    def path(self, url: str) -> Path | None:
        parts = parse_mxc(url)
        return self.root / parts[0] / parts[1] if parts else None

    def has(self, url: str, declared_size: int | None = None) -> bool:
        """Whether the file is saved. An empty file counts only where the event says the file is
        empty: files are renamed into place without an fsync (hundreds of them per export), and
        what a power cut leaves under the final name is typically an empty file, fetched again."""
        path = self.path(url)
        if path is None:
            return False
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            return False
        return size is not None and (size > 0 or declared_size == 0)

    def linker(self, page_dir: Path) -> Callable[[str], str | None]:
        """mxc URI → URL of its local copy relative to a page in `page_dir` (None: not saved)."""
        base = os.path.relpath(self.root.resolve(), page_dir.resolve())
        prefix = "" if base == "." else quote(Path(base).as_posix(), safe="/") + "/"

        def link(url: str) -> str | None:
            parts = parse_mxc(url)
            if parts is None or not (self.root / parts[0] / parts[1]).is_file():
                return None
            return f"{prefix}{quote(parts[0], safe='')}/{quote(parts[1], safe='')}"

        return link


@dataclass
class MediaReport:
    """What a run did with the media it met."""

    downloaded: int = 0
    bytes: int = 0
    present: int = 0
    encrypted: list[str] = field(default_factory=list)
    too_big: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)


class TooBig(Exception):
    """The file is over the size cap (declared, announced or read)."""


@dataclass
class Response:
    """The part of an HTTP reply a download needs, independent of the HTTP library."""

    status: int
    headers: Mapping[str, str]
    chunks: Iterable[bytes]
    close: Callable[[], None]
    error: Callable[[], None]  # raises the PeekError matching a non-2xx reply


#: GETs a URL, with the watcher's token or without (`authenticated`), redirects followed.
Fetch = Callable[[str, bool], Response]


class MediaDownloader:
    """Downloads media items into a `MediaStore`, several at once, each once."""

    def __init__(
        self,
        store: MediaStore,
        *,
        base_url: str,
        fetch: Fetch,
        retry: Callable[[Callable[[], int]], int],
        max_bytes: int | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.fetch = fetch
        self.retry = retry
        self.max_bytes = max_bytes
        self.report = MediaReport()
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._legacy = False
        self._slots = threading.BoundedSemaphore(workers * 4)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="peek-media")
        self._futures: list[Future[None]] = []
        self._stop = threading.Event()

    def add(self, items: Iterable[MediaItem]) -> None:
        """Queue what is not on disk yet; blocks while too many downloads are waiting."""
        for item in items:
            if item.url in self._seen:
                continue
            self._seen.add(item.url)
            if item.parts is None:
                self.report.unusable.append(item.url[:300])
                continue
            if item.encrypted:
                self.report.encrypted.append(item.name or item.url)
                continue
            if self.store.has(item.url, item.declared_size):
                self.report.present += 1
                continue
            if self.max_bytes is not None and (item.declared_size or 0) > self.max_bytes:
                self.report.too_big.append(item.url)
                continue
            self._slots.acquire()
            self._futures.append(self._pool.submit(self._run, item))

    def wait(self) -> MediaReport:
        """Wait for every download queued so far (the pool stays open for more)."""
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()
        return self.report

    def close(self) -> MediaReport:
        """Wait for every download; the report says what happened to each."""
        try:
            return self.wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop (Ctrl-C): queued downloads are dropped, running ones stop at their next chunk."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one file ----------------------------------------------------------------------------------

    def _run(self, item: MediaItem) -> None:
        try:
            size = self.retry(lambda: self._download(item))
        except TooBig:
            with self._lock:
                self.report.too_big.append(item.url)
        except PeekError as exc:
            with self._lock:
                self.report.failed.append((item.url, exc.message))
        except Exception as exc:  # a worker must report, never die silently
            with self._lock:
                self.report.failed.append((item.url, f"{type(exc).__name__}: {exc}"))
        else:
            with self._lock:
                self.report.downloaded += 1
                self.report.bytes += size
        finally:
            self._slots.release()

    def _download(self, item: MediaItem) -> int:
        parts = item.parts
        assert parts is not None
        server, media_id = parts
        tail = f"/{quote(server, safe='')}/{quote(media_id, safe='')}"
        if not self._legacy:
            try:
                return self._get(item, self.base_url + V1 + tail, authenticated=True)
            except UnrecognizedError:
                self._legacy = True  # this server predates authenticated media
        return self._get(item, self.base_url + LEGACY + tail, authenticated=False)

    def _get(self, item: MediaItem, url: str, *, authenticated: bool) -> int:
        target = self.store.path(item.url)
        assert target is not None
        response = self.fetch(url, authenticated)
        try:
            if not 200 <= response.status < 300:
                response.error()
                raise NetworkError(f"{self.base_url} answered HTTP {response.status}")
            return self._save(item, target, response)
        finally:
            response.close()

    def _save(self, item: MediaItem, target: Path, response: Response) -> int:
        cap = self.max_bytes
        announced = response.headers.get("Content-Length", "")
        if cap is not None and announced.isdigit() and int(announced) > cap:
            raise TooBig(item.url)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f".{target.name}.part")
        written = 0
        try:
            with open(part, "wb") as fh:  # the umask's mode: public history, like the export
                for chunk in response.chunks:
                    if self._stop.is_set():
                        raise NetworkError("download stopped")
                    written += len(chunk)
                    if cap is not None and written > cap:
                        raise TooBig(item.url)
                    fh.write(chunk)
            os.replace(part, target)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
        return written


def parse_size(text: str) -> int:
    """`--media-max-size`: `500k`, `20M`, `1G` (powers of 1024) or plain bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not match:
        raise ValueError(f"cannot read {text!r} as a size: give bytes or 500k, 20M, 1G")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)
