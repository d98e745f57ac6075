"""Render an :class:`~deploykit.evaluate.Evaluation`: one table per model with a row per artifact (rich or
GitHub markdown), then one line per skipped or failed artifact and the notes.

Accuracies and agreement are stored as fractions and shown as percentages truncated (never rounded up) to one
decimal, so that 99.96% agreement is never shown as 100%; exactly 100% is shown as ``100%``. ``1-cos`` is the
largest ``1 - cosine similarity`` of a sample's logits with eager's (0 = same direction).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from deploykit.evaluate import ArtifactResult, Evaluation, LogitMetrics
from deploykit.report.layout import optional_columns

__all__ = ["evaluation_lines", "evaluation_markdown", "evaluation_renderable", "evaluation_title", "fmt_share"]


def fmt_share(x: float | None, n: int | None = None) -> str:
    """``1.0`` -> ``100%``; ``0.9996`` -> ``99.9%`` (truncated); with ``n`` samples, the count when not 100%."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x >= 1.0:
        return "100%"
    text = f"{math.floor(x * 1000 + 1e-9) / 10:.1f}%"  # the epsilon: 0.941 * 1000 may be 940.999...
    if n:
        text += f" ({round(x * n)}/{n})"
    return text


def _g(x: float | None) -> str:
    if x is None:
        return "—"
    if math.isinf(x) or math.isnan(x):
        return str(x)
    return f"{x:.3g}"


def _one_minus_cos(m: LogitMetrics) -> str:
    return "—" if m.cosine_min is None else _g(max(0.0, 1.0 - m.cosine_min))


#: (header, cell for a row, right-aligned)
_COLUMNS: list[tuple[str, Callable[[ArtifactResult, bool], str], bool]] = [
    ("artifact", lambda r, ref: r.label, False),
    ("runtime", lambda r, ref: r.runtime, False),
    ("top-1", lambda r, ref: fmt_share(r.metrics.top1) if r.metrics else "—", True),
    ("top-5", lambda r, ref: fmt_share(r.metrics.top5) if r.metrics else "—", True),
    ("agreement", lambda r, ref: "reference" if ref else (fmt_share(r.metrics.agreement, r.metrics.samples) if r.metrics else "—"), True),
    ("max |Δlogit|", lambda r, ref: "—" if ref or not r.metrics else _g(r.metrics.max_abs_error), True),
    ("mean |Δlogit|", lambda r, ref: "—" if ref or not r.metrics else _g(r.metrics.mean_abs_error), True),
    ("max 1-cos", lambda r, ref: "—" if ref or not r.metrics else _one_minus_cos(r.metrics), True),
]


def _is_ref(ev: Evaluation, r: ArtifactResult) -> bool:
    return ev.reference is not None and r.kind == "eager"


def evaluation_title(ev: Evaluation) -> str:
    d = ev.data
    w = ev.weights
    weights = f"weights {w['source']} (sha256 {w['sha256'][:12]})" if w else "random weights"
    return (
        f"{ev.model} on {d['name']} {d['split']}: {d['samples']} samples (sha256 {d['sha256'][:12]}); {weights}"
        + (f"; reference: {ev.reference}" if ev.reference else "")
    )


def evaluation_lines(ev: Evaluation) -> list[str]:
    """The lines under the table: skipped / failed artifacts, what the fp16 rows cover, notes."""
    lines = []
    for r in ev.rows:
        if r.status != "ok":
            lines.append(f"{r.label}: {r.status}: {r.reason}")
    for r in ev.rows:
        lines.extend(f"{r.label}: {n}" for n in r.notes)
        if r.path:
            lines.append(f"{r.label}: file {r.path}")
    lines.extend(ev.notes)
    return lines


def evaluation_renderable(ev: Evaluation) -> Group:
    """A rich table (rows that ran) and the lines of :func:`evaluation_lines`."""
    table = Table(title=evaluation_title(ev), header_style="bold", title_justify="left")
    for header, _, right in _COLUMNS:
        table.add_column(header, justify="right" if right else "left")
    for r in ev.rows:
        if r.status == "ok":
            table.add_row(*(cell(r, _is_ref(ev, r)) for _, cell, _ in _COLUMNS))
    optional_columns(table, ("max 1-cos", "mean |Δlogit|", "top-5", "runtime"))
    return Group(table, *(Text(line) for line in evaluation_lines(ev)))


def evaluation_markdown(ev: Evaluation, heading: str | None = None) -> str:
    """The same as GitHub markdown (a table and a bullet list)."""
    out = ([f"### {heading}", ""] if heading else []) + [evaluation_title(ev), ""]
    out.append("| " + " | ".join(h.replace("|", "\\|") for h, _, _ in _COLUMNS) + " |")
    out.append("|" + "|".join("---:" if right else "---" for _, _, right in _COLUMNS) + "|")
    for r in ev.rows:
        if r.status == "ok":
            out.append("| " + " | ".join(cell(r, _is_ref(ev, r)).replace("|", "\\|") for _, cell, _ in _COLUMNS) + " |")
    lines = evaluation_lines(ev)
    if lines:
        out.append("")
        out.extend(f"- {line}" for line in lines)
    return "\n".join(out) + "\n"
