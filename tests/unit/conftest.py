from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result

from peekcli.cli import cli
from tests.exitcodes import check_declared
from tests.statefile import saved, write_saved
from tests.unit.hostilehs import HostileServer
from tests.unit.mockhs import FakeHomeserver

__all__ = ["lines", "saved", "write_saved"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in [v for v in os.environ if v.startswith("PEEK_")]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture(autouse=True)
def _exits_are_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `peek …` a test runs must end with a code its command's --help lists."""
    invoke = CliRunner.invoke

    def checked(self: CliRunner, command: Any, args: Any = None, *rest: Any, **kw: Any) -> Result:
        result = invoke(self, command, args, *rest, **kw)
        if command is cli and isinstance(args, (list, tuple)):
            check_declared(args, result.exit_code)
        return result

    monkeypatch.setattr(CliRunner, "invoke", checked)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "peek" / "state.db"


@pytest.fixture
def hs() -> Iterator[FakeHomeserver]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeHomeserver(rsps).install()


@pytest.fixture
def peek(state_file: Path) -> Any:
    """Run the CLI in-process with the test's state file; returns click's Result."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli,
            [*args, "--state-file", str(state_file)]
            if args and args[0] in ("watch", "snapshot")
            else list(args),
            input=input,
            env=env,
            catch_exceptions=False,
        )

    return run


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    """A started hostile server, stopped (with every reply it is writing) after the test."""
    server = HostileServer().start()
    try:
        yield server
    finally:
        server.close()
