"""`peek completion SHELL`: the script click generates, also shipped in completions/."""

from __future__ import annotations

import click


@click.command()
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
