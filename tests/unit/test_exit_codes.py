"""One exit-code table (peekcli/errors.py): the README shows it, each `--help` lists its own codes.

Before, the table lived in three hand-synced places that disagreed, and every command's help
listed every code (`peek export --help` promised 6, 9 and "snapshot drained").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from peekcli.cli import cli
from peekcli.errors import COMMAND_EXITS, EXIT_TABLE, readme_table
from tests.unit.test_help import all_commands

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [name for name, _ in all_commands()]


def listed_codes(name: str) -> dict[int, str]:
    """The "Exit codes:" block of `peek NAME --help`, as a user reads it: code → meaning."""
    args = [*name.split(), "--help"] if name != "peek" else ["--help"]
    result = CliRunner().invoke(cli, args, prog_name="peek", terminal_width=80)
    assert result.exit_code == 0, result.output
    _, sep, block = result.stdout.partition("Exit codes:\n")
    assert sep, f"`peek {name} --help` lists no exit codes"
    codes: dict[int, str] = {}
    last = -1
    for line in block.splitlines():
        if match := re.fullmatch(r"  +(\d+) +(.+)", line):
            last = int(match[1])
            codes[last] = match[2]
        elif line.strip():
            assert last in codes and line.startswith(" " * 9), line  # a wrapped meaning
            codes[last] += " " + line.strip()
    return codes


def test_readme_exit_code_table_is_the_one_in_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    assert table == readme_table(), "README's exit-code table: paste errors.readme_table()"


def test_every_command_declares_its_codes() -> None:
    assert sorted(COMMAND_EXITS) == sorted(["peek", *COMMANDS])
    known = {row.code for row in EXIT_TABLE}
    for name, exits in COMMAND_EXITS.items():
        assert set(exits.codes) <= known and set(exits.notes) <= set(exits.codes), name


@pytest.mark.parametrize("name", ["peek", *COMMANDS])
def test_help_lists_exactly_the_codes_the_command_declares(name: str) -> None:
    listed = listed_codes(name)
    assert sorted(listed) == sorted(COMMAND_EXITS[name].codes)


@pytest.mark.parametrize("name", ["export", "info", "rooms", "doctor", "login", "state list"])
def test_commands_that_follow_nothing_do_not_list_busy_exec_or_snapshot(name: str) -> None:
    listed = listed_codes(name)
    assert 6 not in listed and 9 not in listed
    assert not any("snapshot" in meaning for meaning in listed.values()), listed


def test_help_says_what_a_code_means_for_that_command() -> None:
    assert listed_codes("info")[0] == "the room can be watched"
    assert listed_codes("doctor")[4] == "the test room (--room) was not found"
    assert listed_codes("export")[130].endswith("-o FILE --resume goes on")
    assert "snapshot drained" in listed_codes("peek")[0]


def test_help_lines_fit_80_columns() -> None:
    for name in ["peek", *COMMANDS]:
        args = [*name.split(), "--help"] if name != "peek" else ["--help"]
        out = CliRunner().invoke(cli, args, terminal_width=80).stdout
        block = out.partition("Exit codes:\n")[2]
        assert all(len(line) <= 80 for line in block.splitlines()), name


def test_an_undeclared_exit_fails_the_suite() -> None:
    """The fixtures' guard (tests/exitcodes.py) is what keeps the declarations honest."""
    from tests.exitcodes import check_declared, command_of

    assert command_of(["-q", "state", "forget", "x"]) == "state forget"
    assert command_of(["nonsense"]) == "peek"
    check_declared(["export", "!r:x"], 4)
    with pytest.raises(AssertionError, match="`peek export` exited 6"):
        check_declared(["export", "!r:x"], 6)
