"""One exception hierarchy, each class carrying its exit code, and the one exit-code table.

`EXIT_TABLE` says what each code means and `COMMAND_EXITS` which codes each command can return:
every `--help` epilog is produced from them (`help_epilog`), and a test checks that the README's
table is `readme_table()`, so the docs cannot drift from the code again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FORBIDDEN = 3
EXIT_NOT_FOUND = 4
EXIT_TOKEN = 5
EXIT_BUSY = 6
EXIT_GUEST_REFUSED = 7
EXIT_UNSUPPORTED = 8
EXIT_EXEC_FAILED = 9
EXIT_SIGINT = 130
EXIT_PIPE = 141
EXIT_SIGTERM = 143


@dataclass(frozen=True)
class ExitCode:
    """One row of the table: a code and what it means (README markdown; `--help` drops the `)."""

    code: int
    meaning: str


EXIT_TABLE: tuple[ExitCode, ...] = (
    ExitCode(
        EXIT_OK, "done (snapshot drained, `--max-events` reached; `info`/`doctor`: watchable)"
    ),
    ExitCode(
        EXIT_ERROR,
        "network or server failure after retries, unreadable reply, bad state file, "
        "refused `--from`",
    ),
    ExitCode(EXIT_USAGE, "usage: bad option or argument"),
    ExitCode(
        EXIT_FORBIDDEN, "forbidden: the room is not world-readable and the identity has not joined"
    ),
    ExitCode(EXIT_NOT_FOUND, "room or alias not found on that server"),
    ExitCode(
        EXIT_TOKEN,
        "token or credential rejected (wrong password, expired or revoked token), or not logged in",
    ),
    ExitCode(EXIT_BUSY, "busy: another peek holds the room and `--no-wait` was given"),
    ExitCode(EXIT_GUEST_REFUSED, "guest access refused by the server: log in or give `--token`"),
    ExitCode(
        EXIT_UNSUPPORTED,
        "the server cannot serve this room to peek (no `/events` peeking and no working "
        "`/messages` fallback, or `--stream events` on a server without it)",
    ),
    ExitCode(EXIT_EXEC_FAILED, "an `--exec` command failed"),
    ExitCode(EXIT_SIGINT, "stopped by Ctrl-C (SIGINT); a follow saves the position of all printed"),
    ExitCode(
        EXIT_PIPE, "stdout closed by the reader (`| head`); the position covers what was written"
    ),
    ExitCode(EXIT_SIGTERM, "stopped by SIGTERM; a follow saves the position of all printed"),
)


@dataclass(frozen=True)
class CommandExits:
    """The codes one command can return, and what a code means for it where that says more."""

    codes: tuple[int, ...]
    notes: dict[int, str] = field(default_factory=dict)


_FOLLOW = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, EXIT_SIGINT, EXIT_SIGTERM, EXIT_PIPE)
#: For commands that follow no room: done is done, a signal just stops them.
_PLAIN = {
    EXIT_OK: "done",
    EXIT_ERROR: "network or server failure after retries, unreadable reply, bad state file",
    EXIT_SIGINT: "stopped by Ctrl-C (SIGINT)",
    EXIT_SIGTERM: "stopped by SIGTERM",
    EXIT_PIPE: "stdout closed by the reader (`| head`)",
}


def _plain(*codes: int, **notes: str) -> CommandExits:
    """A command that follows no room: `_PLAIN`'s wording, then its own (`c4="…"` for 4)."""
    own = {int(key[1:]): text for key, text in notes.items()}
    merged = {code: text for code, text in {**_PLAIN, **own}.items() if code in codes}
    return CommandExits(codes, merged)


_NET = (EXIT_SIGINT, EXIT_SIGTERM, EXIT_PIPE)

#: Command (as typed after `peek`) → the codes it can return; its `--help` lists these.
COMMAND_EXITS: dict[str, CommandExits] = {
    "peek": CommandExits(_FOLLOW),
    "watch": CommandExits(
        _FOLLOW, {0: "`--max-events` reached, or the room was replaced and `--no-follow` given"}
    ),
    "snapshot": CommandExits(_FOLLOW, {0: "everything new printed and its position saved"}),
    "export": _plain(
        *(0, 1, 2, 3, 4, 5, 7, 8, *_NET),
        c0="the whole range written",
        c130="stopped by Ctrl-C (SIGINT); `-o FILE --resume` goes on",
        c143="stopped by SIGTERM; `-o FILE --resume` goes on",
    ),
    "rooms": _plain(*(0, 1, 2, 5, 7, 8, *_NET), c8="the server has no public room directory"),
    "info": _plain(
        *(0, 1, 2, 3, 4, 5, 7, *_NET),
        c0="the room can be watched",
        c3="the room is not world-readable and the identity has not joined (facts printed)",
        c7="guest access refused and no login (facts printed)",
    ),
    "doctor": _plain(
        *(0, 1, 2, 3, 4, 5, 7, 8, *_NET),
        c0="watching works on that server",
        c1="the server cannot be reached, or no world-readable room was found to test with",
        c3="the test room is not world-readable",
        c4="the test room (`--room`) was not found",
        c7="no identity: guest access refused and no login",
        c8="neither `/events` peeking nor `/messages` works there",
    ),
    "state": _plain(0, 1, 2, 6, EXIT_PIPE),
    "state path": _plain(0, 1, 2, EXIT_PIPE),
    "state list": _plain(0, 1, 2, EXIT_PIPE),
    "state forget": _plain(
        0,
        1,
        2,
        6,
        c1="no saved position for that room, or a bad state file",
        c6="busy: a peek is following the room",
    ),
    "completion": _plain(0, 2, EXIT_PIPE),
    "login": _plain(0, 1, 2, 5, 7, EXIT_SIGINT, EXIT_SIGTERM),
    "whoami": _plain(0, 1, 2, 5, *_NET),
    "logout": _plain(0, 1, 2, 5, EXIT_SIGINT, EXIT_SIGTERM),
}


def help_epilog(command: str) -> str:
    """The "Exit codes:" block of `peek COMMAND --help`: its own codes only, plain text, lines
    kept to 78 columns (click does not rewrap a `\\b` paragraph)."""
    import textwrap

    exits = COMMAND_EXITS[command]
    lines = ["\b", "Exit codes:"]
    for row in EXIT_TABLE:
        if row.code in exits.codes:
            meaning = exits.notes.get(row.code, row.meaning).replace("`", "")
            lines += textwrap.wrap(
                meaning, width=76, initial_indent=f"  {row.code:<5}", subsequent_indent=" " * 7
            )
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    """The README's "Exit codes" table, as markdown (a test compares the two)."""
    rows = ["| code | meaning |", "|---|---|"]
    for row in EXIT_TABLE:
        meaning = row.meaning.replace("|", "\\|")  # a pipe, even in `code`, would end the cell
        rows.append(f"| {row.code} | {meaning} |")
    return "\n".join(rows) + "\n"


class PeekError(Exception):
    """Base of every error peek reports to the user: `str(err)` is the one-line message."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(PeekError):
    """A bad option or argument that click could not catch itself."""

    exit_code = EXIT_USAGE


class NetworkError(PeekError):
    """The server could not be reached or answered with something unusable; worth retrying."""


class RateLimited(NetworkError):
    """429 / M_LIMIT_EXCEEDED: wait `retry_after` seconds before the next try."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MatrixError(PeekError):
    """The server answered with a Matrix error body (or an HTTP error status)."""

    def __init__(self, message: str, *, status: int, errcode: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode


class ForbiddenError(MatrixError):
    exit_code = EXIT_FORBIDDEN


class NotFoundError(MatrixError):
    exit_code = EXIT_NOT_FOUND


class TokenRejected(MatrixError):
    """401 M_UNKNOWN_TOKEN / M_MISSING_TOKEN: the access token is not (or no longer) valid."""

    exit_code = EXIT_TOKEN

    def __init__(
        self, message: str, *, status: int, errcode: str | None = None, soft_logout: bool = False
    ) -> None:
        super().__init__(message, status=status, errcode=errcode)
        self.soft_logout = soft_logout


class CredentialRejected(PeekError):
    """The server refused what the user typed to log in (user name and password): exit 5, the
    code for a rejected credential, not 1, which would send them looking at the network."""

    exit_code = EXIT_TOKEN


class UnrecognizedError(MatrixError):
    """404/405 M_UNRECOGNIZED: the server does not implement the endpoint."""

    exit_code = EXIT_UNSUPPORTED


class InvalidTokenError(MatrixError):
    """The stream position (`from`) was refused by the server."""


class GuestRefused(PeekError):
    exit_code = EXIT_GUEST_REFUSED


class NotSupported(PeekError):
    """The server cannot serve this room to peek and no fallback works."""

    exit_code = EXIT_UNSUPPORTED


class BusyError(PeekError):
    exit_code = EXIT_BUSY


class AlreadyFollowed(PeekError):
    """This very run already follows the room (another ROOM argument, or an upgrade led here).

    Not a failure: the other argument delivers the room, so this one just ends (exit 0).
    """

    exit_code = EXIT_OK


class StateFileError(PeekError):
    """The state or credentials file is unreadable, corrupt or unwritable; never overwritten."""


class StateNotWritable(StateFileError):
    """The state folder is read-only for this user: commands that only read go on without
    saving (a guest token is then kept for this run only); saving a position fails."""


class ExecFailed(PeekError):
    exit_code = EXIT_EXEC_FAILED


class Stopped(BaseException):
    """Raised by the signal handlers so the loop can save its position and exit 130/143.

    A BaseException, like KeyboardInterrupt, so that no broad `except Exception` (say, the
    renderer's last-resort guard) can swallow a Ctrl-C.
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code
