"""``deploykit check`` rendered: a :class:`~deploykit.bench.regression.CheckReport` as a rich table, one line, markdown.

The regression rule itself (matching cells, noise-widened thresholds, the verdicts) is analysis and lives in
:mod:`deploykit.bench.regression`; its names are re-exported here for code written before it moved.
"""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text

from deploykit.bench.regression import (  # noqa: F401  (re-exported)
    DEFAULT_TOLERANCE,
    FAILING,
    CellComparison,
    CheckReport,
    check_comparable,
    compare_cell,
    compare_results,
    parse_tolerance,
)
from deploykit.report.bench import fmt_ms, fmt_pct
from deploykit.report.layout import optional_columns

# ------------------------------------------------------------------------------------------------ rendering
_STYLE = {
    "regression": "bold red",
    "wrong": "bold red",
    "broken": "bold red",
    "improvement": "green",
    "missing": "yellow",
    "new": "cyan",
    "not run": "dim",
}


def _fmt_change(c: CellComparison) -> str:
    if c.change is None:
        return "-"
    return "inf" if not math.isfinite(c.change) else f"{c.change * 100:+.1f}%"


def check_table(report: CheckReport, *, show_unchanged: bool = True) -> Table:
    """The comparison as a rich table (regressions first)."""
    table = Table(
        title=f"deploykit check on {report.device} (tolerance {report.tolerance * 100:g}%)",
        title_justify="left",
        header_style="bold",
    )
    for name in (
        "status",
        "model",
        "backend",
        "prec",
        "batch",
        "baseline ms",
        "current ms",
        "change",
        "threshold",
        "noise b/c",
        "note",
    ):
        table.add_column(
            name,
            justify="right"
            if name in ("batch", "baseline ms", "current ms", "change", "threshold")
            else "left",
        )
    for c in report.comparisons:
        if c.status == "unchanged" and not show_unchanged:
            continue
        noise = "-" if c.noise_baseline is None else f"{fmt_pct(c.noise_baseline)}/{fmt_pct(c.noise_current)}"
        table.add_row(
            Text(c.status, style=_STYLE.get(c.status, "")),
            c.model,
            c.backend,
            c.precision,
            str(c.batch),
            fmt_ms(c.baseline_ms),
            fmt_ms(c.current_ms),
            _fmt_change(c),
            "-" if c.threshold is None else f"±{c.threshold * 100:.1f}%",
            noise,
            c.note,
        )
    return optional_columns(table, ("noise b/c", "current ms", "baseline ms"))


def check_summary(report: CheckReport) -> str:
    """One line: ``FAIL: 2 regressions, 1 improvement, 12 unchanged`` (or ``PASS: ...``)."""
    counts = report.counts()
    parts = [f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: kv[0])]
    return f"{'FAIL' if report.failed else 'PASS'}: " + (", ".join(parts) if parts else "no cells")


def check_markdown(report: CheckReport) -> str:
    """The comparison as GitHub markdown (for ``$GITHUB_STEP_SUMMARY``)."""
    lines = [
        f"## deploykit check on {report.device}",
        "",
        f"**{check_summary(report)}** (tolerance {report.tolerance * 100:g}%)",
        "",
    ]
    lines += [f"- version change: {w}" for w in report.warnings]
    if report.warnings:
        lines.append("")
    lines += [
        "| status | model | backend | prec | batch | baseline ms | current ms | change | threshold | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report.comparisons:
        thr = "-" if c.threshold is None else f"±{c.threshold * 100:.1f}%"
        lines.append(
            f"| {c.status} | {c.model} | {c.backend} | {c.precision} | {c.batch} | {fmt_ms(c.baseline_ms)} | "
            f"{fmt_ms(c.current_ms)} | {_fmt_change(c)} | {thr} | {c.note.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def _command_data(text: str) -> str:
    """Escape the message of a GitHub Actions workflow command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def check_annotations(report: CheckReport) -> list[str]:
    """GitHub Actions workflow commands: an ``::error::`` per failing cell (regression, wrong output, broken) and
    a ``::warning::`` per library version change, each shown on the run's page."""
    out = []
    for c in report.regressions:
        thr = "" if c.threshold is None else f" (threshold ±{c.threshold * 100:.1f}%)"
        change = "" if c.change is None else f": {_fmt_change(c)}{thr}, {fmt_ms(c.baseline_ms)} -> {fmt_ms(c.current_ms)} ms"
        msg = f"{c.model} {c.backend} {c.precision} b{c.batch} {c.status}{change}" + (f"; {c.note}" if c.note else "")
        out.append(f"::error title={_command_property('deploykit check: ' + c.status)}::{_command_data(msg)}")
    for w in report.warnings:
        out.append(f"::warning title={_command_property('deploykit check: version change')}::{_command_data(w)}")
    return out
