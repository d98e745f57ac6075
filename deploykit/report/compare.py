"""Render a :class:`~deploykit.profile.compare.Comparison`: one row per metric, one column per model, then
each model's top findings; as a rich table, GitHub markdown or a JSON document; and its figures.

Numbers are rounded here and only here. Counts in SI prefixes (K = 10^3, M = 10^6, G = 10^9), bytes in
decimal units (MB = 10^6 bytes). The ratio in parentheses compares a model with the first one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from deploykit.profile.compare import Comparison, ModelSummary
from deploykit.profile.findings import Ranked
from deploykit.report.profile_tables import fmt_bytes, fmt_count, fmt_time

#: (label, value getter, formatter, show a ratio to the first model)
_Metric = tuple[str, Callable[[ModelSummary], float | None], Callable[[float], str], bool]


def _ms(s: float) -> str:
    return fmt_time(s)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _metrics(c: Comparison) -> list[_Metric]:
    o = c.options
    metrics: list[_Metric] = [
        ("parameters", lambda s: s.params, fmt_count, True),
        ("  in fully connected layers", lambda s: s.fc_params, fmt_count, False),
        ("  FC share of parameters", lambda s: s.fc_param_share, _pct, False),
        ("MACs", lambda s: s.macs, fmt_count, True),
        ("FLOPs", lambda s: s.flops, fmt_count, True),
        (f"weights ({o.dtype})", lambda s: s.param_bytes, fmt_bytes, True),
        ("memory traffic (unfused)", lambda s: s.traffic_bytes, fmt_bytes, True),
        ("inference: activation peak", lambda s: s.inference_peak_bytes, fmt_bytes, True),
        ("inference: weights + input + peak", lambda s: s.inference_total_bytes, fmt_bytes, True),
    ]
    if o.optimizer is not None:
        metrics.append((f"training step peak ({o.optimizer})", lambda s: s.training_peak_bytes, fmt_bytes, True))
    metrics += [
        (f"roofline floor ({c.device.key}, {o.dtype})", lambda s: s.roofline_floor_s, _ms, True),
        ("  in memory-bound layers", lambda s: s.memory_bound_share, _pct, False),
    ]
    if any(s.measured_latency_ms is not None for s in c.summaries):
        metrics.append(("measured latency (CUDA)", lambda s: s.measured_latency_ms, lambda v: fmt_time(v / 1e3), True))
    return metrics


def _cells(c: Comparison) -> list[tuple[str, list[str]]]:
    """``(label, [cell per model])`` for every metric, with ratios to the first model where they help."""
    out: list[tuple[str, list[str]]] = []
    first = c.summaries[0]
    for label, get, fmt, ratio in _metrics(c):
        base = get(first)
        cells = []
        for i, s in enumerate(c.summaries):
            v = get(s)
            if v is None:
                cells.append("-")
                continue
            text = fmt(v)
            if ratio and i > 0 and base:
                text += f" ({v / base:.2f}×)"
            cells.append(text)
        out.append((label, cells))
        if label == "  in memory-bound layers":
            out.append(("  memory-bound layers",
                        [f"{s.memory_bound_layers} of {s.layers_with_work}" for s in c.summaries]))
    return out


def _title(c: Comparison) -> str:
    o = c.options
    mem = f"memory: {o.memory_target} allocator" + (f", {o.optimizer}" if o.optimizer else ", inference only")
    return f"batch {o.batch_size}, {o.dtype}, roofline on {c.device.name}; {mem}"


def _ranked(items: Sequence[Ranked], fmt: Callable[[float], str]) -> str:
    return "; ".join(f"{r.name} ({r.op}) {fmt(r.value)} = {r.share * 100:.1f}%" for r in items) or "none"


def finding_lines(s: ModelSummary, device_key: str) -> list[tuple[str, str]]:
    """``(label, text)`` of a model's top findings: parameters, FLOPs, activations, roofline time."""
    f = s.findings
    return [
        ("most parameters", _ranked(f.top_params, fmt_count)),
        ("most FLOPs", _ranked(f.top_flops, fmt_count)),
        ("largest activation", _ranked(f.top_act_bytes, fmt_bytes)),
        (f"slowest on the {device_key} roofline", _ranked(f.slowest, fmt_time)),
        ("inference activation peak during", s.inference_peak_layer),
        ("training step peak in", s.training_peak_phase or "-"),
    ]


def compare_table(c: Comparison) -> Table:
    """The side-by-side table: one row per metric, one column per model."""
    table = Table(title=_title(c), header_style="bold", pad_edge=False, title_justify="left")
    table.add_column("")
    for s in c.summaries:
        table.add_column(s.model, justify="right")
    table.add_row("input", *("x".join(str(d) for d in s.input_shape) for s in c.summaries))
    for label, cells in _cells(c):
        table.add_row(label, *cells)
    return table


def compare_renderable(c: Comparison) -> Group:
    """The table and, under it, each model's top findings, for the terminal."""
    parts: list[Any] = [compare_table(c), Text("Findings", style="bold underline")]
    for s in c.summaries:
        parts.append(Text(s.model, style="bold"))
        for label, text in finding_lines(s, c.device.key):
            parts.append(Text.assemble(("  " + label + ": ", "bold"), text))
    return Group(*parts)


def compare_markdown(c: Comparison) -> str:
    """The table as GitHub markdown, then each model's findings as a list."""
    head = ["", *(s.model for s in c.summaries)]
    out = [f"Comparison at {_title(c)}.", "", "| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
           "| input | " + " | ".join("x".join(str(d) for d in s.input_shape) for s in c.summaries) + " |"]
    for label, cells in _cells(c):
        name = "↳ " + label.strip() if label.startswith("  ") else label
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("")
    for s in c.summaries:
        out.append(f"**{s.model}**")
        out.append("")
        out += [f"- {label}: {text}" for label, text in finding_lines(s, c.device.key)]
        out.append("")
    return "\n".join(out)


def compare_document(c: Comparison) -> dict[str, Any]:
    """The JSON document of ``deploykit compare --format json`` (raw, unrounded numbers)."""
    return c.to_dict()


def plot_comparison(
    c: Comparison,
    folder: str | Path,
    measured_ms: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Path]:
    """Write ``compare-roofline.png`` (every model's layers on the same roofline axes) and
    ``compare-<model>-layers.png`` per model (not ``profile --plot``'s ``<model>-layers.png``) (:mod:`deploykit.report.plots`) into ``folder``.

    ``measured_ms`` (optional) maps a model name to ``{row name: measured ms}``; measured points and bars
    are drawn where given.
    """
    from deploykit.report.plots import plot_layers, plot_roofline, plot_stem

    folder = Path(folder)
    measured_ms = measured_ms or {}
    written = [plot_roofline(list(zip(c.profiles, c.rooflines, strict=True)), folder / "compare-roofline.png",
                             measured_ms=measured_ms or None)]
    for p, r in zip(c.profiles, c.rooflines, strict=True):
        written.append(plot_layers(p, r, folder / f"compare-{plot_stem(p.model)}-layers.png",
                                   measured_ms=measured_ms.get(p.model)))
    return written


__all__ = ["compare_document", "compare_markdown", "compare_renderable", "compare_table", "finding_lines",
           "plot_comparison"]
