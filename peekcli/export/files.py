"""The files of an export: the spill, `FILE.part` and its sidecar, and the finished `FILE`.

The walk appends each page to a *spill* (`FILE.part`, or a temporary file for stdout) and, once
the page is there, replaces the sidecar `FILE.part.json` atomically with the walk's state, so a
kill at any moment leaves a `.part` that `--resume` cuts back to the last commit. The finished
export is written to a temporary file beside `FILE` and renamed into place: a reader never sees
half of it. Nothing here is followed through a symbolic link another user may have planted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, Literal

from peekcli.errors import PeekError, StateFileError, UsageError
from peekcli.export.plan import ExportState
from peekcli.matrix.client import JSON
from peekcli.render.jsonl import encode_event

#: A stdout export keeps this much of its spill in memory before it goes to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024


# -- the spill ------------------------------------------------------------------------------------


class Spill:
    """Pages of events as JSON lines, newest page first; read back from the end = oldest first."""

    def __init__(self, fh: IO[bytes], segments: list[list[int]]) -> None:
        self.fh = fh
        self.segments = segments

    def append(self, newest_first: list[JSON]) -> None:
        data = b"".join(encode_event(ev) for ev in reversed(newest_first))
        offset = sum(length for _, length in self.segments)
        self.fh.seek(offset)
        self.fh.write(data)
        self.fh.flush()
        self.segments.append([offset, len(data)])

    def newest(self) -> bytes:
        """The newest event's line: the last of the first page fetched."""
        offset, length = self.segments[0]
        self.fh.seek(offset)
        data = self.fh.read(length)
        return data.splitlines()[-1] if data else b"{}"

    def lines(self) -> Iterator[bytes]:
        """Every event's JSON line, oldest first."""
        for offset, length in reversed(self.segments):
            self.fh.seek(offset)
            data = self.fh.read(length)
            if len(data) != length:
                raise StateFileError("the export's spill file is shorter than recorded")
            yield from data.splitlines(keepends=True)


def memory_spill() -> IO[bytes]:
    """A stdout export's spill: in memory up to `SPOOL_BYTES`, then a temporary file."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)


# -- where the export goes ------------------------------------------------------------------------


OutputKind = Literal["file", "stream"]


def output_kind(output: Path) -> OutputKind:
    """How `-o FILE` is written. A regular file (or a new one) is built beside it and renamed
    into place once complete ("file"). A FIFO, a character device (`/dev/null`, a terminal) or
    anything under /dev or /proc (`/dev/stdout`) is written directly, as stdout is ("stream"):
    renaming over it would destroy it. A socket or block device is refused."""
    absolute = Path(os.path.abspath(output))
    special = absolute.parts[1:2] in (("dev",), ("proc",))
    try:
        mode = os.stat(absolute).st_mode
    except FileNotFoundError:
        return "stream" if special else "file"
    except OSError as exc:
        raise UsageError(f"cannot use -o {output}: {exc.strerror}") from None
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or (special and stat.S_ISREG(mode)):
        return "stream"
    if stat.S_ISREG(mode):
        return "file"
    raise UsageError(f"-o {output} is not a regular file, FIFO or character device: refused")


def open_stream(output: Path) -> BinaryIO:
    """A FIFO or device given as `-o`: opened like `>>` (no O_CREAT/O_TRUNC), so what the shell
    opened stays as it is."""
    try:
        fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise PeekError(f"cannot write {output}: {exc.strerror}") from None
    return os.fdopen(fd, "wb")


def work_paths(output: Path) -> tuple[Path, Path]:
    """`FILE.part` (the spill) and `FILE.part.json` (the sidecar) beside the output file."""
    return output.with_name(output.name + ".part"), output.with_name(output.name + ".part.json")


def open_part(part: Path, *, fresh: bool) -> BinaryIO:
    """`FILE.part`, never through a symbolic link (in a sticky /tmp another user may have
    planted one). A fresh export removes whatever has that name (a link is removed, not
    followed) and creates the file with O_EXCL; a resumed one opens only a regular file."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if fresh:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            fd = os.open(part, flags | os.O_CREAT | os.O_EXCL, 0o666)
        else:
            fd = os.open(part, flags)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise StateFileError(f"{part} is not a regular file: export again")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateFileError(f"{part} is a symbolic link: refused") from None
        raise PeekError(f"cannot write {part}: {exc.strerror}") from None
    return os.fdopen(fd, "w+b" if fresh else "r+b")


def own_regular_file(path: Path) -> bool:
    """A regular file of this user's (not a link, not someone else's file in a shared folder)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def remove(*paths: Path) -> None:
    """Remove work files, whatever is left of them."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


# -- the sidecar ----------------------------------------------------------------------------------


def save_sidecar(path: Path, state: ExportState) -> None:
    data = json.dumps(state.to_doc(), separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateFileError(f"cannot write {path}: {exc.strerror}") from None


def load_sidecar(path: Path) -> ExportState:
    try:
        return ExportState.from_doc(json.loads(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise StateFileError(f"cannot read {path} ({exc}); export again without --resume") from None


# -- the finished file ----------------------------------------------------------------------------


def create_public(path: Path) -> tuple[str, BinaryIO]:
    """A new temporary file beside `path`, created with the mode the umask gives (0644
    typically): an export is public history, meant to be served or shared, not a secret."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
            )
        except FileExistsError:
            continue
        except OSError as exc:
            raise PeekError(f"cannot write {tmp}: {exc.strerror}") from None
        return str(tmp), os.fdopen(fd, "wb")
    raise PeekError(f"cannot create a temporary file beside {path}")


def replace_with(output: Path, fill: Callable[[BinaryIO], None]) -> None:
    """`output` written whole or not at all: `fill` writes a temporary file beside it, which is
    renamed into place once `fill` returns; on any failure it is removed."""
    tmp, out = create_public(output)
    try:
        with out:
            fill(out)
        os.replace(tmp, output)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise PeekError(f"cannot write {output}: {exc.strerror or exc}") from None
        raise
