"""The rules of the house, as tests, so that the architecture in docs/design.md cannot erode without a red test.

* The routing core knows neither pika, asyncio nor threads, not even through the modules it imports.
* `core` (the facade) and `bridge` (the hand-offs) do not import pika; `bridge` not even indirectly.
* Only the I/O side imports pika: the links and the two sides, the hub, the ledgers (a timer), and `config`, which
  uses pika's URL parser and builds its connection parameters (no I/O).
* No class is over about 300 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import channels_rabbitmq_threaded

pytestmark = pytest.mark.unit

PACKAGE = Path(channels_rabbitmq_threaded.__file__).parent
MODULES = {path.stem: path for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "__main__")}
PIKA_ALLOWED = {"link", "consumer", "publisher", "io_thread", "ledgers", "config"}
MAX_CLASS_LINES = 300


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(top-level outside packages, sibling modules) that `module` imports, at run time (not under TYPE_CHECKING)."""
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
