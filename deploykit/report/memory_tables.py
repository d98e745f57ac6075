"""Render a :class:`~deploykit.profile.memory.MemoryReport`: the terms per batch size, where the peaks are,
and the rows that hold the most memory. Bytes in decimal units (MB = 10^6 bytes), rounded here only.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from deploykit.profile.memory import TERMS, MemoryReport
from deploykit.report.profile_tables import fmt_bytes

_LABELS = dict(TERMS)


def _scaling(report: MemoryReport) -> dict[str, bool] | None:
    return report.scales_with_batch() if len(report.batch_sizes) > 1 else None


def memory_terms_table(report: MemoryReport) -> Table:
    """One row per memory term, one column per batch size, and whether the term grows with the batch."""
    scaling = _scaling(report)
    title = (
        f"Memory of {report.model} ({report.dtype}, {report.target} allocator"
        + (f", optimizer {report.optimizer}" if report.optimizer else ", inference only")
        + ")"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("Term")
    for b in report.batch_sizes:
        table.add_column(f"batch {b}", justify="right")
    if scaling is not None:
        table.add_column("Scales with batch")
    for key, values in report.terms().items():
        cells = [_LABELS[key], *(fmt_bytes(v) for v in values)]
        if scaling is not None:
            cells.append("yes" if scaling[key] else "no")
        table.add_row(*cells)
    return table


def _peak_lines(report: MemoryReport) -> list[Text]:
    lines = []
    for inf in report.inference:
        lines.append(Text(
            f"batch {inf.batch_size}: inference activation peak {fmt_bytes(inf.peak_bytes)} during "
            f"{inf.peak_layer}; sum of all outputs {fmt_bytes(inf.sum_outputs_bytes)} "
            f"({inf.sum_outputs_bytes / max(inf.peak_bytes, 1):.1f}x the peak, not a memory figure)"
        ))
    for tr in report.training:
        parts = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in tr.peak_breakdown.items() if v)
        lines.append(Text(
            f"batch {tr.batch_size}: training-step peak {fmt_bytes(tr.peak_bytes)} in the {tr.peak_phase} "
            f"at {tr.peak_where} ({parts})"
        ))
    return lines


def memory_layers_table(report: MemoryReport, top: int = 5) -> Table:
    """The rows that hold the most memory at the largest batch: inference live-after and training saved."""
    inf = report.inference[-1]
    tr = report.training[-1] if report.training else None
    table = Table(title=f"Memory hogs at batch {inf.batch_size} (top {top})", title_justify="left")
    table.add_column("Layer (inference)")
    table.add_column("Alloc", justify="right")
    table.add_column("Peak while running", justify="right")
    if tr is not None:
        table.add_column("Layer (training)")
        table.add_column("Saved for backward", justify="right")
    by_alloc = sorted(inf.layers, key=lambda r: r.alloc_bytes, reverse=True)[:top]
    by_saved = sorted(tr.layers, key=lambda r: r.saved_bytes, reverse=True)[:top] if tr is not None else []
    for i in range(max(len(by_alloc), len(by_saved))):
        cells: list[str] = []
        if i < len(by_alloc):
            r = by_alloc[i]
            cells += [r.name, fmt_bytes(r.alloc_bytes), fmt_bytes(r.peak_bytes)]
        else:
            cells += ["", "", ""]
        if tr is not None:
            cells += [by_saved[i].name, fmt_bytes(by_saved[i].saved_bytes)] if i < len(by_saved) else ["", ""]
        table.add_row(*cells)
    return table


def memory_renderable(report: MemoryReport, top: int = 5) -> Group:
    """Terms table, peak lines and memory hogs, for the terminal."""
    return Group(memory_terms_table(report), *_peak_lines(report), memory_layers_table(report, top))


def memory_markdown(report: MemoryReport) -> str:
    """The terms table as GitHub markdown (bytes in MB), then the peak lines."""
    scaling = _scaling(report)
    head = ["Term", *(f"batch {b}" for b in report.batch_sizes)] + (["scales with batch"] if scaling else [])
    out = [f"Memory of {report.model} ({report.dtype}, {report.target} allocator, optimizer "
           f"{report.optimizer or 'none'})", "", "| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for key, values in report.terms().items():
        cells: Sequence[str] = [_LABELS[key], *(fmt_bytes(v) for v in values)]
        if scaling:
            cells = [*cells, "yes" if scaling[key] else "no"]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out += [f"- {line.plain}" for line in _peak_lines(report)]
    return "\n".join(out) + "\n"
