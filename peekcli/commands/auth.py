"""`peek login`, `peek whoami`, `peek logout`: a user's own login, per homeserver.

Most servers hand out no guest tokens, but let any logged-in user read a world-readable room
without joining it. These commands store that login (0600 credentials file); `watch` and
`snapshot` then use it on their own. Tokens are never printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from peekcli.commands import output
from peekcli.commands.common import (
    error,
    fail_usage,
    guarded,
    homeserver_option,
    note,
    read_token_option,
    safe,
    server_or_homeserver,
    state_file_option,
)
from peekcli.commands.completion import complete_homeservers
from peekcli.errors import help_epilog

if TYPE_CHECKING:
    from peekcli.auth import LoginResult
    from peekcli.connect import Server
    from peekcli.matrix.oauth import DeviceAuthorization
    from peekcli.state import CredentialStore


def _homeserver_argument(f: Any) -> Any:
    """`[HOMESERVER]`, or `-s/--homeserver` (env PEEK_HOMESERVER) like every other command."""
    f = homeserver_option("The homeserver, instead of HOMESERVER.")(f)
    return click.argument(
        "server", required=False, metavar="[HOMESERVER]", shell_complete=complete_homeservers
    )(f)


def _state_file_option(f: Any) -> Any:
    return state_file_option("State file; the credentials file lives beside it.")(f)


@click.command(epilog=help_epilog("login"))
@_homeserver_argument
@click.option("-u", "--user", metavar="USER", help="User id or localpart for a password login.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin (for scripts; needs -u)."
)
@click.option(
    "--token",
    metavar="TOKEN",
    callback=read_token_option,
    help="Store an access token made by another client, after checking it with the server. "
    "`-` reads it from stdin, `@FILE` from FILE (a literal token shows in `ps`).",
)
@click.option(
    "--open", "open_browser", is_flag=True, help="Open the approval page in a browser (OAuth)."
)
@click.option(
    "--device-name",
    default="peek",
    show_default=True,
    metavar="NAME",
    help="Name of the new session among the account's devices (password login).",
)
@_state_file_option
def login(
    server: str | None,
    homeserver: str | None,
    user: str | None,
    password_stdin: bool,
    token: str | None,
    open_browser: bool,
    device_name: str,
    state_file: Path | None,
) -> None:
    """Log in to HOMESERVER, so peek can watch its rooms where guests are refused.

    peek asks the server how to log in. On servers with OAuth 2.0 (matrix.org and every server
    on the Matrix Authentication Service) it shows a web address and a code: approve there, in
    any browser, and peek receives the login. Elsewhere it asks for a user and a password.
    Watching never joins a room: peek reads world-readable rooms as a peeking user.

    HOMESERVER (or -s/--homeserver) is a server name (matrix.org) or a client API URL. Default:
    PEEK_HOMESERVER or the config file.

    \b
    Examples:
      peek login matrix.org
      peek login example.org -u alice
      pass show matrix/alice | peek login example.org -u alice --password-stdin
      peek login example.org --token - < token.txt
    """
    given = server_or_homeserver(server, homeserver)
    if password_stdin and not user:
        fail_usage("--password-stdin needs --user (stdin holds the password)")
    if token is not None and (user or password_stdin):
        fail_usage("--token excludes --user and --password-stdin")

    def run() -> None:
        from peekcli import auth
        from peekcli.errors import PeekError

        server = _open_server(given, state_file)
        hs, creds, client = server.homeserver, server.creds, server.client
        if token is not None:
            result = auth.login_with_token(client, creds, token)
            _report_login(result)
            return
        options = auth.login_options(client)
        wants_password = bool(user or password_stdin)
        device = options.oauth is not None and options.oauth.supports_device_grant
        if wants_password and not options.password:
            raise PeekError(
                f"{hs} offers no password login"
                + (f"; run `{auth.login_command(hs)}` without -u" if device else "")
            )
        if device and not wants_password:
            assert options.oauth is not None
            result = auth.login_with_device_grant(
                client, creds, options.oauth, show=lambda grant: _show_grant(grant, open_browser)
            )
        elif options.password:
            name = user or _prompt("User")
            password = _read_secret() if password_stdin else _prompt("Password", hide_input=True)
            result = auth.login_with_password(client, creds, name, password, device_name)
        else:
            raise auth.no_usable_flow(hs, options)
        _report_login(result)

    guarded(run)


def _prompt(text: str, hide_input: bool = False) -> str:
    """click's prompt on stderr; a Ctrl-C there ends the prompt's line before peek exits 130,
    so the shell's next prompt does not start after "Password: " (click does the same)."""
    from peekcli.errors import Stopped

    try:
        return str(click.prompt(text, hide_input=hide_input, err=True))
    except Stopped:
        click.echo(err=True)
        raise


@click.command(epilog=help_epilog("whoami"))
@_homeserver_argument
@click.option("--json", "as_json", is_flag=True, help="One JSON object per login.")
@_state_file_option
def whoami(
    server: str | None, homeserver: str | None, as_json: bool, state_file: Path | None
) -> None:
    """Show who peek is logged in as on HOMESERVER (all stored logins by default).

    The server is asked, so this also tells whether the login still works. Tokens are never
    shown.

    \b
    Examples:
      peek whoami
      peek whoami matrix.org --json | jq -r .user_id
    """
    given = server_or_homeserver(server, homeserver)

    def run() -> None:
        import json

        from peekcli import auth
        from peekcli.errors import PeekError

        targets = _targets(given, state_file)
        failure: PeekError | None = None
        for server in targets:
            try:
                me = auth.whoami(server.client, server.creds)
            except PeekError as exc:
                if len(targets) == 1:
                    raise
                error(exc.message)
                failure = exc
                continue
            if as_json:
                row = {
                    "homeserver": me.homeserver,
                    "user_id": me.user_id,
                    "device_id": me.device_id,
                    "method": me.method,
                }
                click.echo(json.dumps(row))
            else:
                details = ", ".join(
                    x
                    for x in (
                        f"device {me.device_id}" if me.device_id else None,
                        f"{me.method} login" if me.method else None,
                    )
                    if x
                )
                line = f"{me.user_id or '?'} on {me.homeserver}"
                click.echo(safe(f"{line} ({details})" if details else line))
        if failure is not None:
            sys.exit(failure.exit_code)

    guarded(run)


@click.command(epilog=help_epilog("logout"))
@_homeserver_argument
@click.option(
    "--local",
    is_flag=True,
    help="Only forget the login here; the session stays valid on the server.",
)
@_state_file_option
def logout(
    server: str | None, homeserver: str | None, local: bool, state_file: Path | None
) -> None:
    """End peek's login on HOMESERVER and forget it.

    The session is revoked on the server (its token stops working), then removed from the
    credentials file. Default HOMESERVER: the only one peek is logged in to.

    \b
    Examples:
      peek logout matrix.org
      peek logout --local example.org     forget it without asking the server
    """
    given = server_or_homeserver(server, homeserver)

    def run() -> None:
        from peekcli import auth
        from peekcli.errors import NetworkError

        targets = _targets(given, state_file)
        if len(targets) > 1:
            names = ", ".join(server.homeserver for server in targets)
            fail_usage(f"logged in to several servers ({names}): name one")
        hs, creds, client = targets[0].homeserver, targets[0].creds, targets[0].client
        try:
            result = auth.logout(client, creds, local_only=local)
        except NetworkError as exc:
            raise NetworkError(
                f"{exc.message}; the login was kept (`peek logout --local` forgets it anyway)"
            ) from None
        who = result.user_id or "the stored login"
        if local:
            how = "forgotten here; the session stays valid on the server"
        elif result.revoked:
            how = "session ended on the server"
        else:
            how = "the server had already ended the session"
        click.echo(safe(f"Logged out {who} from {hs} ({how})."))

    guarded(run)


# -- helpers -------------------------------------------------------------------------------------


def _open_server(given: str | None, state_file: Path | None) -> Server:
    """HOMESERVER (or PEEK_HOMESERVER / the config) through `connect.open_server`, like every
    command: a server name is discovered the same way `watch` does, so the login is found again
    under the same key. The config's token is not used: these commands are about the login."""
    from peekcli.connect import ConnectOptions, effective, open_server

    if not effective(given, None)[0]:
        fail_usage("name the HOMESERVER (or set PEEK_HOMESERVER)")
    return open_server(
        ConnectOptions(given, None, state_file, notice=output.current().note),
        discover_given=True,
        log=output.current().request_log,
    )


def _targets(given: str | None, state_file: Path | None) -> list[Server]:
    """The homeservers a whoami/logout is about: the one named, else every stored login."""
    from peekcli.auth import not_logged_in, short_hs
    from peekcli.connect import effective
    from peekcli.errors import TokenRejected

    logins = _credentials(state_file).logins()
    if given:
        # A stored login matches what was typed without a network round trip.
        typed = given.rstrip("/")
        named = next((hs for hs in logins if typed in (hs, short_hs(hs))), None)
        server = _open_server(named or given, state_file)
        if server.homeserver not in logins:
            raise not_logged_in(server.homeserver)
        return [server]
    if not logins:
        if effective(None, None)[0]:
            raise not_logged_in(_open_server(None, state_file).homeserver)
        raise TokenRejected("not logged in anywhere; run `peek login HOMESERVER`", status=401)
    return [_open_server(hs, state_file) for hs in logins]


def _credentials(state_file: Path | None) -> CredentialStore:
    """The credentials file beside the state file (the stored logins are listed from it)."""
    from peekcli.state import CredentialStore, credentials_path_for, default_state_path

    path = credentials_path_for(state_file or default_state_path())
    return CredentialStore(path, output.current().note)


def _read_secret() -> str:
    """One line from stdin, without its line ending (a password or a token)."""
    from peekcli.errors import UsageError

    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError("nothing on stdin")
    return line


def _show_grant(grant: DeviceAuthorization, open_browser: bool) -> None:
    """The device login's instructions, on stderr so stdout stays for the result."""
    url = grant.verification_uri_complete or grant.verification_uri
    lines = [
        "To log in, open this page in a browser (on any device):",
        "",
        f"    {safe(url)}",
        "",
        f"and check that it shows the code {safe(grant.user_code)}"
        if grant.verification_uri_complete
        else f"and enter the code {safe(grant.user_code)}",
        "Waiting for your approval (Ctrl-C to give up)…",
    ]
    click.echo("\n".join(lines), err=True)
    if open_browser:
        from urllib.parse import urlsplit

        # The server chose this URL: a browser is only handed a web page, never file:,
        # javascript: or a scheme some local application would act on.
        if urlsplit(url).scheme.lower() != "https":
            note("not opening a browser: the approval page is not an https URL")
            return
        import webbrowser

        webbrowser.open(url)


def _report_login(result: LoginResult) -> None:
    device = f" (device {result.device_id})" if result.device_id else ""
    click.echo(safe(f"Logged in to {result.homeserver} as {result.user_id}{device}."))
    if result.replaced:
        if result.replaced_not_revoked:
            how = "it was not ended on the server"
        else:
            how = "its session was ended"
        note(f"this replaces the earlier login of {result.replaced} ({how})")
