"""`watch/snapshot --media DIR`: a live archive saves each batch's media before its position.

Wraps the run's sink: every delivered event's media are queued for download as it is written,
and `flush` (the end of a batch) waits until they are on disk. The follower saves the batch's
position only after `flush`, so a run that is killed hands the same batch (and its media) to the
next run; what is already on disk is skipped then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peekcli.media import MediaDownloader, media_in
from peekcli.sinks import Sink


class MediaSink:
    """A sink that also downloads what the events it passes on point at."""

    def __init__(self, inner: Sink, media: MediaDownloader, warn: Callable[[str], None]) -> None:
        self.inner = inner
        self.media = media
        self.warn = warn
        self._told = (0, 0, 0)

    def write(self, event: dict[str, Any]) -> None:
        self.media.add(media_in(event))
        self.inner.write(event)

    def flush(self) -> None:
        self.inner.flush()
        report = self.media.wait()
        failed, encrypted, too_big = self._told
        for url, why in report.failed[failed:]:
            self.warn(f"media: could not save {url}: {why}")
        for name in report.encrypted[encrypted:]:
            self.warn(f"media: encrypted attachment not fetched ({name})")
        for url in report.too_big[too_big:]:
            self.warn(f"media: {url} is over --media-max-size, not saved")
        self._told = (len(report.failed), len(report.encrypted), len(report.too_big))

    def reader_gone(self) -> bool:
        return self.inner.reader_gone()
