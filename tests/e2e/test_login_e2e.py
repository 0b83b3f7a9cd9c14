"""Logins against the real Synapse: guests refused, password and token logins, watching a room
without joining it, whoami, logout, and refresh tokens across several expiries in two processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.peekproc import Watcher, json_lines, peek_command, peek_env, run_peek
from tests.homeserver import Homeserver, MatrixRequestError, User

#: Short enough that a watch lives through several expiries in a few seconds.
TOKEN_LIFETIME = 2.0


def peek_stdin(*args: str, state_file: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    """`peek …` with something on stdin (a password or a token), as a script would pipe it."""
    return subprocess.run(
        [*peek_command(), *args],
        env=peek_env(state_file),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def login(hs: Homeserver, user: User, state_file: Path) -> subprocess.CompletedProcess[str]:
    localpart = user.user_id[1:].split(":")[0]
    args = ("login", hs.base_url, "-u", localpart, "--password-stdin")
    return peek_stdin(*args, state_file=state_file, stdin=f"{user.password}\n")


def membership(hs: Homeserver, viewer: User, room: str, user_id: str) -> str | None:
    """The user's membership in the room as the server has it (None: never a member)."""
    path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/state/m.room.member/"
    try:
        return str(hs.request("GET", path + quote(user_id, safe=""), user=viewer)["membership"])
    except MatrixRequestError as err:
        if err.status == 404:
            return None
        raise


def stored_login(state_file: Path, hs: Homeserver) -> dict:
    doc = json.loads(state_file.with_name("credentials.json").read_text())
    return dict(doc["homeservers"][hs.base_url]["login"])


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e.get("type") == "m.room.message"]


def new_user(hs: Homeserver, prefix: str) -> User:
    return hs.register_user(f"{prefix}{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """A second Synapse like most real ones: no guests; access tokens live two seconds."""
    hs = Homeserver(
        tmp_path_factory.mktemp("strict"),
        guest_access=False,
        extra_config={"refreshable_access_token_lifetime": f"{TOKEN_LIFETIME:.0f}s"},
    )
    hs.start()
    try:
        yield hs
    finally:
        hs.stop()


def test_server_without_guests_says_so_and_what_to_type_next(
    strict: Homeserver, tmp_path: Path
) -> None:
    owner = new_user(strict, "owner")
    room = strict.create_room(owner, world_readable=True)
    result = run_peek(
        "snapshot", room, "--homeserver", strict.base_url, "--json", state_file=tmp_path / "s.json"
    )
    assert result.returncode == 7
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"peek: {strict.base_url} allows no guests")
    assert f"peek login {strict.base_url}" in line and "--token" in line


def test_a_wrong_password_exits_5_and_says_what_was_rejected(
    synapse: Homeserver, tmp_path: Path
) -> None:
    """Synapse answers 403 M_FORBIDDEN; peek used to exit 1, the code of a network failure."""
    user = new_user(synapse, "typo")
    state = tmp_path / "state.json"
    localpart = user.user_id[1:].split(":")[0]
    args = ("login", synapse.base_url, "-u", localpart, "--password-stdin")
    result = peek_stdin(*args, state_file=state, stdin="not-the-password\n")
    assert (result.returncode, result.stdout) == (5, "")
    assert result.stderr == (
        f"peek: {synapse.base_url} refused the login for {localpart}: wrong user name or "
        "password (M_FORBIDDEN)\n"
    )
    assert (
        not (tmp_path / "credentials.json").exists()
        or "login" not in (tmp_path / "credentials.json").read_text()
    )


def test_password_login_watches_a_room_without_joining_it(
    synapse: Homeserver, alice: User, tmp_path: Path
) -> None:
    peeker = new_user(synapse, "peeker")
    room = synapse.create_room(alice, world_readable=True, name="Peeked at")
    synapse.send_text(alice, room, "before")
    state = tmp_path / "state.json"

    result = login(synapse, peeker, state)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Logged in to {synapse.base_url} as {peeker.user_id}")
    assert str(peeker.password) not in result.stdout + result.stderr
    creds_file = tmp_path / "credentials.json"
    assert stat.S_IMODE(os.stat(creds_file).st_mode) == 0o600
    entry = stored_login(state, synapse)
    assert entry["refresh_token"] and entry["expires_at"] > time.time()  # Synapse gave a pair
    assert entry["access_token"] not in result.stdout + result.stderr

    hs = ("--homeserver", synapse.base_url)
    watcher = Watcher.start(room, *hs, "--json", "--history", "1", "--no-guest", state_file=state)
    try:
        assert bodies(watcher.events(1)) == ["before"]
        for i in range(2):
            synapse.send_text(alice, room, f"live {i}")
        assert bodies(watcher.events(2)) == ["live 0", "live 1"]
    finally:
        code, err = watcher.stop(signal.SIGINT)
    assert code == 130, err
    assert entry["access_token"] not in err

    # Peeking changed nobody's membership: the watcher never joined, the owner is still in.
    assert membership(synapse, alice, room, peeker.user_id) is None
    assert membership(synapse, alice, room, alice.user_id) == "join"
    assert "guest" not in json.loads(creds_file.read_text())["homeservers"][synapse.base_url]


def test_whoami_then_logout_ends_the_session_on_the_server(
    synapse: Homeserver, tmp_path: Path
) -> None:
    user = new_user(synapse, "leaver")
    state = tmp_path / "state.json"
    assert login(synapse, user, state).returncode == 0
    token = stored_login(state, synapse)["access_token"]

    me = run_peek("whoami", synapse.base_url, "--json", state_file=state)
    assert me.returncode == 0, me.stderr
    (row,) = json_lines(me.stdout)
    assert row["user_id"] == user.user_id and row["device_id"]
    assert token not in me.stdout + me.stderr

    out = run_peek("logout", state_file=state)
    assert out.returncode == 0, out.stderr
    assert f"Logged out {user.user_id}" in out.stdout and token not in out.stdout
    with pytest.raises(MatrixRequestError) as dead:
        synapse.request(
            "GET", "/_matrix/client/v3/account/whoami", user=User("", token, None, None)
        )
    assert dead.value.status == 401
    creds = json.loads((tmp_path / "credentials.json").read_text())
    assert "login" not in creds["homeservers"][synapse.base_url]
    assert run_peek("whoami", state_file=state).returncode == 5


def test_token_from_another_client_is_checked_stored_and_used(
    synapse: Homeserver, alice: User, world_room: str, tmp_path: Path
) -> None:
    user = new_user(synapse, "tokenuser")
    elsewhere = synapse.login(user.user_id[1:].split(":")[0], user.password)
    state = tmp_path / "state.json"
    result = peek_stdin(
        "login", synapse.base_url, "--token", "-", state_file=state, stdin=elsewhere.access_token
    )
    assert result.returncode == 0, result.stderr
    assert f"as {user.user_id} (device {elsewhere.device_id})" in result.stdout
    synapse.send_text(alice, world_room, "seen with a stored token")
    snap = run_peek(
        "snapshot", world_room, "--homeserver", synapse.base_url, "--json", "--history", "1",
        "--no-guest", state_file=state,
    )  # fmt: skip
    assert snap.returncode == 0, snap.stderr
    assert bodies(json_lines(snap.stdout)) == ["seen with a stored token"]
    bad = peek_stdin("login", synapse.base_url, "--token", "-", state_file=state, stdin="nope\n")
    assert bad.returncode == 5 and "nothing was stored" in bad.stderr
    assert stored_login(state, synapse)["access_token"] == elsewhere.access_token


def test_two_watches_sharing_a_login_live_through_several_expiries(
    strict: Homeserver, tmp_path: Path
) -> None:
    """Tokens expire every 2 s; two peek processes share one login and its single-use refresh
    tokens. Every message arrives exactly once in each, and neither is logged out."""
    owner, peeker = new_user(strict, "owner"), new_user(strict, "peeker")
    rooms = [strict.create_room(owner, world_readable=True) for _ in range(2)]
    state = tmp_path / "state.json"
    assert login(strict, peeker, state).returncode == 0
    first = stored_login(state, strict)
    assert first["expires_at"] - time.time() <= TOKEN_LIFETIME + 1

    # Each watch prints one message of history first: once it has, it is following the room.
    for i, room in enumerate(rooms):
        strict.send_text(owner, room, f"room {i} start")
    args = ("--homeserver", strict.base_url, "--json", "--history", "1", "--no-guest")
    watchers = [Watcher.start(room, *args, "--timeout", "500", state_file=state) for room in rooms]
    sent: list[list[str]] = [[f"room {i} start"] for i in range(2)]
    got: list[list[str]] = [[], []]
    try:
        for i, watcher in enumerate(watchers):
            got[i] += bodies(watcher.events(1, timeout=30))
        for round_ in range(3):
            time.sleep(TOKEN_LIFETIME + 0.5)  # let the access token expire
            for i, room in enumerate(rooms):
                body = f"room {i} round {round_}"
                strict.send_text(owner, room, body)
                sent[i].append(body)
            for i, watcher in enumerate(watchers):
                got[i] += bodies(watcher.events(1, timeout=30))
    finally:
        results = [w.stop(signal.SIGINT) for w in watchers]
    for i, (code, err) in enumerate(results):
        assert code == 130, err
        assert "logged out" not in err and "Traceback" not in err
        got[i] += bodies([json.loads(line) for line in watchers[i].rest()])
    assert got == sent

    last = stored_login(state, strict)
    assert last["refresh_token"] != first["refresh_token"]  # the pair was renewed on the way
    for room in rooms:
        assert membership(strict, owner, room, peeker.user_id) is None


def test_ctrl_c_at_the_password_prompt_ends_its_line(synapse: Homeserver, tmp_path: Path) -> None:
    """In a real terminal: Ctrl-C at "Password:" exits 130, stores nothing, and ends the
    prompt's line, so the shell's next prompt does not start after it."""
    import pty

    command = [*peek_command(), "login", synapse.base_url, "-u", "nobody"]
    env = peek_env(tmp_path / "s.json")
    pid, fd = pty.fork()
    if pid == 0:  # the child: peek on the terminal, as a user starts it
        os.execvpe(command[0], command, env)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"Password:" not in seen and time.monotonic() < deadline:
            seen += os.read(fd, 1024)
        assert b"Password:" in seen, seen
        os.write(fd, b"\x03")  # the terminal turns it into SIGINT for peek at once
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: peek has exited and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130
    after = seen.split(b"Password:", 1)[1]
    assert after.endswith(b"\n") and b"Traceback" not in after, after
    creds = tmp_path / "credentials.json"
    assert not creds.exists() or "login" not in creds.read_text()
