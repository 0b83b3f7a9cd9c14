"""`--exec CMD`: hand each delivered event to a command, one at a time, at least once.

The event's JSON line (exactly what `--json` prints) goes to CMD's stdin and its ids to the
environment (`PEEK_ROOM_ID`, `PEEK_EVENT_ID`, `PEEK_EVENT_TYPE`, `PEEK_SENDER`). No shell is
involved: CMD is split like a shell would (`shlex`) and run directly, so event text can never
become shell syntax; a user who wants a shell writes `sh -c '…'`.

Its delivery plan declares `save_each_event` (peekcli/follow/plan.py), which makes the stream
loop save the position after every event rather than after every chunk: the position passes an
event only once CMD exited 0 for it (or `--exec-failure skip` gave up on it). A kill while CMD
runs leaves the position before that event, so the next run hands it over again: at-least-once,
never skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Literal

from peekcli import retry as backoff
from peekcli import signals
from peekcli.errors import ExecFailed, UsageError
from peekcli.render.jsonl import encode_event
from peekcli.retry import RetryPolicy
from peekcli.sinks import Sink

#: Never handed to CMD: a token in the environment would leak into whatever CMD runs or logs.
_SECRET_ENV = ("PEEK_ACCESS_TOKEN",)


#: `--exec-failure`: stop (exit 9), skip the event with a warning, or retry it with backoff.
ExecFailure = Literal["stop", "skip", "retry"]
#: `--exec-output`: where CMD's stdout goes.
ExecOutput = Literal["stderr", "stdout"]


@dataclass
class ExecPolicy:
    """What `--exec`, `--exec-failure`, `--exec-timeout` and `--exec-output` asked for."""

    argv: list[str]
    failure: ExecFailure = "stop"
    timeout: float | None = None
    output: ExecOutput = "stderr"
    #: With `failure="retry"`: give up (exit 9) after this many retries; None: for ever.
    max_retries: int | None = None


def parse_command(command: str) -> list[str]:
    """CMD as an argv, split like a shell would; refuses what could never run (exit 2)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--exec: cannot split {command!r}: {exc}") from None
    if not argv:
        raise UsageError("--exec needs a command")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"--exec: command not found or not executable: {argv[0]}")
    return argv


#: Longest server string put in CMD's environment (ids are at most 255 bytes by the spec); a
#: longer one could make exec fail with E2BIG and wedge the run on that event.
ENV_VALUE_LIMIT = 4096


def _env_value(value: object) -> str:
    """A server string as an environment value: no NUL (exec refuses it) and no lone surrogate
    (a JSON `\\ud800` escape; os.fsencode raises on it, which would crash peek)."""
    if not isinstance(value, str):
        return ""
    value = value[:ENV_VALUE_LIMIT].replace("\x00", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _ignore(_: str) -> None:
    return None


class ExecSink:
    """Runs CMD for each event; on success passes the event on to `inner` (e.g. `--json`)."""

    #: What its delivery plan must declare (`Delivery.save_each_event`): the loop saves the
    #: position after every event, not only every chunk.
    save_each_event = True

    def __init__(
        self,
        policy: ExecPolicy,
        *,
        inner: Sink | None = None,
        out: IO[str] | None = None,
        warn: Callable[[str], None] = _ignore,
        room_id: str = "",
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.inner = inner
        self.out = out
        self.warn = warn
        self.room_id = room_id
        self.retry = retry or RetryPolicy(max_retries=policy.max_retries)
        # backoff.pause (not time.sleep itself): tests swap it to watch backoffs without waiting.
        self.sleep: Callable[[float], None] = sleep if sleep is not None else backoff.pause
        self.runs = 0

    # -- Sink ------------------------------------------------------------------------------------

    def write(self, event: dict[str, Any]) -> None:
        data = encode_event(event)
        env = self._environment(event)
        what = _env_value(event.get("event_id")) or "an event without an id"
        attempt = 0
        while True:
            failure = self._run_once(data, env)
            # Killed because the run is ending (another thread got Ctrl-C): not a failure to
            # skip or retry; the event stays undelivered and the next run hands it over again.
            signals.check()
            if failure is None:
                break
            if self.policy.failure == "skip":
                self.warn(f"--exec failed on {what} ({failure}); skipped it (--exec-failure skip)")
                break
            limit = self.policy.max_retries
            if self.policy.failure == "retry" and (limit is None or attempt < limit):
                delay = self.retry.delay(attempt)
                attempt += 1
                self.warn(f"--exec failed on {what} ({failure}); retry {attempt} in {delay:.1f} s")
                self.sleep(delay)
                signals.check()
                continue
            tries = f" after {attempt} retr{'y' if attempt == 1 else 'ies'}" if attempt else ""
            raise ExecFailed(
                f"--exec {self.policy.argv[0]} failed on {what} ({failure}){tries}; the event "
                "was not delivered: the next run hands it over again"
            )
        if self.inner is not None:
            self.inner.write(event)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    def reader_gone(self) -> bool:
        return self.inner is not None and self.inner.reader_gone()

    # -- one run of CMD --------------------------------------------------------------------------

    def _environment(self, event: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        env["PEEK_ROOM_ID"] = _env_value(event.get("room_id")) or self.room_id
        env["PEEK_EVENT_ID"] = _env_value(event.get("event_id"))
        env["PEEK_EVENT_TYPE"] = _env_value(event.get("type"))
        env["PEEK_SENDER"] = _env_value(event.get("sender"))
        return env

    def _output(self) -> tuple[int | None, bool]:
        """CMD's stdout: our stream's file descriptor, or a pipe we copy from (no real fd)."""
        if self.out is None:
            return None, False
        try:
            fd = self.out.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return subprocess.PIPE, True
        self.out.flush()  # what we wrote so far comes before what CMD writes
        return fd, False

    def _run_once(self, data: bytes, env: dict[str, str]) -> str | None:
        """Run CMD once with `data` on stdin: None on exit 0, else why it failed."""
        signals.check()
        stdout, captured = self._output()
        self.runs += 1
        try:
            # Its own process group: a timeout or a stop kills CMD and anything it started.
            proc = subprocess.Popen(
                self.policy.argv,
                stdin=subprocess.PIPE,
                stdout=stdout,
                env=env,
                process_group=0,
            )
        except OSError as exc:
            return f"cannot run {self.policy.argv[0]}: {exc.strerror or exc}"
        try:
            with signals.on_stop(lambda: _kill_group(proc)):
                out, _ = proc.communicate(data, timeout=self.policy.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            out = None
            with contextlib.suppress(subprocess.TimeoutExpired, OSError, ValueError):
                out, _ = proc.communicate(timeout=5)
            self._copy(out, captured)
            return f"timed out after {self.policy.timeout:g} s"
        except BaseException:
            # Stopped (signal) or interrupted while CMD runs: it must not outlive the hand-over.
            _kill(proc)
            raise
        self._copy(out, captured)
        code = proc.returncode
        if code == 0:
            return None
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exit status {code}"

    def _copy(self, out: bytes | None, captured: bool) -> None:
        if captured and out and self.out is not None:
            self.out.write(out.decode("utf-8", "replace"))
            self.out.flush()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to CMD and everything it started (its own process group); no waiting."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    _kill_group(proc)
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        proc.wait(timeout=5)
