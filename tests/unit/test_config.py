"""The config file: default homeserver and token; option > environment > config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import responses

from tests.unit.conftest import lines, saved
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message


@pytest.fixture(autouse=True)
def _no_peek_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEEK_CONFIG", raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Any:
    """Write the default config file (XDG_CONFIG_HOME is the test's own) with `text`."""

    def write(text: str, mode: int = 0o600) -> Path:
        path = tmp_path / "xdg-config" / "peek" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
        return path

    return write


def resolves(hs: FakeHomeserver, alias: str) -> None:
    quoted = alias.replace("#", "%23").replace(":", "%3A")
    hs.rsps.add(
        responses.GET,
        f"{hs.base}/_matrix/client/v3/directory/room/{quoted}",
        json={"room_id": ROOM},
    )


def bearer_tokens(hs: FakeHomeserver) -> set[str]:
    return {c.request.headers.get("Authorization", "") for c in hs.rsps.calls}


def test_config_homeserver_is_the_default(hs: FakeHomeserver, peek: Any, config: Any) -> None:
    config(f'homeserver = "{HS}"\n')
    resolves(hs, "#lobby:far.test")
    hs.chain([message(1)])
    result = peek("snapshot", "#lobby:far.test", "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert not any("far.test/" in c.request.url for c in hs.rsps.calls)  # no discovery


def test_environment_beats_config_and_option_beats_environment(
    hs: FakeHomeserver, peek: Any, config: Any, state_file: Path
) -> None:
    config('homeserver = "https://config.test"\n')
    hs.chain([message(1)])
    env = {"PEEK_HOMESERVER": HS}
    assert peek("snapshot", ROOM, "--json", env=env).exit_code == 0
    assert list(saved(state_file)["positions"]) == [HS]
    opt = peek("snapshot", ROOM, "-s", HS, "--json", env={"PEEK_HOMESERVER": "https://env.test"})
    assert opt.exit_code == 0, opt.stderr
    assert list(saved(state_file)["positions"]) == [HS]


def test_config_token_is_used_for_its_homeserver(
    hs: FakeHomeserver, peek: Any, config: Any
) -> None:
    config(f'homeserver = "{HS}/"\ntoken = "cfg-secret"\n')
    hs.chain([message(1)])
    result = peek("snapshot", ROOM, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert hs.guests == 0
    assert bearer_tokens(hs) == {"Bearer cfg-secret"}
    assert "cfg-secret" not in result.stdout + result.stderr


def test_config_token_never_goes_to_another_server(
    hs: FakeHomeserver, peek: Any, config: Any
) -> None:
    config('homeserver = "https://mine.test"\ntoken = "cfg-secret"\n')
    hs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert hs.guests == 1
    assert "Bearer cfg-secret" not in bearer_tokens(hs)


def test_option_token_beats_config_token(hs: FakeHomeserver, peek: Any, config: Any) -> None:
    config(f'homeserver = "{HS}"\ntoken = "cfg-secret"\n')
    hs.chain([message(1)])
    result = peek("snapshot", ROOM, "--token", "given", "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert bearer_tokens(hs) == {"Bearer given"}


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        (f'homeserver = "{HS}"\ntoken = "t"\n', 0o644, "others can read it: chmod 600"),
        ('token = "t"\n', 0o600, "needs the homeserver"),
        ("homeserver = \n", 0o600, "not valid TOML"),
        ("homeserver = 5\n", 0o600, "homeserver must be a non-empty string"),
    ],
)
def test_broken_config_exits_1_with_one_line(
    peek: Any, config: Any, text: str, mode: int, says: str
) -> None:
    config(text, mode)
    result = peek("snapshot", ROOM, "--json")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert "Traceback" not in result.stderr


def test_peek_config_names_the_file(
    hs: FakeHomeserver, peek: Any, tmp_path: Path, state_file: Path
) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text(f'homeserver = "{HS}"\n')
    hs.chain([message(1)])
    result = peek("snapshot", ROOM, "--json", env={"PEEK_CONFIG": str(path)})
    assert result.exit_code == 0, result.stderr
    assert list(saved(state_file)["positions"]) == [HS]
    missing = peek("snapshot", ROOM, "--json", env={"PEEK_CONFIG": str(tmp_path / "no.toml")})
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
