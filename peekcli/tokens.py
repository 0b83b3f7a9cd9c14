"""Access tokens as the user gives them, and the one rule every token must pass.

A token travels in an HTTP header and is stored in the credentials file: one with CR/LF, a
space or a non-ASCII character (from a server's registration reply, a copy-paste, the
environment) would break every later request, and once stored, every later run. So a token is
checked here before it is stored or sent, whoever made it.

On the command line a token is visible to every local user (`ps`): `--token -` reads it from
stdin, `--token @FILE` from a file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from peekcli.errors import UsageError

#: Real tokens are a few hundred characters at most (JWTs included); a megabyte is no token.
MAX_LENGTH = 8192


def is_valid_token(token: object) -> bool:
    """Printable ASCII without spaces (what an RFC 6750 bearer token may hold), bounded."""
    return (
        isinstance(token, str)
        and 0 < len(token) <= MAX_LENGTH
        and all("!" <= c <= "~" for c in token)
    )


def check_token(token: str, where: str) -> str:
    """`token`, or `UsageError` (exit 2) naming `where` it came from, never the token itself."""
    if not is_valid_token(token):
        raise UsageError(
            f"the access token from {where} is not usable: a token is 1–{MAX_LENGTH} printable "
            "ASCII characters without spaces"
        )
    return token


def read_token(value: str, where: str = "--token") -> str:
    """`-` → one line of stdin; `@FILE` → the first line of FILE; anything else as it is."""
    if value == "-":
        line = sys.stdin.readline(MAX_LENGTH + 2)
        return check_token(line.rstrip("\r\n"), f"{where} - (stdin)")
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                line = f.readline(MAX_LENGTH + 2)
        except OSError as exc:
            raise UsageError(f"cannot read the token file {path}: {exc.strerror}") from None
        return check_token(line.rstrip("\r\n"), f"{where} @{path}")
    return check_token(value, where)


def is_literal(value: str) -> bool:
    """True when `value` is the token itself (seen by `ps`), not `-` or `@FILE`."""
    return value != "-" and not value.startswith("@")
