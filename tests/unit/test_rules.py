"""The rules of the house, as tests, so that the architecture in docs/design.md cannot erode without a red test.

The rules follow the folders: the public modules at the top of the package, and three private sub-packages.

* `_routing/` (the routing state) knows neither pika, asyncio nor threads, and imports nothing outside itself.
* `_bridge/` (where threads meet) imports no pika, not even indirectly, and nothing of the I/O thread's.
* Only `_io/` (the I/O thread) imports pika, and `_config`, which uses pika's URL parser and builds its connection
  parameters (no I/O); the benchmark, which measures pika itself, is not the layer.
* The private sub-packages import no public module but the two leaves `errors` and `stats`: arrows run from the
  facade and the add-ons down, never back up.
* The add-ons and the benchmark use no internals: nothing of `_io/`, `_bridge/` or `_routing/`.
* Imports make no circle, type-only ones included.
* Prose names only what exists: a `Class.member` cited in a docstring, a comment or the docs is a member of it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import channels_rabbitmq_threaded

PACKAGE = Path(channels_rabbitmq_threaded.__file__).parent
PRIVATE = ("_io", "_bridge", "_routing")
ADD_ONS = ("health", "prometheus", "otel", "lifespan", "checks", "apps")


def dotted(path: Path) -> str:
    """`_io.link` for `_io/link.py`, `_io` for `_io/__init__.py`."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {dotted(path): path for path in PACKAGE.rglob("*.py") if path != PACKAGE / "__init__.py"}


def in_folder(module: str, *folders: str) -> bool:
    return module.split(".")[0] in folders


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(top-level outside packages, the package's own modules) that `module` imports, type-only imports included."""
    path = MODULES[module]
    here = dotted(path).split(".") if path.name == "__init__.py" else dotted(path).split(".")[:-1]
    tree = ast.parse(path.read_text())
    outside, inside = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            outside |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                outside.add((node.module or "").split(".")[0])
                continue
            base = ".".join([*here[: len(here) - node.level + 1], *(node.module.split(".") if node.module else [])])
            named = {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
            inside |= (named & MODULES.keys()) or {base}
    return outside - {"__future__"}, inside - {""}


def reachable(module: str) -> set[str]:
    """`module` and every module of the package it imports, directly or not."""
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


def test_the_folders_are_what_the_rules_name() -> None:
    assert {module.split(".")[0] for module in MODULES if module.startswith("_") and "." in module} == set(PRIVATE)
    assert all(module in MODULES for module in ADD_ONS)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_folder(m, "_routing")))
def test_the_routing_state_knows_no_pika_asyncio_or_threads(module: str) -> None:
    assert not outside_imports_reachable_from(module) & {"pika", "asyncio", "threading"}
    assert all(in_folder(name, "_routing") for name in reachable(module))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_folder(m, "_bridge")))
def test_the_bridge_reaches_no_pika_and_nothing_of_the_io_thread(module: str) -> None:
    assert "pika" not in outside_imports_reachable_from(module)
    assert not any(in_folder(name, "_io") for name in reachable(module))


def test_only_the_io_thread_imports_pika() -> None:
    importers = {module for module in MODULES if "pika" in imports_of(module)[0] and not in_folder(module, "bench")}
    assert all(in_folder(module, "_io") or module == "_config" for module in importers), importers


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_folder(m, *PRIVATE)))
def test_the_private_packages_import_no_public_module_but_the_leaves(module: str) -> None:
    public = {name for name in imports_of(module)[1] if not name.startswith("_")}
    assert public <= {"errors", "stats"}, public


@pytest.mark.parametrize("module", sorted(m for m in MODULES if in_folder(m, *ADD_ONS, "bench")))
def test_the_add_ons_and_the_benchmark_use_no_internals(module: str) -> None:
    assert not any(in_folder(name, *PRIVATE) for name in imports_of(module)[1])


def test_the_imports_make_no_circle() -> None:
    """Imports run one way (type-only ones included): no module reaches itself again through what it imports."""
    for module in MODULES:
        assert not any(module in reachable(name) for name in imports_of(module)[1]), module


def test_the_facade_imports_no_pika() -> None:
    assert "pika" not in imports_of("core")[0]


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
        module: set(re.findall(r"`([\w.]+)`", targets))
        for module, targets in re.findall(r"^- `([\w.]+)` -> (.+)$", design, re.MULTILINE)
    }
    actual = {module: imports_of(module)[1] for module in MODULES if not module.startswith("bench.")}
    assert listed == {module: imports for module, imports in actual.items() if imports}
