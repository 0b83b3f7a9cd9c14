"""Shared fixtures: one real Synapse per test session, started only when a test asks for it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.homeserver import Homeserver, User


def scratch_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A work directory on tmpfs (/dev/shm) when there is one: Synapse's SQLite commits then
    cost no fsync, which makes sending thousands of events bound by Synapse's CPU alone."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix=f"peek-test-{name}-", dir=shm))
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """A running Synapse (guest access on). A failed start errors the tests; it never skips."""
    workdir = scratch_dir(tmp_path_factory, "synapse")
    hs = Homeserver(workdir, guest_access=True)
    try:
        hs.start()  # raises RuntimeError with the log tail if Synapse will not come up
        yield hs
    finally:
        hs.stop()
        if workdir.is_relative_to("/dev/shm"):
            shutil.rmtree(workdir, ignore_errors=True)  # tmpfs is memory: never leave it behind


@pytest.fixture(scope="session")
def alice(synapse: Homeserver) -> User:
    return synapse.register_user("alice")


@pytest.fixture(scope="session")
def world_room(synapse: Homeserver, alice: User) -> str:
    """Room id of a world-readable room alice created (name "World", topic "w")."""
    return synapse.create_room(alice, world_readable=True, name="World", topic="w")


@pytest.fixture(scope="session")
def private_room(synapse: Homeserver, alice: User) -> str:
    """Room id of a room with history_visibility "shared": not readable without joining."""
    return synapse.create_room(alice, world_readable=False, name="Private")


@pytest.fixture
def fresh_room(synapse: Homeserver, alice: User) -> Callable[..., str]:
    """Factory: each call creates a new room owned by alice (world-readable unless told)."""

    def make(
        *,
        world_readable: bool = True,
        name: str | None = None,
        topic: str | None = None,
        alias_localpart: str | None = None,
    ) -> str:
        return synapse.create_room(
            alice,
            world_readable=world_readable,
            name=name,
            topic=topic,
            alias_localpart=alias_localpart,
        )

    return make
