"""One `-s/--homeserver` (and PEEK_HOMESERVER) on every command that talks to a server.

`doctor` and `login` used to answer "give its client API URL with --homeserver" and then
`peek doctor --homeserver URL` said `No such option`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner

from peekcli.cli import cli
from tests.unit.mockhs import HS, ROOM
from tests.unit.simhs import SimServer, messages
from tests.unit.test_auth import AuthHomeserver, ahs  # noqa: F401  (the fixture)

TALKS_TO_A_SERVER = [
    "watch", "snapshot", "export", "rooms", "info", "doctor", "login", "whoami", "logout",
]  # fmt: skip


@pytest.mark.parametrize("name", TALKS_TO_A_SERVER)
def test_every_command_that_talks_to_a_server_takes_s_and_the_env(name: str) -> None:
    out = CliRunner().invoke(cli, [name, "--help"], terminal_width=200).stdout
    options = re.split(r"\n(?=  -)", out.partition("\nOptions:\n")[2])
    line = " ".join(next((x for x in options if "--homeserver" in x), "").split())
    assert line.startswith("-s, --homeserver URL "), f"`peek {name}`: {line!r}"
    assert "[env: PEEK_HOMESERVER]" in line


@pytest.fixture
def sim() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield SimServer(rsps, "synapse", timeline=messages(1, 3)).install()


@pytest.mark.parametrize("how", ["-s", "--homeserver", "env"])
def test_doctor_takes_the_homeserver_as_option_or_env(
    sim: SimServer, peek: Any, state_file: Path, how: str
) -> None:
    args = ["doctor", "--room", ROOM, "--state-file", str(state_file)]
    env = {"PEEK_HOMESERVER": HS} if how == "env" else None
    result = peek(*args, env=env) if env else peek(*args, how, HS)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "/versions" in result.stdout and not result.stderr


def test_the_argument_wins_over_the_env_and_both_typed_is_a_usage_error(
    sim: SimServer, peek: Any, state_file: Path
) -> None:
    other = {"PEEK_HOMESERVER": "https://elsewhere.test"}
    args = ["--room", ROOM, "--state-file", str(state_file)]
    assert peek("doctor", HS, *args, env=other).exit_code == 0
    both = peek("doctor", "example.org", "-s", HS, *args)
    assert both.exit_code == 2
    assert both.stderr.splitlines()[-1] == "Error: give HOMESERVER or --homeserver, not both"


@pytest.mark.parametrize("how", ["-s", "env"])
def test_login_whoami_logout_take_s_and_the_env(
    ahs: AuthHomeserver,  # noqa: F811
    peek: Any,
    state_file: Path,
    how: str,
) -> None:
    def run(*args: str, input: str | None = None) -> Any:
        full = [*args, "--state-file", str(state_file)]
        if how == "env":
            return peek(*full, input=input, env={"PEEK_HOMESERVER": HS})
        return peek(*full, "-s", HS, input=input)

    login = run("login", "-u", "alice", "--password-stdin", input="s3cret\n")
    assert login.exit_code == 0, login.stderr
    assert login.stdout.startswith(f"Logged in to {HS} as @alice:hs.test")
    me = run("whoami")
    assert me.exit_code == 0 and me.stdout.startswith(f"@alice:hs.test on {HS}")
    out = run("logout")
    assert out.exit_code == 0 and out.stdout.startswith("Logged out @alice:hs.test")
