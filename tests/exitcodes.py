"""Every exit a test observes must be one its command declares (`peekcli.errors.COMMAND_EXITS`).

The unit `peek` fixture and the e2e `run_peek` call `check_declared` on each run, so a command
that starts returning a code its `--help` does not list fails the suite, not a user's script.
"""

from __future__ import annotations

from collections.abc import Sequence

from peekcli.errors import COMMAND_EXITS


def command_of(args: Sequence[str]) -> str:
    """The command an argument list runs, as `COMMAND_EXITS` names it ("peek" for the group)."""
    words = list(args)
    while words and words[0].startswith("-"):
        words.pop(0)
    if not words or words[0] not in COMMAND_EXITS:
        return "peek"
    if len(words) > 1 and f"{words[0]} {words[1]}" in COMMAND_EXITS:
        return f"{words[0]} {words[1]}"
    return words[0]


def check_declared(args: Sequence[str], code: int) -> None:
    name = command_of(args)
    declared = COMMAND_EXITS[name].codes
    assert code in declared, (
        f"`peek {name}` exited {code}, which its --help does not list {sorted(declared)}: "
        "declare it in peekcli/errors.py COMMAND_EXITS or fix the code"
    )
