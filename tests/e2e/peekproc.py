"""Run the installed `peek` as a real process: one-shot runs and live watchers read line by line."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.exitcodes import check_declared


def peek_command() -> list[str]:
    script = Path(sys.executable).with_name("peek")
    if script.exists():
        return [str(script)]
    found = shutil.which("peek")
    return [found] if found else [sys.executable, "-m", "peekcli"]


def peek_env(state_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEEK_")}
    env["PEEK_STATE_FILE"] = str(state_file)
    # A developer's own config (default homeserver, token) must not leak into the tests.
    env["XDG_CONFIG_HOME"] = str(state_file.parent / "xdg-config")
    env["XDG_STATE_HOME"] = str(state_file.parent / "xdg-state")
    env.update(extra)
    return env


def run_peek(
    *args: str, state_file: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*peek_command(), *args],
        env=peek_env(state_file, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    check_declared(args, done.returncode)
    return done


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class Watcher:
    """A `peek watch` process whose stdout lines are collected by a thread."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, *args: str, state_file: Path, **env: str) -> Watcher:
        proc = subprocess.Popen(
            [*peek_command(), "watch", *args],
            env=peek_env(state_file, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        watcher = cls(proc)
        threading.Thread(target=watcher._pump, daemon=True).start()
        return watcher

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def read(self, n: int, timeout: float = 20) -> list[str]:
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} lines: {out!r}")
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue
        return out

    def events(self, n: int, timeout: float = 20) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.read(n, timeout)]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert self.proc.stderr is not None
        check_declared(["watch"], code)
        return code, self.proc.stderr.read()

    def rest(self) -> list[str]:
        """Lines that arrived but were not read yet (call after stop)."""
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        return out
