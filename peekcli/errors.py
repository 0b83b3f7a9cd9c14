"""One exception hierarchy; each class carries its exit code so the CLI maps errors in one place.

The exit codes are documented in the README and in `peek --help`; keep the three in step.
"""

from __future__ import annotations

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
