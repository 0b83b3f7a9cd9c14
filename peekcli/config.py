"""The optional config file: a default homeserver (and a token for it) for every command.

`config.toml` in the user config dir (`~/.config/peek/config.toml` on Linux), or the file named
by `PEEK_CONFIG`:

    homeserver = "https://matrix.example.org"
    token = "syt_…"          # optional; sent only to `homeserver`

Precedence is option > environment variable > config file: the options' own env vars are merged
by click, so the config only fills what both left open. The token is tied to the config's
homeserver: it is never sent to a server that a room or `--homeserver` chose instead.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from peekcli.errors import PeekError


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    homeserver: str | None = None
    token: str | None = None


def config_path() -> Path:
    env = os.environ.get("PEEK_CONFIG")
    if env:
        return Path(env)
    import platformdirs

    return platformdirs.user_config_path("peek") / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """Read the config; a missing default file is an empty config, a broken one an error."""
    explicit = path is not None or bool(os.environ.get("PEEK_CONFIG"))
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise PeekError(f"config file {path} does not exist (PEEK_CONFIG)") from None
        return Config()
    except OSError as exc:
        raise PeekError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PeekError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, str] = {}
    for key in ("homeserver", "token"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise PeekError(f"config file {path}: {key} must be a non-empty string")
        if value is not None:
            values[key] = value.strip()
    if "token" in values:
        if "homeserver" not in values:
            raise PeekError(f"config file {path}: a token needs the homeserver it belongs to")
        from peekcli.tokens import is_valid_token

        if not is_valid_token(values["token"]):
            raise PeekError(
                f"config file {path}: the token is not usable (printable ASCII, no spaces)"
            )
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PeekError(
                f"config file {path} holds a token but others can read it: chmod 600 {path}"
            )
    return Config(path, values.get("homeserver"), values.get("token"))
