"""The rules of the house, as tests, so that the architecture in docs/design.md cannot erode without a red test.

* The routing core knows neither pika, asyncio nor threads, not even through the modules it imports.
* `core` (the facade) and `bridge` (the hand-offs) do not import pika; `bridge` not even indirectly.
* Only the I/O side imports pika: the links and the two sides, the hub, the ledgers (a timer), and `config`, which
  uses pika's URL parser and builds its connection parameters (no I/O).
* No class is over about 300 lines.
* Prose names only what exists: a `Class.member` cited in a docstring, a comment or the docs is a member of it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import channels_rabbitmq_threaded

pytestmark = pytest.mark.unit

PACKAGE = Path(channels_rabbitmq_threaded.__file__).parent
MODULES = {path.stem: path for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "__main__")}
PIKA_ALLOWED = {"link", "consumer", "publisher", "io_thread", "ledgers", "config"}
MAX_CLASS_LINES = 300


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(top-level outside packages, sibling modules) that `module` imports, those under TYPE_CHECKING included."""
    tree = ast.parse(MODULES[module].read_text())
    outside, inside = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            outside |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                outside.add((node.module or "").split(".")[0])
            elif node.level == 1 and node.module:
                inside.add(node.module.split(".")[0])
    return outside - {"__future__"}, inside


def reachable(module: str) -> set[str]:
    """`module` and every sibling module it imports, directly or not."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name not in MODULES:
            continue
        seen.add(name)
        todo.extend(imports_of(name)[1])
    return seen


def outside_imports_reachable_from(module: str) -> set[str]:
    return set().union(*(imports_of(name)[0] for name in reachable(module)))


def test_the_routing_core_knows_no_pika_asyncio_or_threads() -> None:
    assert not outside_imports_reachable_from("routing") & {"pika", "asyncio", "threading"}


def test_the_facade_and_the_bridge_import_no_pika() -> None:
    assert "pika" not in imports_of("core")[0]
    assert "pika" not in outside_imports_reachable_from("bridge")


def test_only_the_io_side_imports_pika() -> None:
    importers = {module for module in MODULES if "pika" in imports_of(module)[0]}
    assert importers <= PIKA_ALLOWED, importers - PIKA_ALLOWED


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_class_is_over_300_lines(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    sizes = {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    assert all(size <= MAX_CLASS_LINES for size in sizes.values()), sizes


def test_every_module_opens_with_a_theory_of_operation() -> None:
    for name, path in MODULES.items():
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert len(docstring.splitlines()) >= 3, f"{name}.py opens without a theory of operation"


def names_of_classes() -> dict[str, set[str]]:
    """Each class of the package by name: its methods, class attributes and the `self.` attributes it assigns, with
    those of its bases in the package."""
    own: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                own.setdefault(node.name, set()).update(_names_in(node))
                bases.setdefault(node.name, []).extend(base.id for base in node.bases if isinstance(base, ast.Name))

    def with_bases(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        found = set(own.get(name, ()))
        for base in bases.get(name, []):
            if base not in seen:
                found |= with_bases(base, seen | {name})
        return found

    return {name: with_bases(name) for name in own}


def _names_in(cls: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for item in ast.walk(cls):
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(item.name)
        targets = (
            item.targets if isinstance(item, ast.Assign) else [item.target] if isinstance(item, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                names.add(target.attr)
    return names


def test_every_class_member_that_prose_names_exists() -> None:
    """`Class.member` in a docstring, a comment or a page of the docs names something that class (or a base) has."""
    classes = names_of_classes()
    texts = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "docs").glob("*.md"), PACKAGE.parent / "README.md"]
    missing = [
        f"{path.name}: {cls}.{member}"
        for path in texts
        for cls, member in re.findall(r"`([A-Z]\w+)\.(\w+)", path.read_text())
        if cls in classes and member not in classes[cls]
    ]
    assert not missing, missing


def test_the_import_list_of_the_design_page_is_the_code_s() -> None:
    """docs/design.md lists, per module, the sibling modules it imports: exactly those the code imports."""
    design = (PACKAGE.parent / "docs" / "design.md").read_text()
    listed = {
        module: set(re.findall(r"`(\w+)`", targets))
        for module, targets in re.findall(r"^- `(\w+)` -> (.+)$", design, re.MULTILINE)
    }
    actual = {path.stem: sibling_imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert listed == {module: siblings for module, siblings in actual.items() if siblings}


def sibling_imports(path: Path) -> set[str]:
    """The package's modules that `path` imports (`from .x import y` and `from . import x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found |= {
                name.split(".")[0] for name in names if (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()
            }
    return found
