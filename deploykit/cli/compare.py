"""``deploykit compare``: the totals and findings of two or more models side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deploykit.cli._common import (
    emit,
    existing_files,
    handle_errors,
    json_text,
    report_written,
    show,
)
from deploykit.profile.devices import PRESETS

FORMATS = ("table", "json", "markdown")

HELP = """Compare models side by side at one batch size and dtype: parameters (and the share in fully
connected layers), MACs, FLOPs, inference activation peak and training-step peak (memory model), the
roofline floor on a GPU preset and the share of it in memory-bound layers, then each model's top findings.

Example: `deploykit compare nin vgg16 --plot figs/`. Everything is computed on the meta device (no GPU
needed); --measure also times each model's forward on a CUDA GPU. The ratio in parentheses compares a
model with the first one. Conventions as in `deploykit profile --help` (MACs = conv/linear/matmul
multiply-accumulates; FLOPs = 2 per MAC + element-wise work; MB = 10^6 bytes).
"""


def parse_weights(items: list[str], models: list[str]) -> dict[str, str]:
    """``["nin=w.safetensors"]`` -> ``{"nin": "w.safetensors"}``; a bare PATH is allowed with one model."""
    from deploykit.errors import InvalidInput

    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            if len(models) != 1:
                raise InvalidInput(f"--weights {item}: say which model it belongs to (MODEL=PATH)")
            name, path = models[0], item
        if name not in models or not path:
            raise InvalidInput(f"--weights {item}: expected MODEL=PATH with MODEL one of {', '.join(models)}")
        if name in out:
            raise InvalidInput(f"--weights given twice for {name}")
        out[name] = path
    return out


def register(app: typer.Typer) -> None:
    app.command("compare", help=HELP)(compare)


@handle_errors
def compare(
    models: Annotated[list[str], typer.Argument(help="Two or more registered model names (see `deploykit list`).")],
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Samples per batch.")] = 1,
    dtype: Annotated[str, typer.Option(help="fp32 | tf32 | fp16 | bf16 | int8: element size and roofline peak.")] = "fp32",
    gpu: Annotated[str, typer.Option(help=f"Roofline device preset: {', '.join(PRESETS)}.")] = "h100",
    optimizer: Annotated[str, typer.Option(help="Optimizer of the training-step memory: sgd, sgd-momentum, adam, adamw, or none.")] = "adam",
    memory_target: Annotated[str, typer.Option(help="Allocator the memory model follows: cuda (512-byte blocks) or cpu.")] = "cuda",
    top: Annotated[int, typer.Option(help="How many layers each finding lists.")] = 1,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json | markdown.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write compare-roofline.png (all models) and compare-<model>-layers.png to this folder.")] = None,
    measure: Annotated[bool, typer.Option("--measure", help="Also measure each model's forward latency on the CUDA GPU (needs CUDA).")] = False,
    iterations: Annotated[int, typer.Option(help="Timed forward passes for --measure.")] = 20,
    weights: Annotated[list[str] | None, typer.Option("--weights", "-w", help="MODEL=PATH (repeatable; PATH alone with one model): that model's weights (safetensors or torch file, or a torchvision name), checked against it (strict keys and shapes, exit 2) and recorded; the counts do not depend on them.")] = None,
) -> None:
    from deploykit.errors import InvalidInput
    from deploykit.profile.compare import CompareOptions, compare_models
    from deploykit.report import compare as rc

    if format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    if len(models) < 2:
        raise InvalidInput(f"compare takes two or more models, got {len(models)} (use `deploykit profile` for one)")
    if batch_size < 1:
        raise InvalidInput(f"--batch-size must be a positive integer, got {batch_size}")
    given = parse_weights(weights or [], models)
    options = CompareOptions(batch_size=batch_size, dtype=dtype, gpu=gpu,
                             optimizer=None if optimizer == "none" else optimizer,
                             memory_target=memory_target, top=top)
    latencies: list[float | None] | None = None
    layer_ms: dict[str, dict[str, float]] = {}
    gpu_name = None
    if measure:
        from deploykit.bench.layer_timing import measure_layers

        latencies = []
        for name in models:  # the first call raises BackendUnavailable when there is no CUDA GPU
            prof, times = measure_layers(name, batch_size=batch_size, dtype=dtype, device="cuda",
                                         iterations=iterations, weights=given.get(name))
            latencies.append(times.end_to_end_ms)
            layer_ms[prof.model] = dict(times.layer_ms)
            gpu_name = times.device_name
    comparison = compare_models(models, options, measured_latency_ms=latencies, measured_device=gpu_name,
                                weights=given)
    if plot is not None:
        before = existing_files(plot)
        report_written(rc.plot_comparison(comparison, plot, measured_ms=layer_ms or None), before)
    if format == "json":
        text = json_text(rc.compare_document(comparison))
    elif format == "markdown":
        text = rc.compare_markdown(comparison)
    else:
        show([rc.compare_renderable(comparison)], output)
        return
    emit(text, output)
