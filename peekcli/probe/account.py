"""The user's own identity where a probe needs it: `info` and `doctor` ask as that user when
there is one, and as a guest only otherwise."""

from __future__ import annotations

from peekcli.auth import Identity, choose_identity
from peekcli.connect import Server


def own_identity(places: Server, token: str | None) -> Identity | None:
    """The user's own identity (`--token`, config, or a stored login), or None: not a guest."""
    if token or places.creds.get(places.client.base_url, "login") is not None:
        identity, _ = choose_identity(places.client, places.creds, token=token)
        return identity
    return None
