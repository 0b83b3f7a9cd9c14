"""Project hygiene a user relies on: README set-up = CI, fresh completions, lint and types clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from peekcli.cli import cli

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    commands = [line.strip() for line in readme[:20] if line.strip().startswith("python3 -m venv")]
    assert len(commands) == 2, "README must open with the two set-up commands"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in [line.strip() for line in ci]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shipped_completions_match_the_code(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    shipped = (ROOT / "completions" / f"peek.{shell}").read_text()
    assert shipped == result.stdout, (
        f"completions/peek.{shell} is stale: run `peek completion {shell} > "
        f"completions/peek.{shell}`"
    )


def test_help_and_version() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).stdout.startswith("peek, version ")
    top = runner.invoke(cli, ["--help"]).stdout
    for word in ("watch", "snapshot", "state", "completion", "Exit codes", "130"):
        assert word in top
    watch = runner.invoke(cli, ["watch", "--help"]).stdout
    for option in ("--json", "--history", "--from", "--reset", "--timeout", "--state-file"):
        assert option in watch


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from peekcli.cli import main; sys.argv=['peek','--help']\n"
        "try: main()\nexcept SystemExit: pass\n"
        "print(sorted(m for m in ('requests','rich','platformdirs','urllib3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "peekcli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "peek" in out.stdout


def test_ruff_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run([BIN / "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_clean() -> None:
    out = subprocess.run([BIN / "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_wheel_holds_the_package_and_no_tests(tmp_path: Path) -> None:
    import zipfile

    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "peekcli/cli.py" in names and "peekcli/render/pretty.py" in names
    # Every module of the package, subpackages included (a subpackage missing from pyproject's
    # list installs a peek that fails at its first import).
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "peekcli").rglob("*.py")}
    assert sorted(modules - set(names)) == []
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "peek = peekcli.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
