"""A real Synapse homeserver for tests and local development.

``Homeserver`` writes a minimal, offline configuration (SQLite, loopback listener, no federation
key servers, generous rate limits, no presence, cheap password hashing) into a work directory,
runs Synapse as a subprocess and offers a few client-API helpers for seeding rooms.

Run ``python -m tests.homeserver`` to get a throwaway server with a world-readable ``#lobby`` room
to point ``peek`` at.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

__all__ = ["Homeserver", "MatrixRequestError", "User"]

_GENEROUS = {"per_second": 1000, "burst_count": 10000}
_STARTUP_TIMEOUT = 60.0
_REQUEST_TIMEOUT = 30.0


def _q(value: str) -> str:
    """Quote one path segment (room ids, aliases, event ids, user ids)."""
    return quote(value, safe="")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM Synapse if the process that started it dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 == PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path.name}: not written>"
    return "\n".join(text.splitlines()[-lines:]) or f"<{path.name}: empty>"


class MatrixRequestError(RuntimeError):
    """A client-API call answered with a non-2xx status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body}")
        self.status = status
        self.body = body

    @property
    def errcode(self) -> str | None:
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data.get("errcode") if isinstance(data, dict) else None


@dataclass(frozen=True)
class User:
    user_id: str
    access_token: str
    device_id: str | None
    password: str | None


class Homeserver:
    """One Synapse process with its config, SQLite database and logs in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        guest_access: bool = True,
        extra_config: dict[str, Any] | None = None,
        server_name: str = "localhost",
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.guest_access = guest_access
        self.extra_config = dict(extra_config or {})
        self.server_name = server_name
        self.port = port
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout: Any = None
        self._http = requests.Session()

    # -- paths -------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.workdir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (WARNING and above)."""
        return self.workdir / "homeserver.log"

    @property
    def stdout_path(self) -> Path:
        """The subprocess's stdout/stderr (tracebacks from a failed start end up here)."""
        return self.workdir / "synapse.out"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("Homeserver has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        """Secrets stay the same across restarts of the same workdir."""
        path = self.workdir / "secrets.json"
        if path.exists():
            return dict(json.loads(path.read_text()))
        values = {
            "registration_shared_secret": secrets.token_urlsafe(32),
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
        }
        path.write_text(json.dumps(values))
        return values

    def _write_config(self) -> None:
        assert self.port is not None
        log_config = {
            "version": 1,
            "formatters": {
                "precise": {"format": "%(asctime)s %(name)s %(lineno)d %(levelname)s %(message)s"}
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        log_config_path = self.workdir / "log.config"
        log_config_path.write_text(json.dumps(log_config, indent=2))

        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(self.workdir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client", "federation"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.workdir / "homeserver.db")},
            },
            "log_config": str(log_config_path),
            "media_store_path": str(self.workdir / "media_store"),
            "signing_key_path": str(self.workdir / "signing.key"),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "enable_metrics": False,
            "url_preview_enabled": False,
            # Presence and the user directory are work on every request and event that no
            # peek feature reads; off, Synapse takes events measurably cheaper (the room directory
            # needs the room stats, which stay on).
            "presence": {"enabled": False},
            "user_directory": {"enabled": False},
            # bcrypt's default 12 rounds cost ~0.3 s of CPU per registration or password login.
            "bcrypt_rounds": 4,
            "allow_guest_access": self.guest_access,
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "alias_creation_rules": [{"action": "allow"}],
            "room_list_publication_rules": [{"action": "allow"}],
            "rc_message": _GENEROUS,
            "rc_registration": _GENEROUS,
            "rc_registration_token_validity": _GENEROUS,
            "rc_login": {
                "address": _GENEROUS,
                "account": _GENEROUS,
                "failed_attempts": _GENEROUS,
            },
            "rc_admin_redaction": _GENEROUS,
            "rc_joins": {"local": _GENEROUS, "remote": _GENEROUS},
            "rc_joins_per_room": _GENEROUS,
            "rc_3pid_validation": _GENEROUS,
            "rc_invites": {
                "per_room": _GENEROUS,
                "per_user": _GENEROUS,
                "per_issuer": _GENEROUS,
            },
            "rc_third_party_invite": _GENEROUS,
            "rc_media_create": _GENEROUS,
            "rc_presence": {"per_user": _GENEROUS},
            "rc_delayed_event_mgmt": _GENEROUS,
            "rc_room_creation": _GENEROUS,
            "rc_reports": _GENEROUS,
            "rc_user_directory": _GENEROUS,
            "rc_profile": _GENEROUS,
            **self._secrets(),
        }
        config.update(self.extra_config)
        # JSON is valid YAML, and Synapse reads its config with a YAML loader.
        self.config_path.write_text(json.dumps(config, indent=2))

    def start(self) -> None:
        """Start Synapse and wait until the client API answers (raises RuntimeError if not)."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = _free_port()
        self._write_config()
        began = time.monotonic()
        self._stdout = open(self.stdout_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            self._wait_until_ready(began + _STARTUP_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._proc is not None
        url = f"{self.base_url}/_matrix/client/versions"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"Synapse exited with status {code} during startup\n{self._logs()}"
                )
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Synapse did not answer {url} within {_STARTUP_TIMEOUT:.0f}s\n{self._logs()}"
                )
            time.sleep(0.1)

    def _logs(self) -> str:
        return (
            f"--- {self.stdout_path} ---\n{_tail(self.stdout_path)}\n"
            f"--- {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM Synapse, wait for it, SIGKILL it if it will not go."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        self._http.close()
        self._http = requests.Session()  # no pooled connections to the old process

    def restart(self) -> None:
        """Stop and start again on the same port, database and keys."""
        self.stop()
        self.start()

    def __enter__(self) -> Homeserver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client API --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        user: User | None = None,
        json_body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call the client API; raise MatrixRequestError on a non-2xx answer."""
        headers = {"Authorization": f"Bearer {user.access_token}"} if user else {}
        resp = self._http.request(
            method,
            self.base_url + path,
            headers=headers,
            json=json_body,
            params=params,
            timeout=_REQUEST_TIMEOUT,
        )
        if not 200 <= resp.status_code < 300:
            raise MatrixRequestError(method, path, resp.status_code, resp.text)
        data = resp.json() if resp.content else {}
        return data if isinstance(data, dict) else {"data": data}

    def register_user(self, localpart: str, password: str | None = None) -> User:
        password = password if password is not None else f"pw-{localpart}"
        body: dict[str, Any] = {
            "username": localpart,
            "password": password,
            "auth": {"type": "m.login.dummy"},
        }
        path = "/_matrix/client/v3/register"
        try:
            data = self.request("POST", path, json_body=body)
        except MatrixRequestError as err:
            try:
                session = json.loads(err.body).get("session") if err.status == 401 else None
            except ValueError:
                session = None
            if not session:
                raise
            body["auth"]["session"] = session
            data = self.request("POST", path, json_body=body)
        return User(data["user_id"], data["access_token"], data.get("device_id"), password)

    def register_guest(self) -> User:
        data = self.request(
            "POST", "/_matrix/client/v3/register", params={"kind": "guest"}, json_body={}
        )
        return User(data["user_id"], data["access_token"], data.get("device_id"), None)

    def login(self, localpart: str, password: str | None = None) -> User:
        password = password if password is not None else f"pw-{localpart}"
        data = self.request(
            "POST",
            "/_matrix/client/v3/login",
            json_body={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
            },
        )
        return User(data["user_id"], data["access_token"], data.get("device_id"), password)

    def create_room(
        self,
        user: User,
        *,
        world_readable: bool = True,
        name: str | None = None,
        topic: str | None = None,
        alias_localpart: str | None = None,
        preset: str = "public_chat",
        publish: bool = False,
    ) -> str:
        """Create a room; `publish` also lists it in the public room directory."""
        initial_state: list[dict[str, Any]] = [
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable" if world_readable else "shared"},
            }
        ]
        if world_readable:
            initial_state.append(
                {
                    "type": "m.room.guest_access",
                    "state_key": "",
                    "content": {"guest_access": "can_join"},
                }
            )
        body: dict[str, Any] = {"preset": preset, "initial_state": initial_state}
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        if alias_localpart is not None:
            body["room_alias_name"] = alias_localpart
        if publish:
            body["visibility"] = "public"
        data = self.request("POST", "/_matrix/client/v3/createRoom", user=user, json_body=body)
        return str(data["room_id"])

    def resolve_alias(self, alias: str) -> str:
        data = self.request("GET", f"/_matrix/client/v3/directory/room/{_q(alias)}")
        return str(data["room_id"])

    def send_event(self, user: User, room_id: str, type: str, content: dict[str, Any]) -> str:
        txn = uuid.uuid4().hex
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/send/{_q(type)}/{txn}"
        return str(self.request("PUT", path, user=user, json_body=content)["event_id"])

    def send_text(self, user: User, room_id: str, body: str) -> str:
        return self.send_event(user, room_id, "m.room.message", {"msgtype": "m.text", "body": body})

    def send_state(
        self,
        user: User,
        room_id: str,
        type: str,
        content: dict[str, Any],
        state_key: str = "",
    ) -> str:
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/state/{_q(type)}/{_q(state_key)}"
        return str(self.request("PUT", path, user=user, json_body=content)["event_id"])

    def join(self, user: User, room_id_or_alias: str) -> str:
        path = f"/_matrix/client/v3/join/{_q(room_id_or_alias)}"
        return str(self.request("POST", path, user=user, json_body={})["room_id"])

    def redact(self, user: User, room_id: str, event_id: str, reason: str | None = None) -> str:
        txn = uuid.uuid4().hex
        path = f"/_matrix/client/v3/rooms/{_q(room_id)}/redact/{_q(event_id)}/{txn}"
        body = {"reason": reason} if reason is not None else {}
        return str(self.request("PUT", path, user=user, json_body=body)["event_id"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.homeserver",
        description="Run a local Synapse with a world-readable #lobby room for trying out peek.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dir", type=Path, default=Path(".peek-dev"), help="default: .peek-dev/")
    where.add_argument("--tmp", action="store_true", help="use a throwaway temporary directory")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also run `peek watch` on the lobby while alice says something every few seconds",
    )
    args = parser.parse_args(argv)

    if args.tmp:
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="peek-dev-"))
    else:
        workdir = args.dir
    # Turn SIGTERM/SIGHUP into a normal exit so that the finally clause stops Synapse.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: sys.exit(0))
    hs = Homeserver(workdir, port=args.port)
    print(f"Starting Synapse in {hs.workdir} ...", flush=True)
    hs.start()
    try:
        alias = f"#lobby:{hs.server_name}"
        try:
            alice = hs.register_user("alice")
        except MatrixRequestError as err:
            if err.errcode != "M_USER_IN_USE":
                raise
            alice = hs.login("alice")  # reusing an existing --dir
        try:
            room_id = hs.resolve_alias(alias)
        except MatrixRequestError as err:
            if err.status != 404:
                raise
            room_id = hs.create_room(alice, name="peek lobby", alias_localpart="lobby")
            for text in (
                "Welcome to the peek lobby!",
                "This room is world-readable: peek can follow it without joining.",
                "Send messages with the curl command printed in the terminal.",
            ):
                hs.send_text(alice, room_id, text)

        print(banner(hs, alice, room_id, alias), flush=True)
        if args.demo:
            return _demo(hs, alice, room_id, alias)
        while hs.running:
            time.sleep(1)
        print("Synapse exited unexpectedly; see the logs above.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping Synapse ...", flush=True)
        return 0
    finally:
        hs.stop()


def peek_command(cwd: Path | None = None) -> list[str]:
    """How to run this checkout's `peek` from the current directory, as a shell would take it:
    `peek` when that is the one on PATH, else the venv's script (`.venv/bin/peek`), which works
    before the venv is activated."""
    import shutil

    script = Path(sys.executable).with_name("peek")
    if not script.exists():
        return [sys.executable, "-m", "peekcli"]
    found = shutil.which("peek")
    if found and Path(found).resolve() == script.resolve():
        return ["peek"]
    try:
        return [str(script.absolute().relative_to((cwd or Path.cwd()).absolute()))]
    except ValueError:
        return [str(script.absolute())]


def banner(
    hs: Homeserver, alice: User, room_id: str, alias: str, *, cwd: Path | None = None
) -> str:
    """What `python -m tests.homeserver` prints: each command works as printed (shell-quoted)."""
    import shlex

    watch = shlex.join([*peek_command(cwd), "watch", alias, "--homeserver", hs.base_url])
    send_url = (
        f"{hs.base_url}/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message/$(date +%s%N)"
    )
    return f"""
Synapse is running ({hs.startup_seconds or 0:.1f}s to start); logs in {hs.workdir}

  homeserver:   {hs.base_url}
  room id:      {room_id}
  alias:        {alias}
  alice token:  {alice.access_token}

Watch the room:
  {watch}

Say something as alice:
  curl -X PUT -H 'Authorization: Bearer {alice.access_token}' \\
    -d '{{"msgtype": "m.text", "body": "hello from curl"}}' \\
    "{send_url}"

Press Ctrl-C to stop."""


def _demo(hs: Homeserver, alice: User, room_id: str, alias: str) -> int:
    """Follow the lobby with the real `peek` while a thread keeps the conversation going."""
    import shlex
    import subprocess
    import threading

    stop = threading.Event()

    def chatter() -> None:
        n = 0
        while not stop.wait(3.0):
            n += 1
            try:
                hs.send_text(alice, room_id, f"demo message {n} at {time.strftime('%H:%M:%S')}")
            except Exception:  # the server is going away: the demo is over
                return

    cmd = [*peek_command(), "watch", alias, "--homeserver", hs.base_url]
    env = {**os.environ, "PEEK_STATE_FILE": str(hs.workdir / "peek-state.json")}
    print(f"\n$ {shlex.join(cmd)}\n", flush=True)
    threading.Thread(target=chatter, daemon=True).start()
    child = subprocess.Popen(cmd, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        return child.wait()
    finally:
        stop.set()


if __name__ == "__main__":
    sys.exit(main())
