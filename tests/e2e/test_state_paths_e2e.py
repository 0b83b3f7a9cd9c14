"""A read-only state folder: commands that only read still work (`peek info` used to fail with
"cannot open …credentials.json.lock", a file the user never named; `peek rooms NAME` and
`peek doctor NAME` with "cannot write …/.state.json.x8k2.db" while caching what discovery found).
A value that cannot be saved (the discovery cache, an alias, a guest) is kept for that run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.peekproc import peek_command, peek_env, run_peek
from tests.e2e.tlsfront import TlsFront
from tests.homeserver import Homeserver, User

NOBODY = 65534


def as_a_reader(
    folder: Path, *args: str, state_file: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """`peek ARGS` by a user who may read `folder` but not write to it (its owner after
    `chmod a-w`; under root, which ignores modes, the user nobody owning a 0500 folder)."""
    command = [*peek_command(), *args]
    if os.geteuid() == 0:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    folder.chmod(0o500)
    try:
        return subprocess.run(
            command,
            env={**peek_env(state_file, **env), "HOME": str(folder)},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        folder.chmod(0o700)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A state folder the other user can reach (pytest's own tmp folders are 0700)."""
    base = Path(tempfile.mkdtemp(prefix="peek-ro-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base / "state"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_info_works_in_a_read_only_state_folder(
    synapse: Homeserver, world_room: str, folder: Path
) -> None:
    folder.mkdir()
    state = folder / "state.json"
    result = as_a_reader(
        folder, "info", world_room, "-s", synapse.base_url, "--json", state_file=state
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"]["as"] == "guest"
    assert "lock" not in result.stderr and "credentials" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == []  # nothing written


def test_info_after_a_snapshot_in_a_now_read_only_folder(
    synapse: Homeserver, world_room: str, folder: Path
) -> None:
    folder.mkdir()
    state = folder / "state.json"
    first = run_peek("snapshot", world_room, "-s", synapse.base_url, "--json", state_file=state)
    assert first.returncode == 0, first.stderr
    result = as_a_reader(folder, "info", world_room, "-s", synapse.base_url, state_file=state)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def front(synapse: Homeserver, folder: Path) -> Iterator[TlsFront]:
    """Synapse behind https://127.0.0.1:PORT, so that `127.0.0.1:PORT` is a server name that
    discovery finds (its certificate beside the state folder, readable by the other user)."""
    folder.parent.mkdir(exist_ok=True)
    with TlsFront(synapse.base_url, folder.parent) as tls:
        yield tls


@pytest.mark.parametrize("before", ["an empty folder", "a snapshot"])
def test_rooms_and_doctor_given_a_server_name_work_in_a_read_only_state_folder(
    synapse: Homeserver, alice: User, folder: Path, front: TlsFront, before: str
) -> None:
    folder.mkdir()
    state = folder / "state.json"
    tag = f"ro{os.getpid()}x{len(before)}"
    room = synapse.create_room(alice, name=f"Read-only {tag}", alias_localpart=tag, publish=True)
    alias = f"#{tag}:{synapse.server_name}"
    if before == "a snapshot":  # a state and a stored guest exist, for another homeserver URL
        first = run_peek("snapshot", room, "-s", synapse.base_url, "--json", state_file=state)
        assert first.returncode == 0, first.stderr
    files = sorted(p.name for p in folder.iterdir())
    trust = {"REQUESTS_CA_BUNDLE": str(front.ca_bundle)}

    rooms = as_a_reader(folder, "rooms", front.name, "--search", tag, state_file=state, **trust)
    assert (rooms.returncode, rooms.stderr) == (0, "")
    assert rooms.stdout.split("\t")[:3] == [alias, "1", "yes"]

    doctor = as_a_reader(folder, "doctor", front.name, "--room", alias, state_file=state, **trust)
    assert (doctor.returncode, doctor.stderr) == (0, ""), doctor.stdout
    assert f"discovery           {front.name} → {front.url}" in doctor.stdout
    assert f"test room           {alias} = {room} (given)" in doctor.stdout
    assert sorted(p.name for p in folder.iterdir()) == files  # nothing written
