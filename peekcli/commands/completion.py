"""`peek completion SHELL`: the script click generates, also shipped in completions/."""

from __future__ import annotations

import click

from peekcli.errors import help_epilog


@click.command(epilog=help_epilog("completion"))
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      peek completion bash > ~/.local/share/bash-completion/completions/peek
      peek completion zsh > "${fpath[1]}/_peek"
      peek completion fish > ~/.config/fish/completions/peek.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(
        cls(click.get_current_context().find_root().command, {}, "peek", "_PEEK_COMPLETE").source()
    )


def _state_file_for_completion(ctx: click.Context) -> str:
    """The state file, found without importing platformdirs (completion runs on every Tab)."""
    import os
    import sys

    given = ctx.params.get("state_file") or os.environ.get("PEEK_STATE_FILE")
    if given:
        return str(given)
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        return os.path.join(base, "peek", "state.db")
    from peekcli.state import default_state_path

    return str(default_state_path())


def _saved_rooms(ctx: click.Context) -> dict[str, dict[str, str | None]]:
    """Homeserver → room id → alias, read-only from the state database (or a JSON state an
    earlier peek left and no run has imported yet); nothing when there is none."""
    import json
    import os
    import sqlite3
    from urllib.parse import quote

    path = _state_file_for_completion(ctx)
    found: dict[str, dict[str, str | None]] = {}
    try:
        with open(path, "rb") as fh:
            is_db = fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        is_db = False
        if os.path.basename(path) == "state.db":
            path = os.path.join(os.path.dirname(path), "state.json")
    try:
        if is_db:
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
            try:
                rows = conn.execute("SELECT homeserver, room_id, doc FROM positions").fetchall()
            finally:
                conn.close()
            docs = [(hs, room, json.loads(doc)) for hs, room, doc in rows]
        else:
            with open(path, "rb") as fh:
                positions = json.load(fh).get("positions")
            docs = [
                (hs, room, doc)
                for hs, rooms in positions.items()
                for room, doc in (rooms.items() if isinstance(rooms, dict) else [])
            ]
    except (OSError, ValueError, AttributeError, sqlite3.Error):
        return {}
    for hs, room, doc in docs:
        alias = doc.get("alias") if isinstance(doc, dict) else None
        found.setdefault(str(hs), {})[str(room)] = alias if isinstance(alias, str) else None
    return found


def complete_rooms(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Room ids and aliases from the state file; never touches the network."""
    from click.shell_completion import CompletionItem

    seen: dict[str, str] = {}
    for homeserver, rooms in _saved_rooms(ctx).items():
        for room_id, alias in rooms.items():
            if alias is not None:
                seen.setdefault(alias, f"{room_id} on {homeserver}")
            seen.setdefault(room_id, homeserver)
    quote = _bash_quote_needed()
    return [
        CompletionItem(_bash_quote(v) if quote else v, help=h)
        for v, h in sorted(seen.items())
        if v.startswith(incomplete)
    ]


#: Characters bash leaves alone in an unquoted word.
_BASH_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def _bash_quote_needed() -> bool:
    """True when bash will insert the completion into an unquoted word.

    bash puts a completion on the command line as it is: an unquoted `#lobby:server` turns
    the rest of the line into a comment and `!id` into a history expansion ("event not
    found"). Where the user already opened a quote (`'#lo<TAB>`), bash quotes it itself.
    """
    import os

    if not os.environ.get("_PEEK_COMPLETE", "").startswith("bash"):
        return False  # zsh and fish escape what they insert
    words = os.environ.get("COMP_WORDS", "").split()
    try:
        index = int(os.environ.get("COMP_CWORD", ""))
    except ValueError:
        return True
    current = words[index] if 0 <= index < len(words) else ""
    return not current.startswith(("'", '"'))


def _bash_quote(value: str) -> str:
    if all(c in _BASH_PLAIN for c in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def complete_homeservers(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Homeservers that have saved positions."""
    from click.shell_completion import CompletionItem

    known = sorted(_saved_rooms(ctx))
    return [CompletionItem(hs) for hs in known if hs.startswith(incomplete)]
