"""Tokens: checked (printable ASCII) before they are stored or sent; given without showing in `ps`.

A guest registration reply, `--token`, `PEEK_ACCESS_TOKEN` or the config can all hand peek a
token with CR/LF or non-ASCII characters; it must neither crash nor end up stored, where it would
break every later run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from peekcli.state import CredentialStore, credentials_path_for
from tests.unit.hostilehs import HostileServer, reply_json

BAD = ["tök€n", "tok\r\nX-Injected: 1", "two words", "tab\there", ""]


def snapshot(peek: Any, hs: HostileServer, *args: str, **kw: Any) -> Any:
    return peek("snapshot", hs.room, "-s", hs.url, "--json", *args, **kw)


def bearers(hs: HostileServer) -> set[str]:
    return {s.headers.get("Authorization", "") for s in hs.seen} - {""}


@pytest.mark.parametrize("token", BAD[:4])
def test_a_guest_token_that_is_not_printable_ascii_is_refused_and_never_stored(
    hostile: HostileServer, peek: Any, state_file: Path, token: str
) -> None:
    guest = {"user_id": "@g:127.0.0.1", "access_token": token}
    hostile.on("POST", "/_matrix/client/v3/register", reply_json(200, guest))
    result = snapshot(peek, hostile)
    assert result.exit_code == 1, result.stderr
    assert "unusable access token" in result.stderr and result.stderr.count("\n") == 1
    assert bearers(hostile) == set()
    creds = credentials_path_for(state_file)
    assert not creds.exists() or token.encode() not in creds.read_bytes()


def test_a_stored_unusable_token_is_never_sent_and_a_new_guest_replaces_it(
    hostile: HostileServer, peek: Any, state_file: Path
) -> None:
    store = CredentialStore(credentials_path_for(state_file))
    store.put(hostile.url, "guest", {"access_token": "old\nbroken", "user_id": "@old:x"})
    result = snapshot(peek, hostile)
    assert result.exit_code == 0, result.stderr
    assert bearers(hostile) == {"Bearer guest-token"}


@pytest.mark.parametrize("token", BAD)
def test_a_bad_given_token_is_a_usage_error_and_is_never_sent(
    hostile: HostileServer, peek: Any, token: str, tmp_path: Path
) -> None:
    results = [snapshot(peek, hostile, "--token", token)]
    if token:  # an empty variable is an unset one
        results.append(snapshot(peek, hostile, env={"PEEK_ACCESS_TOKEN": token}))
    if "\n" not in token:  # a file gives its first line
        file = tmp_path / "token.txt"
        file.write_text(token + "\n")
        results.append(snapshot(peek, hostile, "--token", f"@{file}"))
    for result in results:
        assert result.exit_code == 2, result.stderr
        assert "not usable" in result.stderr
        assert token not in result.stderr or not token
    assert hostile.seen == []


def test_token_from_stdin_and_from_a_file_is_sent_as_bearer_without_a_warning(
    hostile: HostileServer, peek: Any, tmp_path: Path
) -> None:
    file = tmp_path / "token.txt"
    file.write_text("file-token\n")
    from_stdin = snapshot(peek, hostile, "--token", "-", input="stdin-token\n")
    from_file = snapshot(peek, hostile, "--token", f"@{file}")
    for result in (from_stdin, from_file):
        assert result.exit_code == 0, result.stderr
        assert "visible" not in result.stderr
    assert bearers(hostile) == {"Bearer stdin-token", "Bearer file-token"}


def test_a_literal_token_works_but_warns_that_ps_shows_it(
    hostile: HostileServer, peek: Any
) -> None:
    result = snapshot(peek, hostile, "--token", "literal-token")
    assert result.exit_code == 0, result.stderr
    assert "visible to other users (ps)" in result.stderr
    assert "literal-token" not in result.stderr
    assert bearers(hostile) == {"Bearer literal-token"}
    quiet = snapshot(peek, hostile, env={"PEEK_ACCESS_TOKEN": "env-token"})
    assert quiet.exit_code == 0 and "visible" not in quiet.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["watch", "!r:hs.test"],
        ["snapshot", "!r:hs.test"],
        ["export", "!r:hs.test"],
        ["info", "!r:hs.test"],
        ["doctor", "hs.test"],
        ["rooms", "hs.test"],
        ["login", "hs.test"],
    ],
)
def test_every_command_taking_a_token_reads_at_file(
    peek: Any, command: list[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-file"
    result = peek(*command, "--token", f"@{missing}")
    assert result.exit_code == 2, result.stderr
    assert f"cannot read the token file {missing}" in result.stderr


def test_login_reads_a_token_file_and_stores_it(
    hostile: HostileServer, peek: Any, tmp_path: Path, state_file: Path
) -> None:
    file = tmp_path / "token.txt"
    file.write_text("made-elsewhere\n")
    result = peek("login", hostile.url, "--token", f"@{file}", "--state-file", str(state_file))
    assert result.exit_code == 0, result.stderr
    assert bearers(hostile) == {"Bearer made-elsewhere"}
    assert b"made-elsewhere" in credentials_path_for(state_file).read_bytes()
