"""The shape of the code: peekcli's modules import one another without a cycle, and the core
(everything outside cli.py, commands/, render/ and sinks/) never imports click or rich.

Every `import` and `from … import` anywhere in a module counts: at the top, inside functions,
under `if TYPE_CHECKING:`. A lazy import hides a cycle from Python, not from a reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "peekcli"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The peekcli modules `path` (module `name`) imports, anywhere in its body."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from peekcli.x import y`: y may be a module (peekcli.x.y) or a name in peekcli.x.
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target in known and target != name:
                found.add(target)
            elif target.startswith("peekcli.") and target not in known:
                # `import peekcli.a.b.c` where c is a name: the deepest module in it.
                parts = target.split(".")
                while parts and ".".join(parts) not in known:
                    parts.pop()
                if parts and ".".join(parts) != name:
                    found.add(".".join(parts))
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    found = modules(root)
    known = set(found)
    graph = {name: imported(path, name, known) for name, path in found.items()}
    # The package itself (`peekcli/__init__.py`, the version) is imported by all: no edge back.
    for deps in graph.values():
        deps.discard("peekcli")
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycle_between_peekcli_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_check_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    """The detector itself: a lazy import inside a function still closes a cycle."""
    pkg = tmp_path / "peekcli"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from peekcli.sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "def thing():\n    from ..c import other\n"
        "if TYPE_CHECKING:\n    pass\n"
    )
    (pkg / "c.py").write_text("def other():\n    import peekcli.a\n")
    graph = import_graph(pkg)
    assert graph["peekcli.a"] == {"peekcli.sub.b"}
    assert graph["peekcli.sub.b"] == {"peekcli.c"}
    assert find_cycle(graph) == ["peekcli.a", "peekcli.sub.b", "peekcli.c", "peekcli.a"]
    (pkg / "c.py").write_text("def other():\n    return 1\n")
    assert find_cycle(import_graph(pkg)) is None


#: Where click and rich may be imported: the command line, rendering, and the sinks.
UI = ("peekcli.cli", "peekcli.commands", "peekcli.render", "peekcli.sinks")


@pytest.mark.parametrize("library", ["click", "rich"])
def test_the_core_never_imports_click_or_rich(library: str) -> None:
    offenders = []
    for name, path in modules().items():
        if name == "peekcli" or name.startswith(UI):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            if any(n == library or n.startswith(library + ".") for n in names):
                offenders.append(name)
    assert not offenders, f"{library} imported by the core: {sorted(set(offenders))}"


# -- the README's code map -------------------------------------------------------------------------

README = PACKAGE.parent / "README.md"
#: A module path in the map: `connect.py`, `follow/room.py`, a folder `render/`.
_MAP_PATH = re.compile(r"`((?:[a-z_]+/)*(?:[a-z_]+\.py|[a-z_]+/))`")


def code_map() -> list[tuple[str, list[str]]]:
    """The README's code map: each row's layer and the module paths it names, top row first."""
    text = README.read_text()
    section = text[text.index("### Code map") :]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("layer", "---"):
            rows.append((cells[0], _MAP_PATH.findall(cells[1])))
    return rows


def row_of(rows: list[tuple[str, list[str]]], relative: str) -> int | None:
    """The row that names this module (`follow/room.py`): the module itself, else its deepest
    folder named (`render/families/media.py` → `render/`)."""
    best: tuple[int, int] | None = None  # (how specific, row)
    for n, (_layer, paths) in enumerate(rows):
        for path in paths:
            if path == relative:
                depth = 1000
            elif path.endswith("/") and relative.startswith(path):
                depth = path.count("/")
            else:
                continue
            if best is None or depth > best[0]:
                best = (depth, n)
    return best[1] if best is not None else None


def test_the_code_map_names_only_modules_that_exist() -> None:
    rows = code_map()
    assert [layer for layer, _ in rows][:2] == ["CLI", "jobs"], "the code map table was not found"
    missing = [path for _, paths in rows for path in paths if not (PACKAGE / path).exists()]
    assert missing == []


def test_the_code_map_names_every_module() -> None:
    rows = code_map()
    with_code = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "__init__.py" and not _docstring_only(path)
    ]
    assert [module for module in with_code if row_of(rows, module) is None] == []


def _docstring_only(path: Path) -> bool:
    """A package's `__init__.py` that only says what the package is (`follow/`, `matrix/`)."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def test_imports_point_down_the_code_map() -> None:
    """A module imports only from its own row of the map or from the rows below it."""
    rows = code_map()

    def row(module: str) -> int | None:
        path = modules()[module].relative_to(PACKAGE).as_posix()
        return row_of(rows, path)

    upward = []
    for module, deps in import_graph().items():
        here = row(module)
        for dep in deps:
            there = row(dep)
            if here is not None and there is not None and there < here:
                upward.append(f"{module} ({rows[here][0]}) → {dep} ({rows[there][0]})")
    assert sorted(upward) == []
