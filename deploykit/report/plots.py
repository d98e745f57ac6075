"""Figures (matplotlib, PNG, written atomically): the roofline chart and per-layer bars.

matplotlib is imported inside the functions with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploykit._io import atomic_path
from deploykit.profile.roofline import RooflineProfile
from deploykit.profile.types import ModelProfile


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    _plt().close(fig)
    return Path(path)


def plot_stem(model: str) -> str:
    """A model name usable in a file name: ``pkg.mod:Net`` -> ``pkg.mod_Net``."""
    return model.replace(":", "_").replace("/", "_")


def plot_roofline(
    models: Sequence[tuple[ModelProfile, RooflineProfile]],
    path: str | Path,
    measured_ms: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """The device roofline with one point per layer (area proportional to the layer's share of the model's
    roofline time), one colour per model, all on the same axes.

    ``measured_ms`` (optional) maps a model name to ``{layer name: measured ms}``: each measured layer is drawn
    as a hollow marker at its achieved FLOP/s (its FLOPs / its time), at the same intensity. All models must
    share the device and precision.
    """
    plt = _plt()
    roof = models[0][1]
    dev, prec = roof.device, roof.precision
    peak_m = dev.peak_flops(prec, True)
    peak_v = dev.peak_flops(prec, False)
    bw = dev.bandwidth_bytes_per_s
    intensities = [r.intensity for p, _ in models for r in p.layers if r.intensity]
    lo = min([*intensities, 0.05]) / 2
    hi = max([*intensities, peak_m / bw * 4]) * 2
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(xs, [min(peak_m, x * bw) / 1e12 for x in xs], color="black", lw=1.6, label=f"matrix roof {peak_m / 1e12:.0f} TFLOP/s")
    ax.plot(xs, [min(peak_v, x * bw) / 1e12 for x in xs], color="gray", lw=1.0, ls="--", label=f"vector roof {peak_v / 1e12:.0f} TFLOP/s")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (prof, rf) in enumerate(models):
        times = rf.by_name()
        pts = [(r.intensity, min(r.flops / times[r.name].time_s, 1e30), times[r.name].share)
               for r in prof.layers if r.intensity and times[r.name].time_s > 0]
        if not pts:
            continue
        c = colors[i % len(colors)]
        ax.scatter([p[0] for p in pts], [p[1] / 1e12 for p in pts], s=[max(6.0, 900 * p[2]) for p in pts],
                   alpha=0.55, color=c, edgecolors="none", label=f"{prof.model} (b{prof.batch_size}, roofline bound)")
        got = (measured_ms or {}).get(prof.model) or {}
        mpts = [(r.intensity, r.flops / (got[r.name] / 1e3)) for r in prof.layers if r.intensity and got.get(r.name)]
        if mpts:
            ax.scatter([p[0] for p in mpts], [p[1] / 1e12 for p in mpts], s=18, facecolors="none",
                       edgecolors=c, label=f"{prof.model} measured")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte of DRAM traffic)")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(f"Roofline: {dev.name}, {prec} (ridge {dev.ridge_point(prec):.0f} FLOP/B)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_layers(
    profile: ModelProfile,
    roof: RooflineProfile,
    path: str | Path,
    measured_ms: Mapping[str, float] | None = None,
    max_layers: int = 60,
) -> Path:
    """Per-layer bars of one model: parameters, FLOPs, activation bytes and roofline (or measured) time.

    Rows with none of those (views) are left out; beyond ``max_layers`` rows the smallest by FLOPs + params
    are dropped (the title says how many are shown).
    """
    plt = _plt()
    times = roof.by_name()
    rows = [r for r in profile.layers if r.params or r.flops or r.act_bytes or r.traffic_bytes]
    if len(rows) > max_layers:
        keep = {r.name for r in sorted(rows, key=lambda r: (r.flops, r.params), reverse=True)[:max_layers]}
        shown = [r for r in rows if r.name in keep]
    else:
        shown = rows
    labels = [r.name for r in shown]
    panels: list[tuple[str, list[float]]] = [
        ("parameters (M)", [r.params / 1e6 for r in shown]),
        ("GFLOPs", [r.flops / 1e9 for r in shown]),
        ("activation MB (allocated)", [r.act_bytes / 1e6 for r in shown]),
        ("roofline time (µs)", [times[r.name].time_s * 1e6 for r in shown]),
    ]
    if measured_ms:
        panels.append(("measured time (µs)", [measured_ms.get(r.name, 0.0) * 1e3 for r in shown]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8.0, 0.22 * len(shown) + 2), 2.1 * len(panels)), sharex=True)
    for ax, (title, values) in zip(axes, panels, strict=True):
        colors = ["#d62728" if times[r.name].bound == "memory" else "#1f77b4" for r in shown]
        ax.bar(range(len(shown)), values, color=colors)
        ax.set_ylabel(title, fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(shown)))
    axes[-1].set_xticklabels(labels, rotation=90, fontsize=6)
    note = f"{len(shown)} of {len(rows)} layers" if len(shown) < len(rows) else f"{len(rows)} layers"
    axes[0].set_title(f"{profile.model} b{profile.batch_size} {profile.dtype}: {note} "
                      f"(red = memory-bound on {roof.device.key})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
