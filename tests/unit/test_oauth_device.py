"""`peek login` on an OAuth 2.0 server (the Matrix Authentication Service, as on matrix.org):
dynamic client registration, the device authorization grant with the spec's request and reply
shapes, the `refresh_token` grant during a watch, and revocation at logout."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from peekcli import retry
from peekcli.matrix import oauth
from tests.unit.conftest import lines
from tests.unit.mockhs import HS, ROOM, message
from tests.unit.test_auth import AuthHomeserver, creds_path, stored

AUTH = "https://auth.hs.test"
METADATA = {
    "issuer": f"{AUTH}/",
    "authorization_endpoint": f"{AUTH}/authorize",
    "token_endpoint": f"{AUTH}/oauth2/token",
    "registration_endpoint": f"{AUTH}/oauth2/registration",
    "device_authorization_endpoint": f"{AUTH}/oauth2/device",
    "revocation_endpoint": f"{AUTH}/oauth2/revoke",
    "response_types_supported": ["code"],
    "response_modes_supported": ["query", "fragment"],
    "grant_types_supported": [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
    ],
    "code_challenge_methods_supported": ["S256"],
}
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def form(request: Any) -> dict[str, str]:
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    return {k: v[0] for k, v in parse_qs(body).items()}


def oauth_error(error: str, description: str | None = None) -> tuple[int, dict[str, str], str]:
    body = {"error": error} | ({"error_description": description} if description else {})
    return 400, {}, json.dumps(body)


@dataclass
class AuthServer:
    """A scripted OAuth 2.0 authorization server in front of the fake homeserver."""

    hs: AuthHomeserver
    registrations: list[dict[str, Any]] = field(default_factory=list)
    device_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    revocations: list[dict[str, str]] = field(default_factory=list)
    #: what the device-code polls get, in order; "approve" issues tokens
    device_script: list[str] = field(default_factory=lambda: ["approve"])
    device_reply: dict[str, Any] = field(
        default_factory=lambda: {
            "device_code": "dev-code-1",
            "user_code": "ABCD-1234",
            "verification_uri": f"{AUTH}/link",
            "verification_uri_complete": f"{AUTH}/link?code=ABCD-1234",
            "expires_in": 600,
            "interval": 5,
        }
    )
    live_refresh: dict[str, str] = field(default_factory=dict)  # refresh token → device id
    known_clients: set[str] = field(default_factory=set)
    issued: int = 0

    def install(self) -> AuthServer:
        rsps = self.hs.rsps
        rsps.replace(responses.GET, f"{HS}/_matrix/client/v1/auth_metadata", json=METADATA)
        rsps.add_callback(
            responses.POST, METADATA["registration_endpoint"], callback=self._register
        )
        rsps.add_callback(responses.POST, METADATA["device_authorization_endpoint"], self._device)
        rsps.add_callback(responses.POST, METADATA["token_endpoint"], callback=self._token)
        rsps.add_callback(responses.POST, METADATA["revocation_endpoint"], self._revoke)
        return self

    def _register(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.registrations.append(json.loads(request.body))
        client_id = f"client-{len(self.registrations)}"
        self.known_clients.add(client_id)
        return 201, {}, json.dumps({"client_id": client_id, **self.registrations[-1]})

    def _device(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.device_requests.append(form(request))
        if form(request)["client_id"] not in self.known_clients:
            return oauth_error("invalid_client")
        return 200, {}, json.dumps(self.device_reply)

    def _issue(self, device_id: str) -> dict[str, Any]:
        self.issued += 1
        access, refresh = f"mat-{self.issued}", f"mar-{self.issued}"
        self.hs.sessions[access] = ("@alice:hs.test", device_id)
        self.live_refresh[refresh] = device_id
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "urn:matrix:client:api:*",
        }

    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:
        data = form(request)
        self.token_requests.append(data)
        if data["grant_type"] == DEVICE_GRANT:
            step = self.device_script.pop(0)
            if step == "down":
                raise requests.exceptions.ConnectionError("Connection refused")
            if step != "approve":
                return oauth_error(step)
            scope = self.device_requests[-1]["scope"].split()
            device = next(s for s in scope if s.startswith("urn:matrix:client:device:"))
            return 200, {}, json.dumps(self._issue(device.rsplit(":", 1)[1]))
        if data["grant_type"] == "refresh_token":
            device_id = self.live_refresh.pop(data["refresh_token"], None)
            if device_id is None:
                return oauth_error("invalid_grant", "refresh token already used")
            return 200, {}, json.dumps(self._issue(device_id))
        return oauth_error("unsupported_grant_type")

    def _revoke(self, request: Any) -> tuple[int, dict[str, str], str]:
        data = form(request)
        self.revocations.append(data)
        device = (
            self.live_refresh.pop(data["token"], None)
            or self.hs.sessions.get(data["token"], (None, None))[1]
        )
        for token in [t for t, who in self.hs.sessions.items() if who[1] == device]:
            self.hs.expire(token)
        return 200, {}, ""


@pytest.fixture
def server() -> Iterator[AuthServer]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield AuthServer(AuthHomeserver(rsps).install()).install()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The device-flow poll's sleeps, recorded instead of waited; the clock follows them."""
    slept: list[float] = []
    monkeypatch.setattr(oauth, "sleep", slept.append)
    monkeypatch.setattr(oauth, "clock", lambda: sum(slept))
    return slept


def login(peek, state_file: Path, *args: str) -> Any:
    return peek("login", HS, *args, "--state-file", str(state_file))


def test_device_login_registers_peek_and_polls_until_approved(
    server: AuthServer, sleeps: list[float], peek, state_file: Path
) -> None:
    server.device_script = [
        "authorization_pending",
        "slow_down",
        "authorization_pending",
        "approve",
    ]
    result = login(peek, state_file)
    assert result.exit_code == 0, result.stderr

    # What the user sees: where to go, the code, and then who they are. No token anywhere.
    assert f"{AUTH}/link?code=ABCD-1234" in result.stderr and "ABCD-1234" in result.stderr
    device_id = stored(state_file)["login"]["device_id"]
    assert result.stdout == f"Logged in to {HS} as @alice:hs.test (device {device_id}).\n"
    assert "mat-1" not in result.stdout + result.stderr
    assert "mar-1" not in result.stdout + result.stderr

    # Dynamic client registration: a public native client for the device and refresh grants.
    (registration,) = server.registrations
    assert registration["application_type"] == "native"
    assert registration["token_endpoint_auth_method"] == "none"
    assert set(registration["grant_types"]) == {DEVICE_GRANT, "refresh_token"}
    assert registration["client_uri"].startswith("https://")
    assert registration["client_name"] == "peek"

    # The device authorization request: the client id and the spec's Matrix scopes.
    (device_request,) = server.device_requests
    assert device_request["client_id"] == "client-1"
    scopes = device_request["scope"].split()
    assert "urn:matrix:client:api:*" in scopes
    assert f"urn:matrix:client:device:{device_id}" in scopes
    assert re.fullmatch(r"[A-Z0-9]{10,}", device_id)

    # Polling: every `interval` seconds, 5 s more after slow_down, the device-code grant.
    assert sleeps == [5, 5, 10, 10]
    assert all(
        r == {"grant_type": DEVICE_GRANT, "device_code": "dev-code-1", "client_id": "client-1"}
        for r in server.token_requests
    )

    login_entry = stored(state_file)["login"]
    assert login_entry["method"] == "oauth" and login_entry["user_id"] == "@alice:hs.test"
    assert (login_entry["access_token"], login_entry["refresh_token"]) == ("mat-1", "mar-1")
    assert login_entry["client_id"] == "client-1"
    assert login_entry["token_endpoint"] == METADATA["token_endpoint"]
    assert isinstance(login_entry["expires_at"], float)
    assert stat.S_IMODE(os.stat(creds_path(state_file)).st_mode) == 0o600


def test_client_registration_is_reused_and_a_new_login_ends_the_old_session(
    server: AuthServer, sleeps: list[float], peek, state_file: Path
) -> None:
    server.device_script = ["approve", "approve"]
    assert login(peek, state_file).exit_code == 0
    second = login(peek, state_file)
    assert second.exit_code == 0, second.stderr
    assert len(server.registrations) == 1
    assert [r["client_id"] for r in server.device_requests] == ["client-1", "client-1"]
    assert "replaces the earlier login" in second.stderr
    assert {r["token"] for r in server.revocations} == {"mat-1", "mar-1"}
    assert stored(state_file)["login"]["access_token"] == "mat-2"


def test_forgotten_client_registration_is_made_again(
    server: AuthServer, sleeps: list[float], peek, state_file: Path
) -> None:
    server.device_script = ["approve", "approve"]
    assert login(peek, state_file).exit_code == 0
    server.known_clients.clear()  # the server lost peek's registration
    result = login(peek, state_file)
    assert result.exit_code == 0, result.stderr
    assert stored(state_file)["login"]["client_id"] == "client-2"
    assert stored(state_file)["oauth_client"]["client_id"] == "client-2"


@pytest.mark.parametrize(
    ("error", "said"),
    [("access_denied", "denied in the browser"), ("expired_token", "code expired")],
)
def test_denied_or_expired_code_ends_the_login_and_stores_nothing(
    server: AuthServer, sleeps: list[float], peek, state_file: Path, error: str, said: str
) -> None:
    server.device_script = ["authorization_pending", error]
    result = login(peek, state_file)
    assert result.exit_code == 1
    assert said in result.stderr.splitlines()[-1]
    assert "login" not in stored(state_file)
    assert len(sleeps) == 2


def test_code_lifetime_is_honoured_without_the_server_saying_so(
    server: AuthServer, sleeps: list[float], peek, state_file: Path
) -> None:
    server.device_reply = {**server.device_reply, "expires_in": 12}
    del server.device_reply["interval"]  # RFC 8628 default: 5 s
    server.device_script = ["authorization_pending"] * 10
    result = login(peek, state_file)
    assert result.exit_code == 1 and "code expired" in result.stderr
    assert sleeps == [5, 5]


def test_open_flag_opens_the_approval_page(
    server: AuthServer, sleeps: list[float], peek, state_file: Path, monkeypatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    server.device_script = ["approve", "approve"]
    assert login(peek, state_file).exit_code == 0
    assert opened == []  # only when asked
    assert login(peek, state_file, "--open").exit_code == 0
    assert opened == [f"{AUTH}/link?code=ABCD-1234"]


@pytest.mark.parametrize(
    "uri", ["file:///etc/passwd", "javascript:alert(1)", "http://evil.test/link", "ms-foo:x"]
)
def test_open_flag_never_hands_a_non_https_page_to_the_browser(
    server: AuthServer, sleeps: list[float], peek, state_file: Path, monkeypatch, uri: str
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    server.device_reply["verification_uri_complete"] = uri
    result = login(peek, state_file, "--open")
    assert result.exit_code == 0, result.stderr
    assert opened == []
    assert "not opening a browser" in result.stderr and uri in result.stderr


def test_password_options_on_an_oauth_only_server_say_how_to_log_in(
    server: AuthServer, peek, state_file: Path
) -> None:
    server.hs.flows = []
    result = login(peek, state_file, "-u", "alice")
    assert result.exit_code == 1
    assert "no password login" in result.stderr and "without -u" in result.stderr


def test_expired_access_token_is_renewed_with_the_refresh_token_grant(
    server: AuthServer, sleeps: list[float], peek, state_file: Path
) -> None:
    assert login(peek, state_file).exit_code == 0
    hs = server.hs
    hs.chain([message(1)], [message(2)])
    first = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "1")
    assert [e["event_id"] for e in lines(first)] == ["$ev1"]
    hs.expire("mat-1")
    second = peek("snapshot", ROOM, "-s", HS, "--json")
    assert second.exit_code == 0, second.stderr
    assert [e["event_id"] for e in lines(second)] == ["$ev2"]
    refresh = server.token_requests[-1]
    assert refresh == {
        "grant_type": "refresh_token",
        "refresh_token": "mar-1",
        "client_id": "client-1",
    }
    entry = stored(state_file)["login"]
    assert (entry["access_token"], entry["refresh_token"]) == ("mat-2", "mar-2")
    assert hs.guests == 0


def test_refused_refresh_means_logged_out(
    server: AuthServer, sleeps: list[float], peek, state_file: Path
) -> None:
    assert login(peek, state_file).exit_code == 0
    server.live_refresh.clear()  # e.g. the session was ended in the account settings
    server.hs.expire("mat-1")
    server.hs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 5
    assert "logged out of https://hs.test" in result.stderr and "invalid_grant" in result.stderr
    assert "mar-1" not in result.stderr


def test_logout_revokes_at_the_revocation_endpoint(
    server: AuthServer, sleeps: list[float], peek, state_file: Path
) -> None:
    assert login(peek, state_file).exit_code == 0
    result = peek("logout", "hs.test", "--state-file", str(state_file))
    assert result.exit_code == 0, result.stderr
    assert [(r["token"], r["token_type_hint"], r["client_id"]) for r in server.revocations] == [
        ("mar-1", "refresh_token", "client-1"),
        ("mat-1", "access_token", "client-1"),
    ]
    assert "mat-1" not in server.hs.sessions
    assert "login" not in stored(state_file)
    assert stored(state_file)["oauth_client"]["client_id"] == "client-1"  # kept for next time


def test_metadata_with_insecure_endpoints_is_not_trusted() -> None:
    doc = {**METADATA, "token_endpoint": "http://evil.example/token"}
    assert oauth.ServerMetadata.from_doc(doc) is None
    doc = {**METADATA, "device_authorization_endpoint": "http://evil.example/device"}
    meta = oauth.ServerMetadata.from_doc(doc)
    assert meta is not None and not meta.supports_device_grant


def test_a_failing_connection_while_polling_backs_off_like_every_retry(
    server: AuthServer, sleeps: list[float], peek, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8628 §3.5: back off on a failing connection, with peek's one retry policy (1 s, 2 s,
    4 s … up to 60 s), never polling faster than the server's interval."""
    monkeypatch.setattr(retry, "jitter", lambda _lo, hi: hi)
    server.device_script = ["down"] * 7 + ["authorization_pending", "approve"]
    result = login(peek, state_file)
    assert result.exit_code == 0, result.stderr
    assert sleeps == [5, 5, 5, 5, 8, 16, 32, 60, 5]
