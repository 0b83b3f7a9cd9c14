"""Identities against a scripted homeserver: guests refused, password and token logins, whoami,
logout, and refresh tokens spent exactly once while the stream goes on from the same position."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from peekcli import auth
from peekcli.matrix.client import MatrixClient
from peekcli.state import CredentialStore
from tests.unit.conftest import lines
from tests.unit.mockhs import HS, ROOM, FakeHomeserver, message

API = f"{HS}/_matrix/client/v3"
UNKNOWN_TOKEN = {
    "errcode": "M_UNKNOWN_TOKEN",
    "error": "Access token has expired",
    "soft_logout": True,
}


@dataclass
class AuthHomeserver(FakeHomeserver):
    """The fake homeserver with real-looking sessions: only live access tokens are accepted."""

    #: live access token → (user id, device id)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: unspent refresh token → (user id, device id)
    refreshable: dict[str, tuple[str, str]] = field(default_factory=dict)
    flows: list[str] = field(default_factory=lambda: ["m.login.password"])
    password: str = "s3cret"
    expires_in_ms: int | None = 60_000
    guest_error: tuple[int, dict[str, Any]] | None = None
    issued: int = 0
    refresh_bodies: list[dict[str, Any]] = field(default_factory=list)
    #: seconds the /refresh handler takes (to make two concurrent refreshes overlap)
    refresh_delay: float = 0.0
    #: how many /refresh calls fail with a connection reset before the server answers
    refresh_outage: int = 0

    def install(self) -> AuthHomeserver:
        super().install()
        add = self.rsps.add_callback
        add(responses.GET, f"{API}/login", callback=self._flows)
        add(responses.POST, f"{API}/login", callback=self._login)
        add(responses.POST, f"{API}/refresh", callback=self._refresh)
        add(responses.POST, f"{API}/logout", callback=self._logout)
        add(responses.GET, f"{API}/account/whoami", callback=self._whoami)
        # Every Matrix server answers /versions at its base URL (peek asks it to tell a wrong
        # URL from a server without guest registration).
        self.rsps.add(responses.GET, f"{HS}/_matrix/client/versions", json={"versions": ["v1.11"]})
        for path in ("v1/auth_metadata", "unstable/org.matrix.msc2965/auth_metadata"):
            self.rsps.add(
                responses.GET,
                f"{HS}/_matrix/client/{path}",
                json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"},
                status=404,
            )
        return self

    def issue(self, user_id: str = "@alice:hs.test", device_id: str = "PEEKDEV") -> dict[str, Any]:
        self.issued += 1
        access, refresh = f"acc-{self.issued}", f"ref-{self.issued}"
        self.sessions[access] = (user_id, device_id)
        self.refreshable[refresh] = (user_id, device_id)
        reply: dict[str, Any] = {"access_token": access, "refresh_token": refresh}
        if self.expires_in_ms is not None:
            reply["expires_in_ms"] = self.expires_in_ms
        return {"user_id": user_id, "device_id": device_id, **reply}

    def expire(self, token: str) -> None:
        self.sessions.pop(token, None)

    # -- handlers ----------------------------------------------------------------------------

    def _who(self, request: Any) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        return self.sessions.get(header.removeprefix("Bearer "))

    def _register(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.guest_error is not None:
            return self.guest_error[0], {}, json.dumps(self.guest_error[1])
        status, headers, body = super()._register(request)
        self.sessions[json.loads(body)["access_token"]] = (f"@guest{self.guests}:hs.test", "DEV")
        return status, headers, body

    def _initial_sync(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self._who(request) is None:
            return 401, {}, json.dumps(UNKNOWN_TOKEN)
        return super()._initial_sync(request)

    def _events(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self._who(request) is None:
            return 401, {}, json.dumps(UNKNOWN_TOKEN)
        return super()._events(request)

    def _flows(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps({"flows": [{"type": t} for t in self.flows]})

    def _login(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        if body.get("password") != self.password:
            error = {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}
            return 403, {}, json.dumps(error)
        user = body["identifier"]["user"]
        user_id = user if user.startswith("@") else f"@{user}:hs.test"
        # Every login is a new device (the first one is PEEKDEV).
        reply = self.issue(user_id, "PEEKDEV" + (str(self.issued + 1) if self.issued else ""))
        if not body.get("refresh_token"):
            del reply["refresh_token"]
        return 200, {}, json.dumps(reply)

    def _refresh(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.refresh_outage:
            self.refresh_outage -= 1
            raise requests.ConnectionError("connection reset")
        body = json.loads(request.body)
        self.refresh_bodies.append(body)
        time.sleep(self.refresh_delay)
        owner = self.refreshable.pop(body.get("refresh_token"), None)
        if owner is None:
            error = {"errcode": "M_UNKNOWN_TOKEN", "error": "refresh token does not exist"}
            return 401, {}, json.dumps(error)
        reply = self.issue(*owner)
        return (
            200,
            {},
            json.dumps({k: reply[k] for k in reply if k not in ("user_id", "device_id")}),
        )

    def _logout(self, request: Any) -> tuple[int, dict[str, str], str]:
        who = self._who(request)
        if who is None:
            return 401, {}, json.dumps(UNKNOWN_TOKEN)
        for live in (self.sessions, self.refreshable):
            for token in [t for t, owner in live.items() if owner == who]:
                del live[token]
        return 200, {}, "{}"

    def _whoami(self, request: Any) -> tuple[int, dict[str, str], str]:
        who = self._who(request)
        if who is None:
            return 401, {}, json.dumps(UNKNOWN_TOKEN)
        return 200, {}, json.dumps({"user_id": who[0], "device_id": who[1]})


@pytest.fixture
def ahs() -> Iterator[AuthHomeserver]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield AuthHomeserver(rsps).install()


def creds_path(state_file: Path) -> Path:
    return state_file.with_name("credentials.json")


def stored(state_file: Path) -> dict[str, Any]:
    return json.loads(creds_path(state_file).read_text())["homeservers"][HS]


def store_login(state_file: Path, reply: dict[str, Any], **extra: Any) -> None:
    """A login as `peek login` would have stored it (password method)."""
    entry = {"method": "password", **reply, **extra}
    entry.pop("expires_in_ms", None)
    CredentialStore(creds_path(state_file)).put(HS, "login", entry)


def auth_headers(calls: list[Any]) -> list[str]:
    return [c.request.headers.get("Authorization", "") for c in calls]


def from_params(calls: list[Any]) -> list[str]:
    from urllib.parse import parse_qs, urlsplit

    return [parse_qs(urlsplit(c.request.url).query)["from"][0] for c in calls]


# -- guests refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {"errcode": "M_GUEST_ACCESS_FORBIDDEN", "error": "Guest access is disabled"}),
        (403, {"errcode": "M_FORBIDDEN", "error": "Guest access is disabled"}),
        (404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}),
        (405, {}),
    ],
)
def test_server_refusing_guests_exits_7_saying_what_to_type_next(
    ahs: AuthHomeserver, peek, status: int, body: dict[str, Any]
) -> None:
    ahs.guest_error = (status, body)
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 7
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    line = result.stderr.strip()
    assert line.startswith("peek: https://hs.test allows no guests")
    assert "`peek login hs.test`" in line and "--token" in line and "PEEK_ACCESS_TOKEN" in line


def test_no_guest_without_a_login_exits_5_and_registers_nobody(ahs: AuthHomeserver, peek) -> None:
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--no-guest")
    assert result.exit_code == 5
    assert "--no-guest" in result.stderr and "peek login hs.test" in result.stderr
    assert ahs.guests == 0


def test_stored_login_is_used_instead_of_a_guest(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())
    ahs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--no-guest")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert ahs.guests == 0
    assert set(auth_headers(ahs.calls("/events"))) == {"Bearer acc-1"}


def test_guest_flag_watches_as_a_guest_even_when_logged_in(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())
    ahs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--guest")
    assert result.exit_code == 0, result.stderr
    assert ahs.guests == 1
    assert set(auth_headers(ahs.calls("/events"))) == {"Bearer guest-token-1"}
    assert stored(state_file)["login"]["access_token"] == "acc-1"  # the login is kept


def test_guest_flag_with_a_typed_token_is_a_usage_error(ahs: AuthHomeserver, peek) -> None:
    result = peek("snapshot", ROOM, "-s", HS, "--guest", "--token", "tok")
    assert result.exit_code == 2 and "exclude each other" in result.stderr


def test_identity_says_who_watches_and_whether_they_joined() -> None:
    assert auth.joined_per({"membership": "join"}) is True
    assert auth.joined_per({"messages": {}}) is False  # no membership: reading as a peek
    assert auth.joined_per(None) is None
    me = auth.Identity("login", "@alice:hs.test", "DEV", joined=False)
    assert me.summary() == "@alice:hs.test, peeking (not joined)"
    assert auth.Identity("guest", "@g:hs.test", joined=True).summary() == "guest @g:hs.test, joined"
    assert auth.Identity("token", "@bob:hs.test").summary() == "@bob:hs.test"


def test_runner_exposes_the_identity_and_its_membership(
    ahs: AuthHomeserver, state_file: Path
) -> None:
    from peekcli.connect import ConnectOptions, open_room
    from peekcli.follow.plan import Delivery, FollowOptions, Start
    from peekcli.follow.upgrades import follow

    store_login(state_file, ahs.issue())
    ahs.history = [message(1)]
    starts: list[Start] = []

    class Sink:
        def write(self, event: Any) -> None: ...
        def flush(self) -> None: ...

        def reader_gone(self) -> bool:
            return False

    session = open_room(ROOM, ConnectOptions(homeserver=HS, state_path=state_file))
    follow(
        session,
        FollowOptions(drain=True, timeout_ms=0),
        Delivery(Sink(), on_start=starts.append),
    )
    (start,) = starts
    assert (start.identity.kind, start.identity.user_id) == ("login", "@alice:hs.test")
    assert start.identity.device_id == "PEEKDEV"
    assert start.identity.joined is False  # initialSync carried no membership


def test_given_token_is_named_by_whoami_and_rejected_early_and_clearly(
    ahs: AuthHomeserver, peek
) -> None:
    ahs.issue("@bob:hs.test", "BOBDEV")
    ahs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--token", "acc-1")
    assert result.exit_code == 0, result.stderr
    bad = peek("snapshot", ROOM, "-s", HS, "--json", "--token", "not-a-token-xyz")
    assert bad.exit_code == 5
    assert "rejected the given token" in bad.stderr
    assert "not-a-token-xyz" not in bad.stderr + bad.stdout
    assert ahs.guests == 0


# -- peek login ----------------------------------------------------------------------------------


def test_password_login_asks_for_a_refresh_token_and_stores_it_privately(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    result = peek(
        "login", HS, "-u", "alice", "--password-stdin", "--state-file", str(state_file),
        input="s3cret\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Logged in to https://hs.test as @alice:hs.test (device PEEKDEV).\n"
    (call,) = ahs.calls("/v3/login")[-1:]
    body = json.loads(call.request.body)
    assert body["type"] == "m.login.password" and body["refresh_token"] is True
    assert body["identifier"] == {"type": "m.id.user", "user": "alice"}
    assert body["password"] == "s3cret"
    login = stored(state_file)["login"]
    assert (login["access_token"], login["refresh_token"]) == ("acc-1", "ref-1")
    assert login["user_id"] == "@alice:hs.test" and login["method"] == "password"
    assert login["expires_at"] > time.time()
    assert stat.S_IMODE(os.stat(creds_path(state_file)).st_mode) == 0o600
    for secret in ("s3cret", "acc-1", "ref-1"):
        assert secret not in result.stdout + result.stderr
    assert b"acc-1" not in (state_file.read_bytes() if state_file.exists() else b"")


def test_password_prompt_does_not_echo(ahs: AuthHomeserver, peek, state_file: Path) -> None:
    result = peek("login", HS, "--state-file", str(state_file), input="alice\ns3cret\n")
    assert result.exit_code == 0, result.stderr
    assert "Password" in result.stderr and "User" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert stored(state_file)["login"]["user_id"] == "@alice:hs.test"


def test_wrong_password_stores_nothing(ahs: AuthHomeserver, peek, state_file: Path) -> None:
    result = peek(
        "login", HS, "-u", "alice", "--password-stdin", "--state-file", str(state_file),
        input="hunter2\n",
    )  # fmt: skip
    assert result.exit_code == 5  # a rejected credential; 1 would say "network failure"
    assert result.stderr.splitlines()[-1] == (
        f"peek: {HS} refused the login for alice: wrong user name or password (M_FORBIDDEN)"
    )
    assert "hunter2" not in result.stderr
    assert not creds_path(state_file).exists() or "login" not in stored(state_file)


def test_password_stdin_needs_a_user(peek, state_file: Path) -> None:
    result = peek("login", HS, "--password-stdin", "--state-file", str(state_file))
    assert result.exit_code == 2 and "--user" in result.stderr


def test_server_with_only_sso_points_to_token_login(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    ahs.flows = ["m.login.sso", "m.login.token"]
    result = peek("login", HS, "--state-file", str(state_file))
    assert result.exit_code == 1
    assert "m.login.sso" in result.stderr and "--token -" in result.stderr


def test_token_login_is_checked_with_whoami_then_stored(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    ahs.issue("@bob:hs.test", "ELSEWHERE")
    result = peek("login", HS, "--token", "-", "--state-file", str(state_file), input="acc-1\n")
    assert result.exit_code == 0, result.stderr
    assert "@bob:hs.test (device ELSEWHERE)" in result.stdout and "acc-1" not in result.stdout
    (call,) = ahs.calls("/account/whoami")
    assert call.request.headers["Authorization"] == "Bearer acc-1"
    login = stored(state_file)["login"]
    assert (login["access_token"], login["method"]) == ("acc-1", "token")
    assert "refresh_token" not in login

    bad = peek("login", HS, "--token", "bogus-tok", "--state-file", str(state_file))
    assert bad.exit_code == 5 and "nothing was stored" in bad.stderr
    assert "bogus-tok" not in bad.stderr
    assert stored(state_file)["login"]["access_token"] == "acc-1"


def test_verbose_login_logs_the_discovery_of_a_server_name_too(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    """`-v` logs every request: login found its homeserver without the request log (it did not
    open the server through `connect.open_server` like every other command)."""
    well_known = "https://hs.test/.well-known/matrix/client"
    ahs.rsps.add(responses.GET, well_known, json={"m.homeserver": {"base_url": HS}})
    ahs.issue("@bob:hs.test", "ELSEWHERE")
    result = peek(
        "-v", "login", "hs.test", "--token", "-", "--state-file", str(state_file), input="acc-1\n"
    )
    assert result.exit_code == 0, result.stderr
    assert f"peek: GET {well_known} → 200" in result.stderr
    assert stored(state_file)["login"]["user_id"] == "@bob:hs.test"


def test_new_password_login_ends_the_session_it_replaces(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    args = ("login", HS, "-u", "alice", "--password-stdin", "--state-file", str(state_file))
    peek(*args, input="s3cret\n")
    second = peek(*args, input="s3cret\n")
    assert second.exit_code == 0, second.stderr
    assert "replaces the earlier login of @alice:hs.test" in second.stderr
    assert "acc-1" not in ahs.sessions and "acc-2" in ahs.sessions
    assert stored(state_file)["login"]["access_token"] == "acc-2"


# -- whoami / logout -----------------------------------------------------------------------------


def test_whoami_shows_user_and_device_never_the_token(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())
    result = peek("whoami", "--state-file", str(state_file))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "@alice:hs.test on https://hs.test (device PEEKDEV, password login)\n"
    as_json = peek("whoami", "hs.test", "--json", "--state-file", str(state_file))
    assert json.loads(as_json.stdout) == {
        "homeserver": HS,
        "user_id": "@alice:hs.test",
        "device_id": "PEEKDEV",
        "method": "password",
    }
    for out in (result, as_json):
        assert "acc-1" not in out.stdout + out.stderr and "ref-1" not in out.stdout + out.stderr


def test_whoami_when_not_logged_in_exits_5(ahs: AuthHomeserver, peek, state_file: Path) -> None:
    result = peek("whoami", "--state-file", str(state_file))
    assert result.exit_code == 5 and "not logged in" in result.stderr
    named = peek("whoami", HS, "--state-file", str(state_file))
    assert named.exit_code == 5 and "peek login hs.test" in named.stderr


def test_logout_ends_the_session_on_the_server_and_forgets_it(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())
    CredentialStore(creds_path(state_file)).put(HS, "guest", {"access_token": "g"})
    result = peek("logout", "--state-file", str(state_file))
    assert result.exit_code == 0, result.stderr
    assert "Logged out @alice:hs.test" in result.stdout and "ended on the server" in result.stdout
    (call,) = ahs.calls("/logout")
    assert call.request.headers["Authorization"] == "Bearer acc-1"
    assert "acc-1" not in ahs.sessions
    assert "login" not in stored(state_file) and "guest" in stored(state_file)
    assert stat.S_IMODE(os.stat(creds_path(state_file)).st_mode) == 0o600
    again = peek("whoami", "--state-file", str(state_file))
    assert again.exit_code == 5


def test_logout_with_an_expired_token_refreshes_first_so_the_session_really_ends(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())
    ahs.expire("acc-1")
    result = peek("logout", HS, "--state-file", str(state_file))
    assert result.exit_code == 0, result.stderr
    assert ahs.sessions == {} and ahs.refreshable == {}  # the refreshed session was ended too


def test_logout_keeps_the_login_when_the_server_cannot_be_reached(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())
    ahs.rsps.replace(responses.POST, f"{API}/logout", body=requests.ConnectionError("refused"))
    result = peek("logout", "--state-file", str(state_file))
    assert result.exit_code == 1 and "the login was kept" in result.stderr
    assert stored(state_file)["login"]["access_token"] == "acc-1"
    local = peek("logout", "--local", "--state-file", str(state_file))
    assert local.exit_code == 0 and "stays valid on the server" in local.stdout
    assert "login" not in stored(state_file)


# -- refresh -------------------------------------------------------------------------------------


def test_rejected_token_is_refreshed_and_the_same_request_retried(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())
    ahs.chain([message(1)], [message(2)])
    first = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "1")
    assert [e["event_id"] for e in lines(first)] == ["$ev1"]
    ahs.expire("acc-1")  # the access token runs out between two requests
    second = peek("snapshot", ROOM, "-s", HS, "--json")
    assert second.exit_code == 0, second.stderr
    assert [e["event_id"] for e in lines(second)] == ["$ev2"]  # nothing lost, nothing repeated
    assert ahs.refresh_bodies == [{"refresh_token": "ref-1"}]
    events = ahs.calls("/events")
    assert auth_headers(events)[-3:] == ["Bearer acc-1", "Bearer acc-2", "Bearer acc-2"]
    assert from_params(events)[-3:-1] == ["t1", "t1"]  # the refused request, then the same again
    login = stored(state_file)["login"]
    assert (login["access_token"], login["refresh_token"]) == ("acc-2", "ref-2")
    assert "acc-" not in second.stderr and "ref-" not in second.stderr


def test_rejection_during_a_long_watch_is_refreshed_again_and_again(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue())

    def expiring(n: int) -> Any:
        def reply(params: dict[str, str]) -> Any:
            for token in list(ahs.sessions):
                ahs.expire(token)  # every token dies after one use
            return {"chunk": [message(n)], "start": params["from"], "end": f"t{n}"}

        return reply

    for n in range(1, 5):
        ahs.events_by_token[f"t{n - 1}"] = expiring(n)
    result = peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "4")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1", "$ev2", "$ev3", "$ev4"]
    assert [b["refresh_token"] for b in ahs.refresh_bodies] == ["ref-1", "ref-2", "ref-3"]


def test_expired_login_is_refreshed_before_the_first_request(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    store_login(state_file, ahs.issue(), expires_at=time.time() - 10)
    ahs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 0, result.stderr
    assert len(ahs.refresh_bodies) == 1
    assert set(auth_headers(ahs.calls("initialSync") + ahs.calls("/events"))) == {"Bearer acc-2"}


def test_rejected_at_start_is_refreshed_too(ahs: AuthHomeserver, peek, state_file: Path) -> None:
    store_login(state_file, ahs.issue())
    ahs.expire("acc-1")  # revoked early (soft logout) though its stored expiry is far away
    ahs.history = [message(1)]
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev1"]
    assert len(ahs.refresh_bodies) == 1


@pytest.mark.parametrize("why", ["no refresh token", "refresh refused"])
def test_logged_out_for_good_exits_5_with_a_clear_message(
    ahs: AuthHomeserver, peek, state_file: Path, why: str
) -> None:
    reply = ahs.issue()
    if why == "no refresh token":
        del reply["refresh_token"]
    else:
        ahs.refreshable.clear()
    store_login(state_file, reply)
    ahs.expire("acc-1")
    ahs.chain([message(1)])
    result = peek("snapshot", ROOM, "-s", HS, "--json", "--history", "0")
    assert result.exit_code == 5
    assert result.stderr.startswith("peek: logged out of https://hs.test")
    assert "peek login hs.test" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "acc-1" not in result.stderr and "ref-1" not in result.stderr
    assert ahs.guests == 0  # a login that failed never turns into a guest silently


def test_a_peek_that_finds_a_newer_token_stored_does_not_spend_the_refresh_token(
    ahs: AuthHomeserver, peek, state_file: Path
) -> None:
    """Another peek refreshed meanwhile: this one takes the stored pair and refreshes nothing."""
    store_login(state_file, ahs.issue())
    ahs.chain([message(1)], [message(2)])
    peek("watch", ROOM, "-s", HS, "--json", "--history", "0", "--max-events", "1")

    def other_peek_refreshed(params: dict[str, str]) -> Any:
        if "acc-2" not in ahs.sessions:
            fresh = ahs.issue()  # what the other peek got and stored
            ahs.refreshable.pop("ref-1")
            ahs.expire("acc-1")
            store_login(state_file, fresh)
            return 401, UNKNOWN_TOKEN
        return {"chunk": [message(2)], "start": "t1", "end": "t2"}

    ahs.events_by_token["t1"] = other_peek_refreshed
    result = peek("snapshot", ROOM, "-s", HS, "--json")
    assert result.exit_code == 0, result.stderr
    assert [e["event_id"] for e in lines(result)] == ["$ev2"]
    assert ahs.refresh_bodies == []


def test_two_processes_sharing_a_login_spend_the_refresh_token_once(
    ahs: AuthHomeserver, state_file: Path
) -> None:
    """Two clients (as two peek processes would) get the same 401 at once: one refresh only."""
    store_login(state_file, ahs.issue())
    ahs.expire("acc-1")
    ahs.refresh_delay = 0.2
    barrier = threading.Barrier(2)
    got: list[str] = []

    def one_peek() -> None:
        client = MatrixClient(HS)
        session = auth.LoginSession(client, CredentialStore(creds_path(state_file)))
        session.start()
        barrier.wait()
        session.renew()
        got.append(str(client.token))

    threads = [threading.Thread(target=one_peek) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == ["acc-2", "acc-2"]
    assert len(ahs.refresh_bodies) == 1
    assert stored(state_file)["login"]["refresh_token"] == "ref-2"


def test_refresh_failing_on_the_network_keeps_the_pair_for_the_next_try(
    ahs: AuthHomeserver, state_file: Path
) -> None:
    """A NetworkError (which the stream loop retries with backoff), never "logged out"."""
    from peekcli.errors import NetworkError

    store_login(state_file, ahs.issue())
    ahs.expire("acc-1")
    ahs.refresh_outage = 1
    client = MatrixClient(HS)
    auth.LoginSession(client, CredentialStore(creds_path(state_file))).start()
    with pytest.raises(NetworkError):
        client.whoami()
    assert stored(state_file)["login"]["refresh_token"] == "ref-1"
    assert client.whoami()["user_id"] == "@alice:hs.test"
    assert ahs.refresh_bodies == [{"refresh_token": "ref-1"}]
    assert stored(state_file)["login"]["refresh_token"] == "ref-2"
