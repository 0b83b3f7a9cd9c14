"""Options of `watch` and `snapshot` about where delivered events go beyond stdout.

`--exec CMD` hands each event to a command (peekcli/sinks/exec.py); `--no-follow` stops at a room
upgrade instead of going on in the replacement room (peekcli/follow/upgrades.py). Only click is
imported here at module level, like every command module.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from peekcli.commands.common import MAX_SECONDS, Seconds, fail_usage

if TYPE_CHECKING:
    from collections.abc import Callable

    from peekcli.sinks import Sink
    from peekcli.sinks.exec import ExecPolicy, ExecSink


def delivery_options(f: Any) -> Any:
    """Add --exec, --exec-failure, --exec-timeout, --exec-output and --no-follow."""
    options = [
        click.option(
            "--exec",
            "exec_cmd",
            metavar="CMD",
            help="Run CMD once per delivered event (after filters), one at a time, in order: the "
            "event's JSON line on its stdin; PEEK_ROOM_ID, PEEK_EVENT_ID, PEEK_EVENT_TYPE and "
            "PEEK_SENDER in its environment. No shell: write sh -c '…' for one. The position "
            "passes an event only once CMD exits 0, so a crash or kill hands it over again "
            "(at least once). Nothing else goes to stdout unless --json is given too.",
        ),
        click.option(
            "--exec-failure",
            type=click.Choice(["stop", "skip", "retry"]),
            default="stop",
            show_default=True,
            help="When CMD fails (exit status not 0, killed, timed out): stop with exit 9, the "
            "event undelivered; skip it with a warning; or retry it after 1 s, 2 s, 4 s … up to "
            "60 s (each wait up to 20% shorter at random), for ever or up to --max-retries "
            "times, then exit 9.",
        ),
        click.option(
            "--exec-timeout",
            type=Seconds(min=0, min_open=True, max=MAX_SECONDS),
            metavar="SECONDS",
            help="Kill CMD (and what it started) after this long; counts as a failure.",
        ),
        click.option(
            "--exec-output",
            type=click.Choice(["stderr", "stdout"]),
            default="stderr",
            show_default=True,
            help="Where CMD's stdout goes (stderr keeps peek's stdout for --json alone).",
        ),
        click.option(
            "--no-follow",
            is_flag=True,
            help="At a room upgrade (tombstone), stop with exit 0 and name the new room, instead "
            "of going on in it from its start.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


#: The options that only mean something with --exec, and their defaults.
_EXEC_DEFAULTS: dict[str, Any] = {
    "exec_failure": "stop",
    "exec_timeout": None,
    "exec_output": "stderr",
}


def _given(key: str, kw: dict[str, Any]) -> bool:
    """Whether the user typed option `key` (outside click: whether it differs from its default)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and key in ctx.params:
        return ctx.get_parameter_source(key) == click.core.ParameterSource.COMMANDLINE
    return bool(kw.get(key, _EXEC_DEFAULTS[key]) != _EXEC_DEFAULTS[key])


def exec_policy(kw: dict[str, Any]) -> ExecPolicy | None:
    """The `--exec` settings from the parsed options (None without --exec); usage errors exit 2."""
    command = kw.get("exec_cmd")
    if command is None:
        given = [f"--{key.replace('_', '-')}" for key in _EXEC_DEFAULTS if _given(key, kw)]
        if given:  # name what was typed, not every option that could have been
            fail_usage(f"{' and '.join(given)} go{'es' * (len(given) == 1)} with --exec")
        return None
    if kw.get("exec_output") == "stdout" and kw.get("as_json"):
        fail_usage("--exec-output stdout would mix CMD's output into --json's; pick one")
    from peekcli.errors import PeekError
    from peekcli.sinks.exec import ExecPolicy, parse_command

    try:
        argv = parse_command(command)
    except PeekError as exc:
        fail_usage(exc.message)
    return ExecPolicy(
        argv=argv,
        failure=kw.get("exec_failure", "stop"),
        timeout=kw.get("exec_timeout"),
        output=kw.get("exec_output", "stderr"),
        max_retries=kw.get("max_retries"),
    )


def exec_sink(policy: ExecPolicy, inner: Sink | None, warn: Callable[[str], None]) -> ExecSink:
    """The --exec command sink, passing events on to `inner` (--json) once CMD took them."""
    from peekcli.sinks.exec import ExecSink

    out = sys.stdout if policy.output == "stdout" else sys.stderr
    return ExecSink(policy, inner=inner, out=out, warn=warn)
