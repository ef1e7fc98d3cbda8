"""A topic for a terminal: facts and code side by side when the columns fit, stacked when they do not."""
from __future__ import annotations

import textwrap
from typing import Iterable

from resnet_rosetta.common.spec import ResNetSpec
from resnet_rosetta.frameworks import FRAMEWORKS
from .figures import MEASURE_COMMAND, Figures, measured, measured_on
from .source import Code
from .topics import FRAMEWORK_TITLES, Row, Topic

MIN_CODE_COLUMN = 48  # narrower than this, code columns are stacked instead of wrapped side by side
MIN_FACT_COLUMN = 12
GAP = " │ "


def render_text(topic: Topic, spec: ResNetSpec, width: int, figures: Figures | None) -> str:
    """One topic for a terminal `width` columns wide."""
    out = [_rule(f" {topic.name} · {topic.title} ", width), ""]
    if topic.rows:
        out += _facts_text(topic.facts(spec), width) + [""]
    if topic.code:
        out += _code_text(topic, spec, width) + [""]
    if topic.note:
        out += textwrap.wrap(topic.note, width) + [""]
    if topic.table:
        out += _grid(list(topic.table[0]), [list(r) for r in topic.table[1:]]) + [""]
        out += textwrap.wrap(f"every row asserted by a test in {topic.table_proof}", width) + [""]
    if topic.measured:
        table = measured(topic, figures)
        if table is None or figures is None:
            out += [f"(not measured yet: run `{MEASURE_COMMAND}`)", ""]
        else:
            out += _grid(*table) + [""] + textwrap.wrap(measured_on(figures), width) + [""]
    if topic.rows:
        proofs = "; ".join(f"({f}): " + ", ".join(tests) for f, tests in topic.proofs.items())
        out += textwrap.wrap(f"proofs {proofs}", width, subsequent_indent="  ")
    return "\n".join(out).rstrip() + "\n"


def _rule(title: str, width: int) -> str:
    return ("━━" + title).ljust(max(width, len(title) + 2), "━")


def _fit(natural: list[int], width: int, minimum: int) -> list[int] | None:
    """Column widths within `width` (gaps included), narrowing the widest first; None below `minimum`."""
    widths = list(natural)
    while sum(widths) + len(GAP) * (len(widths) - 1) > width:
        widest = widths.index(max(widths))
        if widths[widest] <= minimum:
            return None
        widths[widest] -= 1
    return widths


def _facts_text(rows: tuple[Row, ...], width: int) -> list[str]:
    header = [""] + [FRAMEWORK_TITLES[fw] for fw in FRAMEWORKS]
    body = [[r.label] + [r.cell(fw) for fw in FRAMEWORKS] for r in rows]
    widths = _fit([max(len(c) for c in col) for col in zip(header, *body)], width, MIN_FACT_COLUMN)
    if widths is None:  # too narrow for columns: one fact per block
        out = []
        for r in rows:
            out += [r.label, *(f"  {FRAMEWORK_TITLES[fw]}: {r.cell(fw)}" for fw in FRAMEWORKS)]
        return out
    lines = _wrapped_row(header, widths)
    lines.append(GAP.join("─" * w for w in widths))
    for cells in body:
        lines += _wrapped_row(cells, widths)
    return lines


def _wrapped_row(cells: list[str], widths: list[int]) -> list[str]:
    wrapped = [textwrap.wrap(c, w) or [""] for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    return [GAP.join((col[i] if i < len(col) else "").ljust(w) for col, w in zip(wrapped, widths)).rstrip()
            for i in range(height)]


def _code_text(topic: Topic, spec: ResNetSpec, width: int) -> list[str]:
    """Code side by side, long lines wrapped to the column; stacked when the columns would be too narrow."""
    columns = {fw: _code_column(topic.cells(fw, spec)) for fw in FRAMEWORKS if topic.code.get(fw)}
    widths = _fit([max(len(line) for line in [FRAMEWORK_TITLES[fw], *lines]) for fw, lines in columns.items()],
                  width, MIN_CODE_COLUMN)
    if widths is None:
        out: list[str] = []
        for fw, lines in columns.items():
            out += ["", _rule(f" {FRAMEWORK_TITLES[fw]} ", min(width, 40)), *lines]
        return out[1:]
    cols = [[FRAMEWORK_TITLES[fw], "─" * w, *_wrap_code(lines, w)] for (fw, lines), w in zip(columns.items(), widths)]
    height = max(len(c) for c in cols)
    return [GAP.join((c[i] if i < len(c) else "").ljust(w) for c, w in zip(cols, widths)).rstrip()
            for i in range(height)]


def _code_column(cells: Iterable[Code]) -> list[str]:
    lines: list[str] = []
    for code in cells:
        where = f" (statements containing {code.contains})" if code.contains else ""
        lines += [f"# {code.path} · {code.qualname}{where}", *code.source().splitlines(), ""]
    return lines[:-1]


def _wrap_code(lines: list[str], width: int) -> list[str]:
    """Lines longer than `width` continue on the next lines, indented one step deeper."""
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        out += textwrap.wrap(line, width, subsequent_indent=indent, drop_whitespace=False) if len(line) > width \
            else [line]
    return out


def _grid(columns: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(columns, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(columns), line(["─" * w for w in widths]), *(line(r) for r in rows)]
