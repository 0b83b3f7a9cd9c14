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
        return os.path.join(base, "peek", "state.json")
    from peekcli.state import default_state_path

    return str(default_state_path())


def _saved_doc(ctx: click.Context) -> dict[str, object]:
    import json

    try:
        with open(_state_file_for_completion(ctx), "rb") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def complete_rooms(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Room ids and aliases from the state file; never touches the network."""
    from click.shell_completion import CompletionItem

    seen: dict[str, str] = {}
    positions = _saved_doc(ctx).get("positions")
    for homeserver, rooms in positions.items() if isinstance(positions, dict) else []:
        for room_id, pos in rooms.items() if isinstance(rooms, dict) else []:
            alias = pos.get("alias") if isinstance(pos, dict) else None
            if isinstance(alias, str):
                seen.setdefault(alias, f"{room_id} on {homeserver}")
            seen.setdefault(room_id, str(homeserver))
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

    positions = _saved_doc(ctx).get("positions")
    known = sorted(positions) if isinstance(positions, dict) else []
    return [CompletionItem(hs) for hs in known if hs.startswith(incomplete)]
