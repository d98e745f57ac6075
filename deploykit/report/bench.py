"""Render benchmark results: a rich table, a markdown summary with a latency plot, the fastest correct cells.

Numbers are rounded here and only here: latencies in ms with three significant digits, throughput in
samples/s, memory in MB (10^6 bytes), errors as ``max|out - ref| / max|ref|``. matplotlib is imported only
when a plot is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from deploykit._io import atomic_path, atomic_write_text
from deploykit.bench.results import BenchResult, CellResult, fp32_math_policy
from deploykit.bench.spec import BACKENDS
from deploykit.errors import InvalidInput
from deploykit.report.layout import optional_columns


def fmt_ms(v: float | None) -> str:
    """Milliseconds with three significant digits: ``0.48731`` -> ``"0.487"``, ``17.26`` -> ``"17.3"``."""
    if v is None or not math.isfinite(v):
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}" if v >= 0.001 else f"{v:.2e}"


def fmt_pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v * 100:.1f}%"


def fmt_mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def fmt_err(v: float | None) -> str:
    return "-" if v is None else ("inf" if not math.isfinite(v) else f"{v:.1e}")


def fmt_speedup(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def fmt_rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1e3:.1f}k" if v >= 1e4 else f"{v:.0f}"


def cell_flags(cell: CellResult) -> list[str]:
    """Short notes on a cell: status reason, ``WRONG`` output, noisy / unusable timing, unstable warm-up,
    artifacts reused from the cache, CUDA-graph replay."""
    if cell.status != "ok":
        return [f"{cell.status}: {cell.reason or ''}".strip()]
    out = []
    if cell.correct is False:
        out.append("WRONG output")
    if cell.timing is not None:
        if cell.timing.unusable:
            out.append("unusable (noise > 25%)")
        elif cell.timing.noisy:
            out.append("noisy (noise > 10%)")
    if cell.warmup is not None and not cell.warmup.stable:
        out.append("warm-up not stable")
    if cell.cache_hit:
        out.append("setup from cache")
    if cell.cuda_graphs:
        out.append("CUDA graph")
    drop = (cell.info or {}).get("accuracy_drop_points")
    if drop is not None:
        agree = float(cell.info["int8_agreement"])  # written together with the drop
        ev = cell.info.get("evaluation") or {}
        out.append(f"int8 top-1 {100 * cell.info['int8_top1']:.1f}% vs fp32 {100 * cell.info['fp32_top1']:.1f}% "
                   f"({drop:+.2f} pts drop), agreement {100 * agree:.1f}% on {ev.get('samples')} {ev.get('data')} "
                   f"{ev.get('split')}; vs eager = vs eager fp32")
    if any("not writable" in n or "not cached" in n for n in cell.info.get("notes", ())):
        out.append("cache not writable: not cached")
    return out


def fastest_correct(result: BenchResult) -> dict[tuple[str, str, int], CellResult]:
    """The fastest cell with a correct output per ``(model, precision, batch)``."""
    best: dict[tuple[str, str, int], CellResult] = {}
    for c in result.cells:
        if not c.ok or c.correct is False or c.median_ms is None:
            continue
        k = (c.model, c.precision, c.batch)
        if k not in best or c.median_ms < (best[k].median_ms or math.inf):
            best[k] = c
    return best


def _noise(c: CellResult) -> float:
    n = c.timing.noise if c.timing is not None else None
    return n if n is not None and math.isfinite(n) else math.inf


def tied_with_fastest(result: BenchResult) -> dict[tuple[str, str, int], list[CellResult]]:
    """Per ``(model, precision, batch)``, the other correct cells whose median is within noise of the fastest's:
    ``slower / fastest - 1 <= noise_fastest + noise_slower`` (noise = IQR/median across repeats). A difference
    smaller than the measured noise does not say which is faster: those are ties, not a fastest."""
    out: dict[tuple[str, str, int], list[CellResult]] = {}
    for k, f in fastest_correct(result).items():
        out[k] = [
            c for c in result.cells
            if c is not f and c.ok and c.correct is not False and c.median_ms is not None
            and (c.model, c.precision, c.batch) == k and f.median_ms
            and c.median_ms / f.median_ms - 1 <= _noise(f) + _noise(c)
        ]
    return out


def _marks(result: BenchResult) -> dict[int, str]:
    """``id(cell)`` -> ``"★"`` (fastest, clearly) or ``"="`` (tied for fastest within noise)."""
    marks: dict[int, str] = {}
    ties = tied_with_fastest(result)
    for k, f in fastest_correct(result).items():
        if ties.get(k):
            for c in (f, *ties[k]):
                marks[id(c)] = "="
        else:
            marks[id(f)] = "★"
    return marks


def _sorted(cells: Iterable[CellResult]) -> list[CellResult]:
    order = {b: i for i, b in enumerate(BACKENDS)}
    return sorted(cells, key=lambda c: (c.model, c.batch, c.precision, order.get(c.backend, 99), c.backend))


def bench_table(result: BenchResult, *, title: str | None = None) -> Table:
    """All cells as a rich table, fastest correct cell per (model, precision, batch) starred."""
    marks = _marks(result)
    table = Table(
        title=title or f"deploykit bench on {result.device}", title_justify="left", header_style="bold"
    )
    for name, justify in (
        ("model", "left"),
        ("batch", "right"),
        ("prec", "left"),
        ("backend", "left"),
        ("median ms", "right"),
        ("p90", "right"),
        ("p99", "right"),
        ("noise", "right"),
        ("samples/s", "right"),
        ("vs eager", "right"),
        ("setup s", "right"),
        ("peak MB", "right"),
        ("rel err", "right"),
        ("notes", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in _sorted(result.cells):
        t = c.timing
        notes = cell_flags(c)
        style = ""
        if c.status in ("error", "oom") or c.correct is False:
            style = "red"
        elif c.status == "skipped":
            style = "dim"
        elif t is not None and t.noisy:
            style = "yellow"
        mark = marks.get(id(c))
        label = Text(c.backend + (f" {mark}" if mark else ""), style="bold green" if mark == "★" else "")
        table.add_row(
            c.model,
            str(c.batch),
            c.precision,
            label,
            fmt_ms(t.median_ms if t else None),
            fmt_ms(t.p90_ms if t else None),
            fmt_ms(t.p99_ms if t else None),
            fmt_pct(t.noise if t else None),
            fmt_rate(c.throughput_sps),
            fmt_speedup(c.speedup_vs_eager),
            "-" if c.setup_s is None else f"{c.setup_s:.2f}",
            fmt_mb(c.peak_mem_bytes),
            fmt_err(c.max_rel_error),
            Text("; ".join(notes), style=style),
        )
    return optional_columns(table, ("peak MB", "setup s", "p90", "samples/s", "rel err"))


def summary_lines(result: BenchResult) -> list[str]:
    """One line per (model, precision, batch): the fastest correct backend and its speedup over eager, or the
    backends tied for fastest within their noise."""
    lines = []
    ties = tied_with_fastest(result)
    for (model, prec, batch), c in sorted(fastest_correct(result).items()):
        tied = ties.get((model, prec, batch)) or []
        if tied:
            others = ", ".join(f"{t.backend} {fmt_ms(t.median_ms)} ms" for t in sorted(tied, key=lambda t: t.median_ms or 0))
            lines.append(
                f"{model} {prec} b{batch}: tie within noise: {c.backend} {fmt_ms(c.median_ms)} ms "
                f"(noise {fmt_pct(c.timing.noise if c.timing else None)}), {others}: no fastest"
            )
        else:
            lines.append(
                f"{model} {prec} b{batch}: fastest correct = {c.backend} {fmt_ms(c.median_ms)} ms "
                f"({fmt_speedup(c.speedup_vs_eager)} vs eager)"
            )
    return lines


def plan_line(spec: Any) -> str:
    """One line stating what a sweep will do and with which settings (printed before it starts)."""
    t = spec.timing
    cells = len(spec.models) * len(spec.backends) * len(spec.precisions) * len(spec.batches)
    threads = f"{spec.threads} thread{'s' if spec.threads != 1 else ''}" if spec.threads else "the libraries' default threads"
    return (
        f"plan: {cells} cell(s) on {spec.device} ({threads} for torch and ONNX Runtime); per cell a warm-up of "
        f"at least {t.warmup_iters} calls until two windows of {t.warmup_window} agree within "
        f"{t.warmup_rel_tol:.0%} (at most {t.warmup_seconds:g} s), then {t.repeats} repeats of up to "
        f"{t.iterations} samples (at most {t.cell_seconds:g} s)"
    )


def _env_lines(result: BenchResult) -> list[str]:
    env = result.environment
    gpu = env.get("gpu") or {}
    smi = gpu.get("nvidia_smi") or {}
    parts = [
        f"device: **{result.device}**",
        f"torch {env.get('torch')}",
        f"onnxruntime {env.get('onnxruntime')}" + (" (gpu)" if env.get("onnxruntime_gpu") else ""),
        f"TensorRT {env.get('tensorrt') or 'not installed'}",
        f"python {env.get('python')}",
    ]
    if gpu:
        parts += [f"CUDA {gpu.get('cuda_runtime')}", f"cuDNN {gpu.get('cudnn')}"]
        if smi:
            parts.append(
                f"driver {smi.get('driver_version')}, SM clock {smi.get('clocks.sm')} (max {smi.get('clocks.max.sm')}), "
                f"power limit {smi.get('power.limit')}, {smi.get('temperature.gpu')} C"
            )
    else:
        parts.append(f"CPU: {env.get('cpu')} ({env.get('cpu_count')} logical cores)")
    return parts


def markdown_table(result: BenchResult) -> str:
    """The detailed per-cell table in GitHub markdown."""
    marks = _marks(result)
    head = (
        "| model | batch | prec | backend | median ms | p90 ms | p99 ms | noise | samples/s | vs eager | setup s | "
        "peak MB | setup peak MB | rel err | notes |"
    )
    rows = [head, "|" + "---|" * 15]
    for c in _sorted(result.cells):
        t = c.timing
        mark = marks.get(id(c))
        backend = f"**{c.backend}** ★" if mark == "★" else f"{c.backend} =" if mark else c.backend
        notes = "; ".join(cell_flags(c)).replace("|", "/")
        rows.append(
            f"| {c.model} | {c.batch} | {c.precision} | {backend} | {fmt_ms(t.median_ms if t else None)} | "
            f"{fmt_ms(t.p90_ms if t else None)} | {fmt_ms(t.p99_ms if t else None)} | {fmt_pct(t.noise if t else None)} | "
            f"{fmt_rate(c.throughput_sps)} | {fmt_speedup(c.speedup_vs_eager)} | "
            f"{'-' if c.setup_s is None else f'{c.setup_s:.2f}'} | {fmt_mb(c.peak_mem_bytes)} | "
            f"{fmt_mb(c.setup_peak_mem_bytes)} | {fmt_err(c.max_rel_error)} | {notes} |"
        )
    return "\n".join(rows)


def reproduce_command(spec: Mapping[str, Any]) -> str | None:
    """The ``deploykit bench`` command line that re-runs the sweep described by a results file's ``spec``
    (``None`` for a merged file, whose parts each have their own)."""
    if not spec.get("models") or "merged_from" in spec:
        return None
    parts = ["deploykit bench", *spec["models"]]
    for option, key in (("--backend", "backends"), ("--precision", "precisions"), ("--batch", "batches")):
        if spec.get(key):
            parts.append(f"{option} {','.join(str(v) for v in spec[key])}")
    timing = spec.get("timing") or {}
    for option, key in (("--iterations", "iterations"), ("--repeats", "repeats"), ("--warmup", "warmup_iters"),
                        ("--warmup-seconds", "warmup_seconds"), ("--cell-seconds", "cell_seconds")):
        if timing.get(key) is not None:
            parts.append(f"{option} {timing[key]:g}")
    for option, key in (("--device", "device"), ("--compile-mode", "compile_mode"), ("--image-size", "image_size"),
                        ("--num-classes", "num_classes"), ("--in-channels", "in_channels"),
                        ("--input-shape", "input_shape"), ("--seed", "seed"), ("--threads", "threads")):
        value = spec.get(key)
        if value is not None:
            parts.append(f"{option} {'x'.join(map(str, value)) if isinstance(value, (list, tuple)) else value}")
    return " ".join(parts)


def markdown_summary(result: BenchResult, *, plot_name: str | None = None, title: str | None = None) -> str:
    """The whole summary document: environment, regime, fastest correct per cell group, detailed table."""
    regime = result.regime
    lines = [f"# {title or 'deploykit benchmark'}", ""]
    lines += [f"- {p}" for p in _env_lines(result)]
    lines += [
        f"- measured {result.created_utc}; timer: "
        + ", ".join(sorted({c.timer for c in result.cells if c.timer}) or ["-"])
        + f"; host↔device transfers included: {'yes' if regime.get('transfers_included') else 'no'}"
        + (
            f"; cuDNN benchmark: {regime.get('cudnn_benchmark', '-')}"
            if regime.get("device_type") == "cuda"
            else f"; CPU threads: torch {regime.get('cpu_threads', '-')}, ONNX Runtime {regime.get('ort_threads', '-')}"
        )
        + f"; compile mode: {regime.get('compile_mode', '-')}"
        + (f"; fp32 math: {fp32_math_policy(regime)}" if regime.get("device_type") == "cuda" else ""),
        "- latency = median of the repeat medians (each repeat the median of n samples); noise = IQR/median across"
        " repeats (noisy > 10%, unusable > 25%); rel err = max|out − eager fp32| / max|eager fp32|;"
        " ★ = fastest correct backend for the model, precision and batch, faster than every other by more than"
        " their combined noise; = = tied for fastest within noise.",
    ]
    if regime.get("device_type") == "cuda":
        lines.append(
            "- peak MB = device memory of steady-state inference (from after the backend's export / build, peak "
            "reset after the warm-up); setup peak MB = the one-time peak up to the end of the warm-up "
            "(algorithm search, autotuning workspaces)"
        )
    command = reproduce_command(result.spec)
    if command:
        lines.append(f"- re-run: `{command}`")
    lines.append("")
    summary = summary_lines(result)
    if summary:
        lines += ["## Fastest correct configuration", ""] + [f"- {s}" for s in summary] + [""]
    if plot_name:
        lines += [f"![median latency]({plot_name})", ""]
    lines += ["## All cells", "", markdown_table(result), ""]
    return "\n".join(lines)


def plot_latency(result: BenchResult, path: str | Path) -> Path | None:
    """A PNG of median latency per model and backend, one panel per (precision, batch); hatched = wrong output.

    The axis is logarithmic when latencies span more than 20x, linear from zero otherwise.

    Returns ``None`` when no cell has a timing. matplotlib is imported here, with the Agg backend.
    """
    ok = [c for c in result.cells if c.ok]
    if not ok:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(c.precision, c.batch) for c in ok}, key=lambda g: (g[1], g[0]))
    models = sorted({c.model for c in ok})
    backends = [b for b in BACKENDS if any(c.backend == b for c in ok)]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(max(6.0, 1.2 * len(models) * max(1, len(backends)) / 2), 3.2 * len(groups)),
        squeeze=False,
    )
    width = 0.8 / max(1, len(backends))
    for ax, (prec, batch) in zip(axes[:, 0], groups, strict=True):
        for j, backend in enumerate(backends):
            xs, ys, hatches = [], [], []
            for i, model in enumerate(models):
                c = result.cell(model, backend, prec, batch)
                if c is not None and c.ok and c.median_ms:
                    xs.append(i + (j - (len(backends) - 1) / 2) * width)
                    ys.append(c.median_ms)
                    hatches.append("xx" if c.correct is False else "")
            bars = ax.bar(xs, ys, width=width, label=backend)
            for bar, h, y in zip(bars, hatches, ys, strict=True):
                bar.set_hatch(h)
                ax.annotate(
                    fmt_ms(y), (bar.get_x() + bar.get_width() / 2, y), ha="center", va="bottom", fontsize=6
                )
        values = [c.median_ms for c in ok if (c.precision, c.batch) == (prec, batch) and c.median_ms]
        if values and max(values) / min(values) > 20:
            ax.set_yscale("log")  # a wide range: ratios read as distances
        else:
            ax.set_ylim(
                bottom=0, top=max(values or [1.0]) * 1.15
            )  # a log axis would exaggerate a narrow range
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=20, ha="right")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(f"{prec}, batch {batch} — {result.device}", fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", fontsize=8, ncol=min(6, len(backends)), frameon=False)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.35 / (3.2 * len(groups))))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def write_markdown_summary(
    result: BenchResult,
    out_dir: str | Path,
    *,
    name: str = "bench-summary",
    plot: bool = True,
    title: str | None = None,
) -> dict[str, Any]:
    """Write ``<out_dir>/<name>.md`` (and ``<name>.png`` with the latency plot); return the paths written.

    ``name`` is a file name stem, not a path: one with a ``/`` or that is ``.``/``..`` is :class:`InvalidInput`.
    """
    if not name or "/" in name or "\\" in name or "\0" in name or name in (".", "..") or len(name) > 200:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise InvalidInput(f"--name {shown!r} must be a file name (no '/', at most 200 characters), not a path")
    out = Path(out_dir)
    png = plot_latency(result, out / f"{name}.png") if plot else None
    md = atomic_write_text(
        out / f"{name}.md", markdown_summary(result, plot_name=png.name if png else None, title=title)
    )
    return {"markdown": md, "plot": png}
