"""Code cells of the guide, read from this repository's source files at run time.

A `Code` names a class, function, method or module-level assignment by qualified name, optionally
narrowed to the outermost statements whose text contains a marker string. The source is located
and parsed with `ast`, never imported, so `explain` needs no framework and can never show a copy
that drifted from the code that runs: if a name or marker disappears, `SourceDrift` is raised and
the tests fail.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "resnet_rosetta"


class SourceDrift(LookupError):
    """A code cell names something the source no longer has."""


@dataclass(frozen=True)
class Code:
    """One excerpt: `qualname` in `module` (dotted, below the package, e.g. "frameworks.torch.model").

    `contains` keeps only the outermost statements inside `qualname` whose text contains it;
    `{block}` in `qualname` is replaced by a framework's residual-block class name.
    """

    module: str
    qualname: str
    contains: str | None = None

    @property
    def path(self) -> str:
        """Repository-relative file path (the package maps `resnet_rosetta.X` to `X/`)."""
        return self.module.replace(".", "/") + ".py"

    def with_block(self, block_class: str) -> "Code":
        return Code(self.module, self.qualname.format(block=block_class), self.contains)

    def source(self) -> str:
        """The excerpt's exact text, dedented; `...` marks skipped lines between statements."""
        text = _file_text(self.module)
        lines = text.splitlines()
        node = _find(ast.parse(text), self.qualname.split("."), self)
        if self.contains is None:
            spans = [_span(node)]
        else:
            spans = [_span(s) for s in _outermost(node, self.contains, lines)]
            if not spans:
                raise SourceDrift(f"{self.path}: {self.qualname} has no statement containing {self.contains!r}")
        return _join(lines, spans)


@functools.lru_cache(maxsize=None)
def _file_text(module: str) -> str:
    spec = importlib.util.find_spec(f"{PACKAGE}.{module}")
    if spec is None or spec.origin is None:
        raise SourceDrift(f"module {PACKAGE}.{module} not found")
    return Path(spec.origin).read_text(encoding="utf-8")


Definition = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Assign | ast.AnnAssign


def _find(scope: ast.AST, parts: list[str], code: Code) -> Definition:
    for node in getattr(scope, "body", []):
        if _name_of(node) == parts[0]:
            return node if len(parts) == 1 else _find(node, parts[1:], code)
    raise SourceDrift(f"{code.path}: no {code.qualname}")


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _span(node: ast.stmt) -> tuple[int, int]:
    """1-based first and last line, decorators included."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return first, node.end_lineno or node.lineno


def _outermost(node: ast.AST, marker: str, lines: list[str]) -> list[ast.stmt]:
    """Statements below `node` that contain `marker`, not descending into those that do."""
    found: list[ast.stmt] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.stmt):
            first, last = _span(child)
            if marker in "\n".join(lines[first - 1:last]):
                found.append(child)
                continue
        found.extend(_outermost(child, marker, lines))
    return found


def _join(lines: list[str], spans: list[tuple[int, int]]) -> str:
    chunks = [lines[first - 1:last] for first, last in sorted(spans)]
    indent = min(len(line) - len(line.lstrip()) for chunk in chunks for line in chunk if line.strip())
    out: list[str] = []
    previous_last = None
    for (first, last), chunk in zip(sorted(spans), chunks):
        if previous_last is not None and first > previous_last + 1:
            out.append("...")
        out.extend(line[indent:] for line in chunk)
        previous_last = last
    return "\n".join(out)
