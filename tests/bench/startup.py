"""Start-up: `peek --version`, `--help` and one completion request vs `python -c "import click"`.

Each command is a fresh process, timed from spawn to exit, in rounds that run every command once
in a shuffled order (so drift on a noisy machine hits all of them alike); the figure is the median
per command and the ratio is against the baseline's median from the same rounds.

Two installs are measured. The development venv has peek installed *editable*: every interpreter
started from it (the baseline's too) imports setuptools' import-hook finder from a `.pth` file, a
fixed cost on both sides of the ratio. What users get from `pipx install` / `pip install .` is a
regular install, so the bench also builds one in a temporary venv (peek's files copied into its
site-packages and byte-compiled, the same console script pip writes, dependencies reached through
a `.pth` line pointing at the development venv: a path entry only, no finder). The targets are
checked on both.
"""

from __future__ import annotations

import compileall
import random
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.core import PEEK, Row, Sizes, log, median, ratio_row

COMPLETION_ENV = {"_PEEK_COMPLETE": "bash_complete", "COMP_WORDS": "peek wa", "COMP_CWORD": "1"}
#: For information: completing an option loads that command's module (no target of its own).
OPTION_COMPLETION = {"COMP_WORDS": "peek watch --js", "COMP_CWORD": "2"}
LIMIT = 1.3


@dataclass(frozen=True)
class Install:
    label: str
    python: Path
    peek: Path


def editable_install() -> Install:
    return Install("editable", Path(sys.executable), PEEK)


def regular_install(root: Path) -> Install:
    """peek installed as a wheel would be, in a fresh venv under `root` (no editable finder)."""
    import peekcli

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    source = Path(peekcli.__file__).parent
    shutil.copytree(source, site / "peekcli", ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(site / "peekcli", quiet=1)
    (site / "bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The console script exactly as pip generated it for the development venv, re-pointed.
    script = PEEK.read_text().splitlines()
    script[0] = f"#!{python}"
    target = root / "bin" / "peek"
    target.write_text("\n".join(script) + "\n")
    target.chmod(0o755)
    return Install("regular install", python, target)


def _spawn(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed


def measure(install: Install, env: dict[str, str], runs: int) -> list[Row]:
    comp_env = {**env, **COMPLETION_ENV}
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "baseline": ([str(install.python), "-c", "import click"], env),
        "--version": ([str(install.peek), "--version"], env),
        "--help": ([str(install.peek), "--help"], env),
        "completion": ([str(install.peek)], comp_env),
        "option completion": ([str(install.peek)], {**comp_env, **OPTION_COMPLETION}),
    }
    # Sanity: the completion request really completes (and every command works).
    out = subprocess.run(cases["completion"][0], env=comp_env, capture_output=True, text=True)
    if "watch" not in out.stdout:
        raise RuntimeError(f"completion of `peek wa` did not offer watch: {out.stdout!r}")
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_no in range(runs + 2):
        random.shuffle(names)
        for name in names:
            argv, run_env = cases[name]
            elapsed = _spawn(argv, run_env)
            if round_no >= 2:  # two warm-up rounds: page cache, byte-code
                times[name].append(elapsed)
    base = median(times["baseline"])
    label = f"import click ({install.label})"
    rows = []
    for name, figure in (
        ("--version", "peek --version"),
        ("--help", "peek --help"),
        ("completion", "completion `peek wa<TAB>`"),
    ):
        rows.append(
            ratio_row(
                f"start-up: {figure} [{install.label}]",
                median(times[name]),
                base,
                label,
                unit="ms",
                limit=LIMIT,
                scale=1000,
            )
        )
    rows.append(
        ratio_row(
            f"start-up: completion `peek watch --js<TAB>` [{install.label}]",
            median(times["option completion"]),
            base,
            label,
            unit="ms",
            limit=LIMIT,
            scale=1000,
        )
    )
    rows[-1].ok, rows[-1].target = None, ""  # information: the request is `peek wa`
    return rows


def run(sizes: Sizes, work: Path, env: dict[str, str]) -> list[Row]:
    log("start-up: editable install (.venv)")
    rows = measure(editable_install(), env, sizes.startup_runs)
    log("start-up: regular install in a temporary venv")
    rows += measure(regular_install(work / "regular-venv"), env, sizes.startup_runs)
    return rows
