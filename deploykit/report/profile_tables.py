"""Render a profile (with its roofline and findings) as a rich table, CSV, Markdown or a JSON document.

Numbers are rounded here and only here. Units: counts in SI prefixes (K = 10^3, M = 10^6, G = 10^9),
bytes in MB = 10^6 bytes, FLOP/B = FLOPs per byte of memory traffic.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from deploykit.profile.findings import Findings, Ranked
from deploykit.profile.roofline import RooflineProfile
from deploykit.profile.types import LayerProfile, ModelProfile
from deploykit.report.layout import optional_columns

COLUMNS = (
    "layer", "op", "input_shape", "output_shape", "params", "macs", "flops", "param_bytes", "act_bytes",
    "traffic_bytes", "intensity_flop_per_byte", "bound", "roofline_us", "time_share",
)


def fmt_count(n: float) -> str:
    """``1814073344`` -> ``"1.81 G"``; small numbers stay plain."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:g}" if isinstance(n, float) else str(n)


def fmt_sig(v: float) -> str:
    """Three significant digits without an exponent: ``1234.5`` -> ``"1235"``, ``12.34`` -> ``"12.3"``,
    ``0.01234`` -> ``"0.0123"``; 0 stays ``"0"``."""
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}" if a >= 1e-6 else ("0" if v == 0 else f"{v:.2e}")


def fmt_time(seconds: float) -> str:
    """A duration in the unit that keeps three significant digits: ``3.2e-8`` -> ``"32.0 ns"``, ``1.24e-5`` ->
    ``"12.4 µs"``, ``0.0361`` -> ``"36.1 ms"``."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{fmt_sig(seconds / scale)} {unit}"
    return f"{fmt_sig(seconds / 1e-9)} ns"


def fmt_bytes(n: float) -> str:
    """Bytes in decimal units: ``3211264`` -> ``"3.21 MB"``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def fmt_shapes(shapes: Sequence[Sequence[int]]) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes)


def _roof_cells(layer: LayerProfile, roof: dict[str, Any]) -> tuple[str, float | None, float | None]:
    """``(bound, time_us, share)``; an aggregated row sums its members and reports its memory-bound share."""
    if layer.members:
        parts = [roof[m] for m in layer.members if m in roof]
        t = sum(p.time_s for p in parts)
        mem = sum(p.time_s for p in parts if p.bound == "memory")
        return (f"{mem / t * 100:.0f}% mem" if t else "-"), t * 1e6, sum(p.share for p in parts)
    r = roof.get(layer.name)
    return (r.bound, r.time_s * 1e6, r.share) if r else ("", None, None)


def _cells(layer: LayerProfile, roof: dict[str, Any]) -> dict[str, Any]:
    bound, time_us, share = _roof_cells(layer, roof)
    return {
        "layer": layer.name,
        "op": layer.op,
        "input_shape": fmt_shapes(layer.input_shapes),
        "output_shape": fmt_shapes(layer.output_shapes),
        "params": layer.params,
        "macs": layer.macs,
        "flops": layer.flops,
        "param_bytes": layer.param_bytes,
        "act_bytes": layer.act_bytes,
        "traffic_bytes": layer.traffic_bytes,
        "intensity_flop_per_byte": layer.intensity,
        "bound": bound,
        "roofline_us": time_us,
        "time_share": share,
        "unsupported": ",".join(layer.unsupported),
    }


#: Columns a narrow terminal may leave out, least important first (see deploykit.report.layout; pipes, files,
#: CSV, Markdown and JSON keep all).
OPTIONAL_COLUMNS = ("Share", "Weights", "Input", "FLOP/B", "Act", "Traffic", "Output")


def profile_table(
    profile: ModelProfile,
    roof: RooflineProfile,
    layers: Sequence[LayerProfile] | None = None,
    title: str | None = None,
) -> Table:
    """The per-layer table with a totals footer. ``layers`` (e.g. aggregated by depth) default to all rows.

    A narrow terminal may leave out the ``OPTIONAL_COLUMNS`` (the CLI decides, see deploykit.report.layout).
    """
    rows = profile.layers if layers is None else layers
    by_name = roof.by_name()
    table = Table(
        title=title or f"{profile.model}  input {fmt_shapes([profile.input_shape])}  {profile.dtype}  "
        f"roofline: {roof.device.name}",
        show_footer=True,
        header_style="bold",
        pad_edge=False,
    )
    tot_t = roof.floor_s
    footer = {
        "Layer": f"total ({len(profile.layers)} rows)",
        "Params": fmt_count(profile.total_params),
        "MACs": fmt_count(profile.total_macs),
        "FLOPs": fmt_count(profile.total_flops),
        "Weights": fmt_bytes(profile.total_param_bytes),
        "Act": fmt_bytes(profile.total_act_bytes),
        "Traffic": fmt_bytes(profile.total_traffic_bytes),
        "FLOP/B": f"{profile.total_flops / profile.total_traffic_bytes:.1f}" if profile.total_traffic_bytes else "",
        "Roof µs": fmt_sig(tot_t * 1e6),
        "Share": "100%",
    }
    for name, justify in (
        ("Layer", "left"), ("Op", "left"), ("Input", "right"), ("Output", "right"), ("Params", "right"),
        ("MACs", "right"), ("FLOPs", "right"), ("Weights", "right"), ("Act", "right"), ("Traffic", "right"),
        ("FLOP/B", "right"), ("Bound", "left"), ("Roof µs", "right"), ("Share", "right"),
    ):
        table.add_column(name, footer=footer.get(name, ""), justify=justify)  # type: ignore[arg-type]
    for layer in rows:
        c = _cells(layer, by_name)
        bound = c["bound"]
        style = {"memory": "yellow", "compute": "cyan"}.get(bound, "magenta" if bound.endswith("mem") else "")
        op = Text(layer.op + (" (unsupported: " + c["unsupported"] + ")" if c["unsupported"] else ""),
                  style="red" if c["unsupported"] else "")
        cells: dict[str, Any] = {
            "Layer": layer.name,
            "Op": op,
            "Input": c["input_shape"],
            "Output": c["output_shape"],
            "Params": fmt_count(layer.params) if layer.params else "",
            "MACs": fmt_count(layer.macs) if layer.macs else "",
            "FLOPs": fmt_count(layer.flops) if layer.flops else "",
            "Weights": fmt_bytes(layer.param_bytes) if layer.param_bytes else "",
            "Act": fmt_bytes(layer.act_bytes) if layer.act_bytes else "",
            "Traffic": fmt_bytes(layer.traffic_bytes) if layer.traffic_bytes else "",
            "FLOP/B": f"{layer.intensity:.1f}" if layer.intensity is not None else "",
            "Bound": Text(bound, style=style),
            "Roof µs": fmt_sig(c["roofline_us"]) if c["roofline_us"] is not None else "",
            "Share": f"{c['time_share'] * 100:.1f}%" if c["time_share"] is not None else "",
        }
        table.add_row(*cells.values())
    return optional_columns(table, OPTIONAL_COLUMNS)


def _ranked_line(label: str, items: Sequence[Ranked], fmt: Any) -> Text:
    body = "; ".join(f"{r.name} ({r.op}) {fmt(r.value)} = {r.share * 100:.1f}%" for r in items) or "none"
    return Text.assemble((f"{label}: ", "bold"), body)


def findings_renderable(profile: ModelProfile, roof: RooflineProfile, f: Findings) -> Group:
    """Plain-language findings under the table."""
    ridge = roof.ridge_flop_per_byte
    mem_names = ", ".join(r.name for r in f.memory_bound[:8]) + (" …" if len(f.memory_bound) > 8 else "")
    lines = [
        Text("Findings", style="bold underline"),
        _ranked_line("Most parameters", f.top_params, fmt_count),
        Text(f"  fully connected layers hold {fmt_count(f.fc_params)} parameters = {f.fc_param_share * 100:.1f}% of "
             f"{fmt_count(profile.total_params)}"),
        _ranked_line("Most FLOPs", f.top_flops, fmt_count),
        _ranked_line("Largest activations", f.top_act_bytes, fmt_bytes),
        _ranked_line("Most memory traffic", f.top_traffic_bytes, fmt_bytes),
        _ranked_line(f"Slowest on the {roof.device.key} roofline", f.slowest, fmt_time),
        Text.assemble(
            ("Memory-bound on " + roof.device.key + ": ", "bold"),
            f"{len(f.memory_bound)} of {sum(1 for r in roof.layers if r.bound != '-')} layers, "
            f"{f.memory_bound_share * 100:.1f}% of the {fmt_time(roof.floor_s)} roofline floor "
            f"(ridge {ridge:.0f} FLOP/B at {roof.precision}); {mem_names}",
        ),
    ]
    if profile.unused_params:
        lines.append(Text(f"Unused parameters (never touched in this forward pass): {fmt_count(profile.unused_params)}",
                          style="yellow"))
    if profile.unsupported_ops:
        lines.append(Text("Operators without a FLOP formula (their FLOPs are missing from the totals): "
                          + ", ".join(profile.unsupported_ops), style="red"))
    return Group(*lines)


def convention_text(profile: ModelProfile, convention: str) -> str:
    """One line: the total as ``convention`` (fvcore, flop-counter) counts it, next to deploykit's counts."""
    value = profile.convention_flops(convention)
    label = {"fvcore": "fvcore (FlopCountAnalysis)", "flop-counter": "flop-counter (torch FlopCounterMode)"}.get(
        convention, convention)
    shown = f"{fmt_count(value)} flops ({value:,})" if value is not None else "not available for this profile"
    return (f"Total as {label} counts it: {shown}; deploykit: {fmt_count(profile.total_macs)} MACs "
            f"({profile.total_macs:,}), {fmt_count(profile.total_flops)} FLOPs ({profile.total_flops:,})")


def profile_csv(profile: ModelProfile, roof: RooflineProfile, layers: Sequence[LayerProfile] | None = None) -> str:
    """One CSV row per layer with raw (unrounded) numbers."""
    buf = io.StringIO()
    by_name = roof.by_name()
    writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, "unsupported"], lineterminator="\n")
    writer.writeheader()
    for layer in profile.layers if layers is None else layers:
        writer.writerow(_cells(layer, by_name))
    return buf.getvalue()


def profile_markdown(profile: ModelProfile, roof: RooflineProfile, layers: Sequence[LayerProfile] | None = None) -> str:
    """A GitHub-flavoured Markdown table with a totals row."""
    by_name = roof.by_name()
    head = ["Layer", "Op", "Input", "Output", "Params", "MACs", "FLOPs", "Weights", "Act", "Traffic", "FLOP/B",
            "Bound", "Roof µs", "Share"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer in profile.layers if layers is None else layers:
        c = _cells(layer, by_name)
        out.append("| " + " | ".join([
            f"`{layer.name}`", layer.op + (f" (unsupported: {c['unsupported']})" if c["unsupported"] else ""),
            c["input_shape"], c["output_shape"], fmt_count(layer.params), fmt_count(layer.macs),
            fmt_count(layer.flops), fmt_bytes(layer.param_bytes), fmt_bytes(layer.act_bytes),
            fmt_bytes(layer.traffic_bytes), f"{layer.intensity:.1f}" if layer.intensity is not None else "",
            c["bound"], f"{c['roofline_us']:.2f}" if c["roofline_us"] is not None else "",
            f"{c['time_share'] * 100:.1f}%" if c["time_share"] is not None else "",
        ]) + " |")
    out.append("| " + " | ".join([
        "**total**", "", "", "", fmt_count(profile.total_params), fmt_count(profile.total_macs),
        fmt_count(profile.total_flops), fmt_bytes(profile.total_param_bytes), fmt_bytes(profile.total_act_bytes),
        fmt_bytes(profile.total_traffic_bytes), "", "", f"{roof.floor_s * 1e6:.1f}", "100%",
    ]) + " |")
    return "\n".join(out) + "\n"


def profile_document(
    profile: ModelProfile, roof: RooflineProfile, f: Findings, settings: dict[str, Any]
) -> dict[str, Any]:
    """The JSON document of ``deploykit profile --format json``: profile, roofline, findings, settings."""
    doc = profile.to_dict()
    doc["settings"] = settings
    doc["roofline"] = roof.to_dict()
    doc["findings"] = f.to_dict()
    return doc


def measured_table(profile: ModelProfile, roof: RooflineProfile, times: Any, rows: Sequence[Any], ceilings: Any) -> Table:
    """Measured per-layer time next to the roofline floor, with achieved throughput and its share of the
    device's measured ceilings (``rows`` from :func:`deploykit.bench.layer_timing.achieved`)."""
    by_name = roof.by_name()
    title = (f"measured on {times.device_name}: {times.method}; end-to-end {times.end_to_end_ms:.3f} ms, "
             f"sum of rows {times.layers_total_ms:.3f} ms")
    if ceilings is not None:
        peak = ceilings.matmul_tflops.get(profile.dtype)
        title += f"; ceilings: copy {ceilings.copy_gbs:.0f} GB/s" + (f", {profile.dtype} matmul {peak:.0f} TFLOP/s" if peak else "")
    table = Table(title=title, header_style="bold", pad_edge=False)
    for name in ("Layer", "Op", "Bound", "Roof µs", "Measured µs", "x roof", "TFLOP/s", "% peak", "GB/s", "% BW"):
        table.add_column(name, justify="left" if name in ("Layer", "Op", "Bound") else "right")
    ops = {r.name: r.op for r in profile.layers}
    for a in rows:
        r = by_name[a.name]
        table.add_row(
            a.name, ops[a.name], r.bound, f"{r.time_s * 1e6:.2f}", f"{a.time_ms * 1e3:.2f}",
            f"{a.time_ms / 1e3 / r.time_s:.1f}" if r.time_s else "",
            f"{a.achieved_tflops:.2f}", f"{a.flops_fraction * 100:.0f}%" if a.flops_fraction is not None else "",
            f"{a.achieved_gbs:.0f}", f"{a.bandwidth_fraction * 100:.0f}%" if a.bandwidth_fraction is not None else "",
        )
    return optional_columns(table, ("TFLOP/s", "GB/s", "x roof"))


def engine_table(times: Any) -> Table:
    """Per-layer times of a TensorRT engine (``deploykit.backends.tensorrt.EngineLayerTimes``)."""
    table = Table(title=f"TensorRT {times.tensorrt_version} engine {times.engine}, batch {times.batch_size}, "
                  f"{times.runs} profiled runs (IProfiler; sum of medians {times.total_median_ms:.3f} ms)",
                  header_style="bold", pad_edge=False)
    for name in ("Engine layer", "Type", "Precision", "Median µs", "Share", "ONNX nodes"):
        table.add_column(name, justify="right" if name in ("Median µs", "Share") else "left")
    total = times.total_median_ms or 1.0
    for layer in times.layers:
        table.add_row(layer.name, layer.layer_type or "", layer.precision or "", f"{layer.median_ms * 1e3:.2f}",
                      f"{layer.median_ms / total * 100:.1f}%", ", ".join(layer.onnx_nodes[:4])
                      + (" …" if len(layer.onnx_nodes) > 4 else ""))
    return optional_columns(table, ("Precision",))
