"""docs/architecture.md, enforced: which package may import what (an AST scan of every module,
lazy imports inside functions included), no import cycles, and the layout targets."""
from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "frameworks", "parity", "benchmarks", "training", "guide", "cli")
FRAMEWORK_MODULES = {"torch": {"torch", "torchvision"}, "paddle": {"paddle"}, "flax": {"jax", "jaxlib", "flax", "optax"}}
ALL_FRAMEWORK_MODULES = set().union(*FRAMEWORK_MODULES.values())
COMMON_THIRD_PARTY = {"numpy", "safetensors"}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py"))


def _name(path: Path) -> str:
    """`resnet_rosetta.<package>...` of a source file (the package maps X/ to resnet_rosetta.X)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["resnet_rosetta", *parts])


def _imports(path: Path, top_level_only: bool = False) -> Iterator[tuple[int, str, int]]:
    """(line, absolute module name, relative level) of every import in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module, node.level
            for alias in node.names:  # `from resnet_rosetta import frameworks` imports a module
                yield node.lineno, f"{module}.{alias.name}", node.level


def _violations(rule: callable) -> list[str]:  # type: ignore[valid-type]
    found = []
    for path in _modules():
        for line, module, level in _imports(path):
            why = rule(path.relative_to(ROOT), module, level)
            if why:
                found.append(f"{path.relative_to(ROOT)}:{line}: {module}: {why}")
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_common_imports_only_numpy_safetensors_and_the_standard_library() -> None:
    def rule(path: Path, module: str, level: int) -> str | None:
        if path.parts[0] != "common":
            return None
        if module.startswith("resnet_rosetta."):
            return None if module.startswith("resnet_rosetta.common") else "common/ imports only common/"
        ok = _top(module) in sys.stdlib_module_names or _top(module) in COMMON_THIRD_PARTY
        return None if ok else "not NumPy, safetensors or the standard library"
    assert _violations(rule) == []


def test_each_framework_folder_imports_only_its_framework_and_common() -> None:
    def rule(path: Path, module: str, level: int) -> str | None:
        if path.parts[0] != "frameworks" or len(path.parts) < 3:
            return None
        fw = path.parts[1]
        if _top(module) in ALL_FRAMEWORK_MODULES - FRAMEWORK_MODULES[fw]:
            return f"frameworks/{fw}/ imports another framework"
        if module.startswith("resnet_rosetta."):
            own = (f"resnet_rosetta.frameworks.{fw}", "resnet_rosetta.common")
            return None if module.startswith(own) else f"frameworks/{fw}/ imports only common/ and itself"
        return None
    assert _violations(rule) == []


def test_nothing_outside_frameworks_imports_a_framework() -> None:
    def rule(path: Path, module: str, level: int) -> str | None:
        if path.parts[0] == "frameworks" and len(path.parts) >= 3:
            return None
        if _top(module) in ALL_FRAMEWORK_MODULES:
            return "a framework imported outside frameworks/<fw>/"
        if any(module.startswith(f"resnet_rosetta.frameworks.{fw}") for fw in FRAMEWORK_MODULES):
            return "a framework folder imported directly (use frameworks.load)"
        return None
    assert _violations(rule) == []


def test_imports_across_packages_are_absolute() -> None:
    def rule(path: Path, module: str, level: int) -> str | None:
        return "relative import beyond its own package" if level > 1 else None
    assert _violations(rule) == []


def test_cli_is_the_top_and_nothing_imports_it() -> None:
    def rule(path: Path, module: str, level: int) -> str | None:
        if path.parts[0] != "cli" and module.startswith("resnet_rosetta.cli"):
            return "only cli/ imports cli/"
        return None
    assert _violations(rule) == []


def test_no_import_cycles() -> None:
    """Module-level imports between this project's modules form no cycle."""
    names = {_name(p): p for p in _modules()}
    graph = {name: {m for _, m, _ in _imports(path, top_level_only=True) if m in names and m != name}
             for name, path in names.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt])
                            if nxt in trail else f"import cycle through {node} -> {nxt}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_layout_targets() -> None:
    cli = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "cli").glob("*.py")}
    assert {name: n for name, n in cli.items() if n > 150} == {}
    assert sum(cli.values()) <= 900
    long_docstrings = {}
    for path in _modules():
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        if doc and len(doc.splitlines()) > 20:
            long_docstrings[str(path.relative_to(ROOT))] = len(doc.splitlines())
    assert long_docstrings == {}
    tests = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "tests").rglob("*.py")}
    assert {name: n for name, n in tests.items() if n > 400} == {}
    basenames = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(basenames) == len(set(basenames)), "test files need unique names (no __init__.py in tests/)"


def test_rule_scanner_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The scanner itself: a lazy import inside a function and a relative import resolve to their modules."""
    source = ROOT / "parity" / "isolation.py"
    found = {module for _, module, _ in _imports(source)}
    assert "safetensors.numpy" in found  # imported inside worker()
    assert "resnet_rosetta.parity.engine" in found  # `from . import engine`
