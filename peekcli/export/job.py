"""One export end to end: the walk into the spill (resumable with `-o FILE`), the media, then
the spill read back oldest first through the format's writer into stdout, a stream or `FILE`.

Memory stays at one page whatever the room's size: stdout exports spill to a temporary file (in
memory up to 32 MiB), `-o FILE` exports to `FILE.part`, and only when the walk is complete is
`FILE` written (to a temporary file renamed into place) and the two work files removed. With
`--follow-predecessors` the spill holds the newest room first, and reading it back gives the
oldest room first.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from peekcli.errors import PeekError, StateFileError, UsageError
from peekcli.export.files import (
    Spill,
    load_sidecar,
    memory_spill,
    open_part,
    open_stream,
    output_kind,
    own_regular_file,
    remove,
    replace_with,
    save_sidecar,
    work_paths,
)
from peekcli.export.plan import ExportRange, ExportState, Progress, event_ts, ignore
from peekcli.export.walk import Walk
from peekcli.matrix.client import JSON, MatrixClient
from peekcli.media import MediaDownloader, MediaReport, media_in
from peekcli.sinks.export_writer import ExportSummary, ExportWriter


@dataclass
class ExportJob:
    """One export: where it reads from, what it asked for and where it writes."""

    client: MatrixClient
    homeserver: str
    room_id: str
    range: ExportRange
    output: Path | None = None
    resume: bool = False
    stdout: BinaryIO | None = None
    progress: Callable[[Progress], None] = ignore
    warn: Callable[[str], None] = ignore
    renew_token: Callable[[], bool] = lambda: False
    max_retries: int = 5
    #: Filled in by `run`: requests sent while walking and events written.
    requests: int = 0
    written: int = 0
    resumed_from: int = 0
    #: With --media: downloads the files the events point at before writing.
    media: MediaDownloader | None = None
    media_report: MediaReport | None = None
    #: After a failed `-o` export: whether FILE.part was kept for --resume or removed.
    left_behind: Literal["resumable", "removed"] | None = None
    #: Events whose media this run's walk queued (fewer than the spill holds after --resume).
    _media_fed: int = field(default=0, init=False, repr=False)

    def run(self, make_writer: Callable[[BinaryIO], ExportWriter]) -> None:
        try:
            self._run(make_writer)
        except BaseException:
            if self.media is not None:
                self.media.abort()  # downloads started during the walk stop with it
            raise

    def _run(self, make_writer: Callable[[BinaryIO], ExportWriter]) -> None:
        if self.output is None:
            assert self.stdout is not None
            self._to_stream(make_writer, self.stdout)
        elif output_kind(self.output) == "stream":
            if self.resume:
                raise UsageError(f"--resume needs -o FILE to be a regular file, not {self.output}")
            with open_stream(self.output) as out:
                self._to_stream(make_writer, out)
        else:
            self._to_file(self.output, make_writer)

    def _to_stream(self, make_writer: Callable[[BinaryIO], ExportWriter], out: BinaryIO) -> None:
        state = ExportState(self.homeserver, self.room_id, self.range)
        with memory_spill() as fh:
            spill = Spill(fh, state.segments)
            self._walk(state, spill)
            self._write(state, spill, make_writer(out))

    def _to_file(self, output: Path, make_writer: Callable[[BinaryIO], ExportWriter]) -> None:
        part, sidecar = work_paths(output)
        state = self._resumed(part, sidecar) if self.resume else None
        if state is None and not self.resume and sidecar.exists():
            self.warn(
                f"starting over: the unfinished export in {part} is dropped (--resume goes on)"
            )
        fresh = state is None
        if state is None:
            remove(sidecar)  # a stale sidecar must not make a new, empty .part resumable
            state = ExportState(self.homeserver, self.room_id, self.range)
        try:
            with open_part(part, fresh=fresh) as fh:
                if not fresh:
                    fh.truncate(state.committed)  # whatever a kill left past the last commit
                spill = Spill(fh, state.segments)
                try:
                    self._walk(state, spill, lambda s: save_sidecar(sidecar, s))
                except OSError as exc:  # a full disk: one line (what is left is said after)
                    raise PeekError(f"cannot write {part}: {exc.strerror or exc}") from None
                replace_with(output, lambda out: self._write(state, spill, make_writer(out)))
        except BaseException:
            # Resumable only once a page is committed (the sidecar says how far): otherwise
            # the .part holds nothing worth keeping.
            if sidecar.exists():
                self.left_behind = "resumable"
            else:
                self.left_behind = "removed"
                remove(part)
            raise
        remove(sidecar, part)

    def _resumed(self, part: Path, sidecar: Path) -> ExportState | None:
        if not sidecar.exists() or not part.exists():
            self.warn(f"nothing to resume in {part}: starting a new export")
            return None
        if not (own_regular_file(part) and own_regular_file(sidecar)):
            # planted (a link, another user's file in a shared directory): never read or extend it
            raise StateFileError(
                f"{part} or {sidecar.name} is not a regular file of yours: refused; "
                "export again without --resume"
            )
        state = load_sidecar(sidecar)
        if (state.homeserver, state.room_id, state.range) != (
            self.homeserver,
            self.room_id,
            self.range,
        ):
            raise UsageError(
                f"{part} holds an export of another room or with other --since/--until/--limit/"
                "--follow-predecessors: give the same ones, or export again without --resume"
            )
        if part.stat().st_size < state.committed:
            raise StateFileError(f"{part} is shorter than recorded: export again without --resume")
        self.resumed_from = state.count
        return state

    def _walk(
        self,
        state: ExportState,
        spill: Spill,
        commit: Callable[[ExportState], None] = ignore,
    ) -> None:
        walk = Walk(
            client=self.client,
            state=state,
            spill=spill,
            commit=commit,
            progress=self.progress,
            warn=self.warn,
            renew_token=self.renew_token,
            max_retries=self.max_retries,
        )
        if self.media is not None:
            walk.on_page = self._media_of_page
        try:
            walk.run()
        finally:
            self.requests += walk.requests

    def _write(self, state: ExportState, spill: Spill, writer: ExportWriter) -> None:
        room_state: list[JSON] = []
        if writer.wants_state or self.media is not None:
            with contextlib.suppress(PeekError):
                room_state = [
                    ev for ev in self.client.room_state(state.room_id) if isinstance(ev, dict)
                ]
        if self.media is not None:
            self._save_media(state, spill, room_state, self.media)
        # Said before the first byte is written: a progress line on the same terminal goes first.
        self.progress(Progress(0, None, state.room_id, "writing"))
        summary = ExportSummary(
            self.homeserver,
            state.range.since_ms,
            state.range.until_ms,
            state.oldest_ts,
            _newest_ts(spill) if state.count else None,
            state.count,
        )
        writer.begin(state.room_id, room_state, summary)
        last = time.monotonic()
        for line in spill.lines():
            writer.write(line)
            self.written += 1
            if time.monotonic() - last > 0.2:
                last = time.monotonic()
                self.progress(Progress(self.written, None, state.room_id, "writing"))
        writer.finish()

    def _media_of_page(self, events: list[JSON]) -> None:
        """A page just walked: its files start downloading now, while the next page is asked
        for, instead of after the whole walk."""
        assert self.media is not None
        for event in events:
            self.media.add(media_in(event))
        self._media_fed += len(events)

    def _save_media(
        self, state: ExportState, spill: Spill, room_state: list[JSON], media: MediaDownloader
    ) -> None:
        """Every file the events point at, before the page that shows them is written (a page
        links only to what is on disk). The walk queued its pages' files as it went; the spill is
        read again only for events an earlier, resumed run walked."""
        for event in room_state:
            media.add(media_in(event))
        if self._media_fed < state.count:
            for count, line in enumerate(spill.lines(), 1):
                try:
                    media.add(media_in(json.loads(line)))
                except ValueError:
                    continue
                if count % 500 == 0:
                    self.progress(Progress(count, None, state.room_id, "media"))
        self.progress(Progress(state.count, None, state.room_id, "media"))
        self.media_report = media.close()


def _newest_ts(spill: Spill) -> int | None:
    try:
        event = json.loads(spill.newest())
    except ValueError:
        return None
    return event_ts(event) if isinstance(event, dict) else None
