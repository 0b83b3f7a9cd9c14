"""`--media DIR` for export, watch and snapshot: the downloader of a room, and what it did."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peekcli.commands.output import OutputContext
    from peekcli.media import MediaDownloader, MediaReport


def max_size(text: str | None) -> int | None:
    """`--media-max-size` → bytes (a usage error, exit 2, when unreadable)."""
    if not text:
        return None
    from peekcli.errors import UsageError
    from peekcli.media import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"--media-max-size: {exc}") from None


def downloader(
    session: Any,
    root: Path,
    max_bytes: int | None,
    max_retries: int | None,
    ui: OutputContext,
) -> MediaDownloader:
    """Media downloads through the room's client: its token, its homeserver, the one retry
    policy (its status line, a rejected guest renewed once for all the downloads). Downloads
    run in threads of their own: their status goes through `ui`, the run's output context."""
    from peekcli.errors import TokenRejected
    from peekcli.media import READ_TIMEOUT, MediaDownloader, MediaStore, Response
    from peekcli.retry import RetryPolicy, retrying
    from peekcli.tokens import is_valid_token

    client = session.client
    policy = RetryPolicy(max_retries=max_retries)
    renewing = threading.Lock()

    def renew() -> bool:
        with renewing:  # several downloads may see the guest token expire at once
            renewed: bool = session.renew()
            return renewed

    def status(message: str | None) -> None:
        if message is None:
            ui.clear_status()
        else:
            ui.show_status(f"media: {message}")

    checked: set[str] = set()  # a token is checked once, not once per file

    def fetch(url: str, authenticated: bool) -> Response:
        token = client.token if authenticated else None
        if token is not None and token not in checked:
            if not is_valid_token(token):  # never put in a header
                raise TokenRejected(
                    f"the access token for {client.base_url} is unusable", status=401
                )
            checked.add(token)
        got = client.http.download(
            url, where=client.base_url, token=token, read_timeout=READ_TIMEOUT
        )

        def error() -> None:
            client.parse(got.reply())

        return Response(got.status, got.headers, got.chunks(), got.close, error)

    return MediaDownloader(
        MediaStore(root),
        base_url=client.base_url,
        fetch=fetch,
        retry=lambda call: retrying(call, policy, status=status, renew=renew),
        max_bytes=max_bytes,
    )


def say(report: MediaReport, root: Path) -> None:
    """One line about the media, and one per kind of trouble."""
    from peekcli.commands.common import note

    size = report.bytes / (1024 * 1024)
    note(
        f"media in {root}: {report.downloaded} downloaded ({size:.1f} MiB), "
        f"{report.present} already there"
    )
    if report.encrypted:
        names = ", ".join(report.encrypted[:3]) + (" …" if len(report.encrypted) > 3 else "")
        note(f"media: {len(report.encrypted)} encrypted attachment(s) not fetched ({names})")
    if report.too_big:
        note(f"media: {len(report.too_big)} file(s) over --media-max-size skipped")
    if report.unusable:
        note(f"media: {len(report.unusable)} unusable mxc URI(s) skipped")
    if report.failed:
        url, why = report.failed[0]
        more = f" and {len(report.failed) - 1} more" if len(report.failed) > 1 else ""
        note(f"media: {len(report.failed)} download(s) failed: {url}: {why}{more}")
