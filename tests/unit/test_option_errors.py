"""Bad option values get a line that names the option and what it wants (exit 2)."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from peekcli.cli import cli
from tests.unit.test_help import all_commands

ROOM = "!room:hs.test"


def numeric_options() -> list[tuple[str, str]]:
    """(command, --option) for every option taking a number, in every command."""
    found = []
    for name, command in all_commands():
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(
                param.type, (click.IntRange, click.FloatRange, click.types.IntParamType)
            ):
                found.append((name, max(param.opts, key=len)))
    return found


def test_timeout_abc_says_it_wants_a_number_of_milliseconds() -> None:
    result = CliRunner().invoke(cli, ["watch", ROOM, "--timeout", "abc"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--timeout': 'abc' is not a valid whole number."
    )


@pytest.mark.parametrize(("name", "option"), numeric_options(), ids=lambda v: str(v))
def test_no_number_option_speaks_of_ranges(name: str, option: str) -> None:
    args = [*name.split()]
    if name in ("watch", "snapshot", "export", "info"):
        args.append(ROOM)
    result = CliRunner().invoke(cli, [*args, option, "abc"])
    assert result.exit_code == 2, result.output
    last = result.stderr.splitlines()[-1]
    assert f"'{option}'" in last and "'abc' is not a" in last and "range" not in last, last


@pytest.mark.parametrize("option", [("--exec-output", "stdout"), ("--exec-failure", "skip"),
                                    ("--exec-timeout", "5")])  # fmt: skip
def test_an_exec_option_without_exec_names_itself(option: tuple[str, str]) -> None:
    result = CliRunner().invoke(cli, ["watch", ROOM, *option])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: {option[0]} goes with --exec"


def test_state_forget_checks_the_room_like_watch(peek: Any) -> None:
    forget = peek("state", "forget", "garbage")
    watch = peek("watch", "garbage")
    assert forget.exit_code == watch.exit_code == 2
    assert forget.stderr.splitlines()[-1] == watch.stderr.splitlines()[-1]
    assert "not a room" in forget.stderr or "expected" in forget.stderr
