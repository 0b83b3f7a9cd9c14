"""The README's `jq -r` recipes keep a hostile message's escape sequences off the terminal.

`--json` escapes everything risky, but `jq -r` writes strings raw: a recipe that prints
`.content.body` as it is hands an ANSI/OSC escape, a C1 control or a bidi override straight to
the terminal. Every `jq -r '…'` filter in the README is run on what peek printed for such a
message.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from tests.unit.hostilehs import HostileServer, message

README = Path(__file__).resolve().parents[2] / "README.md"
HOSTILE_BODY = "hi \x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J\x9b31m \u202eevil\u202c \x85 bye\r\nnext"


def recipes() -> list[str]:
    """The `jq -r` filters that print message text."""
    found = re.findall(r"\| jq -r '([^']+)'", README.read_text())
    return [recipe for recipe in found if ".content.body" in recipe]


def test_the_readme_has_jq_recipes() -> None:
    assert len(recipes()) >= 3


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
@pytest.mark.parametrize("recipe", recipes())
def test_a_jq_recipe_prints_no_control_or_bidi_character(
    hostile: HostileServer, peek: Any, recipe: str
) -> None:
    hostile.history = [message(1, HOSTILE_BODY)]
    result = peek("snapshot", hostile.room, "-s", hostile.url, "--json")
    assert result.exit_code == 0, result.stderr
    done = subprocess.run(
        ["jq", "-r", recipe], input=result.stdout.encode(), capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    shown = done.stdout.decode()
    risky = [c for c in shown if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")]
    assert risky == [], f"{recipe!r} lets {risky!r} through"
    assert "bye" in shown
