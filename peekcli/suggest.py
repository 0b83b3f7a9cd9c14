"""Commands peek suggests to the user, ready to paste into a shell.

Parts of a suggestion come from servers (a tombstone's `replacement_room`, a `.well-known`
`base_url`): a suggestion built by string formatting would let a room admin put `$(…)` into a
line the user pastes. Every suggested command is built here, each argument `shlex.quote`d.
"""

from __future__ import annotations

import shlex


def peek_command(*args: str) -> str:
    """`peek ARGS…` with each argument shell-quoted (`peek watch '!a:b'`)."""
    return shlex.join(["peek", *args])
