"""Shell completion of rooms and homeservers comes from the state file, never the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def complete(words: str, state_file: Path) -> list[str]:
    """Ask the real `peek` for bash completions of the last word of `words`."""
    parts = words.split(" ")
    env = {
        **os.environ,
        "_PEEK_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
        "PEEK_STATE_FILE": str(state_file),
    }
    code = (
        "import sys\nfrom peekcli.cli import main\ntry: main()\nexcept SystemExit: pass\n"
        "sys.stderr.write(repr(sorted({'requests','rich','socket'} & set(sys.modules))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    # No HTTP library (nor even a socket) is loaded: completion cannot touch the network.
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
    return [line.split(",", 1)[1] for line in out.stdout.splitlines() if "," in line]


def write_state(path: Path) -> None:
    from peekcli.state import Position, StateStore

    store = StateStore(path)
    store.save("https://a.test", "!one:a.test", Position("t", alias="#lobby:a.test"))
    store.save("https://b.test", "!two", Position("u"))


def test_rooms_complete_from_a_json_state_not_imported_yet(tmp_path: Path) -> None:
    """Until a run imports it, the JSON state of an earlier peek still completes."""
    doc = {
        "version": 1,
        "positions": {"https://a.test": {"!one:a.test": {"token": "t", "alias": "#lobby:a.test"}}},
    }
    (tmp_path / "state.json").write_text(json.dumps(doc))
    assert complete("peek watch '", tmp_path / "state.db") == ["!one:a.test", "#lobby:a.test"]
    assert not (tmp_path / "state.db").exists()


def test_rooms_complete_from_saved_positions(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    write_state(state)
    # bash inserts a completion as it is: ids and aliases come quoted (see the test below).
    assert complete("peek watch ", state) == ["'!one:a.test'", "'!two'", "'#lobby:a.test'"]
    assert complete("peek snapshot #lo", state) == ["'#lobby:a.test'"]
    # A quote the user opened is closed by bash itself: the bare value then.
    assert complete("peek snapshot '#lo", state) == ["#lobby:a.test"]
    assert complete("peek watch --homeserver https://b", state) == ["https://b.test"]


def test_completion_with_no_state_file_offers_nothing(tmp_path: Path) -> None:
    assert complete("peek watch ", tmp_path / "missing.json") == []


def test_commands_complete(tmp_path: Path) -> None:
    assert "watch" in complete("peek w", tmp_path / "s.json")


def test_bash_inserts_rooms_that_the_shell_reads_back_as_typed(tmp_path: Path) -> None:
    """Unquoted, `#lobby:…` would make the rest of the line a comment and `!id` a history
    expansion ("event not found"): what bash inserts must parse back to the room itself."""
    state = tmp_path / "state.db"
    write_state(state)
    script = subprocess.run(
        [sys.executable, "-m", "peekcli", "completion", "bash"], capture_output=True, text=True
    ).stdout
    for typed, room in (("#", "#lobby:a.test"), ("!t", "!two")):
        probe = (
            f"{script}\nset -H\nCOMP_WORDS=(peek watch {typed!r}); COMP_CWORD=2\n"
            '_peek_completion peek\neval "set -- ${COMPREPLY[0]} end"\nprintf \'%s|\' "$@"'
        )
        env = {**os.environ, "PEEK_STATE_FILE": str(state), "PATH": _venv_path()}
        out = subprocess.run(["bash", "-c", probe], env=env, capture_output=True, text=True)
        assert out.stdout == f"{room}|end|", out.stderr


def _venv_path() -> str:
    """PATH with this interpreter's bin first, where the `peek` console script lives."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
