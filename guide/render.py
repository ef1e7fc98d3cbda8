"""Two views of the same topics: terminal text (side by side when it fits) and the Markdown guide."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any, Iterable

from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from .measure import MEASURE_COMMAND
from .source import Code
from .topics import FRAMEWORK_TITLES, FRAMEWORKS, PROOFS, TOPICS, Row, Topic

Figures = dict[str, Any]
GUIDE_COMMAND = "resnet-rosetta explain --markdown docs/differences.md"
MIN_CODE_COLUMN = 48  # narrower than this, code columns are stacked instead of wrapped side by side
MIN_FACT_COLUMN = 12
BLOCK_EXAMPLES = ("resnet50", "resnet18")  # one architecture per block type, for the guide
GAP = " │ "


def load_figures(path: str | os.PathLike[str]) -> Figures | None:
    """The measured figures written by `explain --measure`, or None if there are none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path}: not a JSON file of measured figures ({exc})") from None


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if 1e-2 <= abs(value) < 1e3 else f"{value:.1e}"
    return str(value)


def measured(topic: Topic, figures: Figures | None) -> tuple[list[str], list[list[str]]] | None:
    """(columns, formatted rows) measured for `topic`, if any."""
    table = (figures or {}).get("tables", {}).get(topic.name)
    if table is None:
        return None
    return table["columns"], [[format_value(v) for v in row] for row in table["rows"]]


def measured_on(figures: Figures) -> str:
    about = figures["about"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(about["versions"].items()))
    return (f"Measured {about['date']} with `{about['command']}` on {about['machine']} (1-minute load "
            f"average {about['load_average']} when it started), Python {about['python']}, {versions}. "
            f"Bench model: {about['bench']}.")


# ---------------------------------------------------------------- terminal

def render_text(topic: Topic, spec: ResNetSpec, width: int, figures: Figures | None) -> str:
    """One topic for a terminal `width` columns wide."""
    out = [_rule(f" {topic.name} · {topic.title} ", width), ""]
    if topic.rows:
        out += _facts_text(topic.facts(spec), width) + [""]
    if topic.code:
        out += _code_text(topic, spec, width) + [""]
    if topic.note:
        out += textwrap.wrap(topic.note, width) + [""]
    if topic.measured:
        table = measured(topic, figures)
        if table is None or figures is None:
            out += [f"(not measured yet: run `{MEASURE_COMMAND}`)", ""]
        else:
            out += _grid(*table) + [""] + textwrap.wrap(measured_on(figures), width) + [""]
    if topic.rows:
        out += textwrap.wrap(f"proofs ({PROOFS}): " + ", ".join(topic.proofs), width, subsequent_indent="  ")
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


# ---------------------------------------------------------------- Markdown guide

def render_markdown(figures: Figures) -> str:
    """docs/differences.md: every topic, with the figures measured by `explain --measure`."""
    out = [
        "# PyTorch, Paddle and Flax: the differences, side by side",
        "",
        f"<!-- Generated by `{GUIDE_COMMAND}` from guide/topics.py and the source files it names. "
        "Do not edit: tests/test_explain.py fails when this file differs from a fresh rendering. -->",
        "",
        "The same ResNet is written natively three times in this repository. This guide sets the three "
        "side by side, one topic at a time: a table of facts, the code that embodies them (read from the "
        "source files when the guide is generated, never pasted), and a note. Every fact names the test in "
        f"[{PROOFS}](../{PROOFS}) that fails if it stops being true; every number is measured. The same "
        "topics print in a terminal with `resnet-rosetta explain TOPIC`.",
        "",
        measured_on(figures) + f" Regenerate with `{MEASURE_COMMAND} --markdown docs/differences.md`.",
        "",
        "| topic | what it covers |",
        "|---|---|",
        *(f"| [{t.title}](#{t.name}) | {t.summary} |" for t in TOPICS),
        "",
    ]
    for topic in TOPICS:
        out += [f'<a id="{topic.name}"></a>', "", f"## {topic.title}", "",
                f"`resnet-rosetta explain {topic.name}`", ""]
        specs = [get_spec(a) for a in BLOCK_EXAMPLES] if topic.per_block else [get_spec(BLOCK_EXAMPLES[0])]
        for spec in specs:
            if topic.per_block:
                out += [f"### {spec.name}: `explain {topic.name} --arch {spec.name}`", ""]
            if topic.rows:
                out += _facts_markdown(topic.facts(spec)) + [""]
            if topic.code:
                out += _code_markdown(topic, spec) + [""]
        if topic.note:
            out += [topic.note, ""]
        table = measured(topic, figures)
        if table is not None:
            out += _table_markdown(*table) + [""]
    return "\n".join(out).rstrip() + "\n"


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def _table_markdown(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(_escape(c) for c in columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(_escape(c) for c in row) + " |" for row in rows)]


def _facts_markdown(rows: tuple[Row, ...]) -> list[str]:
    columns = ["", *(FRAMEWORK_TITLES[fw] for fw in FRAMEWORKS), "proof"]
    body = [[r.label, *(r.cell(fw) for fw in FRAMEWORKS), f"[`{r.proof}`](../{PROOFS})"] for r in rows]
    return _table_markdown(columns, body)


def _code_markdown(topic: Topic, spec: ResNetSpec) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{FRAMEWORK_TITLES[fw]}</th>" for fw in FRAMEWORKS) + "</tr>", "<tr>"]
    for fw in FRAMEWORKS:
        out += ['<td valign="top">', ""]
        for code in topic.cells(fw, spec):
            where = f", statements containing `{code.contains}`" if code.contains else ""
            out += [f"[`{code.path}`](../{code.path}) · `{code.qualname}`{where}", "",
                    "```python", code.source(), "```", ""]
        out.append("</td>")
    return out + ["</tr>", "</table>"]
