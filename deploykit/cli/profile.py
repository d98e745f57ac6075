"""``deploykit profile``: per-layer costs, roofline and findings for one model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deploykit.cli._common import (
    emit,
    err_console,
    existing_files,
    handle_errors,
    json_text,
    report_written,
    show,
    split_list,
)
from deploykit.profile.devices import PRESETS

FORMATS = ("table", "json", "csv", "markdown")

HELP = """Per-layer table of a model: output shape, parameters, MACs, FLOPs, weight and activation bytes,
memory traffic, arithmetic intensity and roofline bound on a GPU, then totals and findings.

MODEL is a registered name (`deploykit list`), an import path `pkg.module:ClassOrFactory` or a file `path/to/file.py:ClassOrFactory` (with
--input-shape), or an ONNX file `model.onnx` (costs computed from the graph with ONNX shape inference).

[bold]Memory[/] (--memory, or a batch sweep `-b 1,64,256`): inference peak of live activations (tensor
liveness, not the sum of outputs) and one training step (parameters, gradients, optimizer state,
activations saved for backward, the backward peak) per batch size, modelled allocation by allocation on the
meta device for the CUDA caching allocator (512-byte blocks) or the CPU (--memory-target). The per-layer
table is shown at the first batch size.

[bold]Conventions[/]: MACs = multiply-accumulates of conv / linear / matmul / attention / recurrent-cell matrices
only (the papers' mult-adds, fvcore's "flops"). FLOPs = every floating-point operation: 2 per MAC + bias adds + element-wise,
normalisation and pooling work (per-op formulas in the README). Act = bytes a layer newly allocates for its
output (0 for views and in-place ops). Traffic = bytes read (inputs, weights, buffers) + bytes written
(outputs) if every kernel goes to DRAM once. Bytes use the --dtype element size; MB = 10^6 bytes.
Roofline time = max(FLOPs / peak, traffic / bandwidth); matrix peak for layers with MACs, vector peak
otherwise. Views (view, _unsafe_view, expand, transpose_, ...) move no bytes; copies, fills, gathers, masking
and padding are 0 FLOPs with their real bytes ("no arithmetic"); "unsupported" lists only operators whose cost
deploykit does not know. Attention (any SDPA backend) and LSTM / GRU / RNN kernels (oneDNN, cuDNN, native
cells) are counted as their unfused form, so counts do not depend on the trace device. Every operator's
category is in the JSON (op_categories).

[bold]--convention[/] fvcore | flop-counter: also the total as fvcore's FlopCountAnalysis counts it (one "flop"
per MAC of conv / linear / matmul / einsum / bmm, plus its norm and upsampling estimates, nothing for attention
or element-wise work) or as torch's FlopCounterMode does on the meta device (2 per MAC of matmul / conv /
attention / recurrent matrices only), next to deploykit's own.

[bold]Inputs[/]: --input-dtype int64 | int32 | bool with --input-range LO,HI (values drawn from [LO, HI); by
default [0, num_embeddings) of the model's nn.Embedding) for models that take token ids or indices.

Shapes come from a pass on the meta device: nothing is allocated or computed. A model that cannot be built
there is built on the CPU (then traced on meta); one whose forward needs tensor values (.item(), a
data-dependent branch) is traced on the CPU with a representative input (standard normal, or integers uniform
in the range; seed 0, never zeros). A note on stderr says which.
"""



def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,64,256"`` -> ``(1, 64, 256)``; each a positive integer."""
    from deploykit.errors import InvalidInput

    try:
        sizes = tuple(int(t) for t in split_list(text))
    except ValueError:
        raise InvalidInput(f"--batch-size takes positive integers separated by commas, got {text!r}") from None
    if not sizes or any(b <= 0 for b in sizes):
        raise InvalidInput(f"--batch-size takes positive integers separated by commas, got {text!r}")
    return sizes


def register(app: typer.Typer) -> None:
    app.command("profile", help=HELP)(profile)


@handle_errors
def profile(
    model: Annotated[str, typer.Argument(help="Registered model name or pkg.module:Attr import path.")],
    batch_size: Annotated[str | None, typer.Option("--batch-size", "-b", help="Samples per batch (default 1; an ONNX file: its own fixed batch), or a sweep 1,64,256 (memory per batch size).")] = None,
    input_shape: Annotated[str | None, typer.Option(help="Per-sample input shape, e.g. 3x224x224.")] = None,
    image_size: Annotated[str | None, typer.Option(help="Spatial size, e.g. 96 or 128x160 (keeps channels).")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of output classes.")] = None,
    in_channels: Annotated[int | None, typer.Option(help="Input channels (models that allow it).")] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32 | tf32 | fp16 | bf16 | int8: element size and roofline peak (default fp32; an ONNX file: its own types).")] = None,
    gpu: Annotated[str, typer.Option(help=f"Roofline device preset: {', '.join(PRESETS)}.")] = "h100",
    peak_tflops: Annotated[float | None, typer.Option(help="Custom matrix peak in TFLOP/s (with --bandwidth-gbs).")] = None,
    bandwidth_gbs: Annotated[float | None, typer.Option(help="Custom memory bandwidth in GB/s (with --peak-tflops).")] = None,
    depth: Annotated[int | None, typer.Option(help="Aggregate rows by module depth (like torchinfo).")] = None,
    top: Annotated[int, typer.Option(help="How many layers each finding lists.")] = 3,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json | csv | markdown.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    trace_device: Annotated[str, typer.Option(help="Device for the shape pass: meta (default; falls back to cpu by itself when the model needs it) or cpu.")] = "meta",
    input_dtype: Annotated[str, typer.Option(help="Input element type: float32 (default), int64, int32 or bool (token ids, indices).")] = "float32",
    input_range: Annotated[str | None, typer.Option(help="Integer inputs: values drawn from [LO, HI), e.g. 0,30522 (default: [0, num_embeddings) of the model's nn.Embedding).")] = None,
    convention: Annotated[str, typer.Option(help="Also report the total FLOPs as fvcore or flop-counter (torch's FlopCounterMode) counts them: deploykit | fvcore | flop-counter.")] = "deploykit",
    measure: Annotated[bool, typer.Option("--measure", help="Also time every layer on the CUDA GPU (torch.profiler kernel time) and compare with the roofline and the device's measured ceilings.")] = False,
    iterations: Annotated[int, typer.Option(help="Timed forward passes for --measure.")] = 20,
    engine: Annotated[Path | None, typer.Option(help="A TensorRT engine of this model: also show its per-layer times (TensorRT IProfiler) and fused layers.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write <model>-roofline.png and <model>-layers.png to this folder.")] = None,
    memory: Annotated[bool, typer.Option("--memory", help="Also model inference and training-step memory (implied by a batch sweep).")] = False,
    optimizer: Annotated[str, typer.Option(help="Optimizer of the training-step memory: sgd, sgd-momentum, adam, adamw, or none (inference only).")] = "adam",
    memory_target: Annotated[str, typer.Option(help="Allocator the memory model follows: cuda (512-byte blocks, foreach optimizers) or cpu (exact bytes).")] = "cuda",
    weights: Annotated[str | None, typer.Option("--weights", "-w", help="The model's weights (safetensors or torch file, or a torchvision name): checked against the model (strict keys and shapes, exit 2) and recorded in the JSON (source, sha256); the counts do not depend on them.")] = None,
) -> None:
    opts = _options(model, batch_size, input_shape, image_size, num_classes, in_channels, dtype, gpu, peak_tflops,
                    bandwidth_gbs, depth, top, trace_device, input_dtype, input_range, convention, measure,
                    iterations, engine, memory, optimizer, memory_target, format, weights)
    from deploykit.profiling import run_profile

    run = run_profile(opts)
    for note in run.profile.notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if plot is not None:
        _plot(run, plot)
    _render(run, format, output)


def _options(model: str, batch_size: str | None, input_shape: str | None, image_size: str | None,
             num_classes: int | None, in_channels: int | None, dtype: str | None, gpu: str,
             peak_tflops: float | None, bandwidth_gbs: float | None, depth: int | None, top: int, trace_device: str,
             input_dtype: str, input_range: str | None, convention: str, measure: bool, iterations: int,
             engine: Path | None, memory: bool, optimizer: str, memory_target: str, format: str,
             weights: str | None = None) -> Any:
    """The command line, parsed once into a :class:`~deploykit.profiling.ProfileOptions`."""
    from deploykit.errors import InvalidInput
    from deploykit.models import ModelOverrides
    from deploykit.models.inputs import input_spec
    from deploykit.precision import Precision
    from deploykit.profile import custom_device, get_device
    from deploykit.profiling import ProfileOptions

    if format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    if (peak_tflops is None) != (bandwidth_gbs is None):
        raise InvalidInput("give both --peak-tflops and --bandwidth-gbs for a custom device")
    if depth is not None and depth < 0:
        raise InvalidInput(f"--depth must be 0 or more, got {depth}")
    if top < 1:
        raise InvalidInput(f"--top must be at least 1, got {top}")
    if iterations < 1:
        raise InvalidInput(f"--iterations must be at least 1, got {iterations}")
    # `is not None`, not truthiness: 0 (or nan) is refused by custom_device, never silently the preset
    custom = peak_tflops is not None and bandwidth_gbs is not None
    opts = ProfileOptions(
        model=model,
        batch_sizes=parse_batch_sizes(batch_size or "1"),
        batch_given=batch_size is not None,
        overrides=ModelOverrides(input_shape=input_shape, image_size=image_size, num_classes=num_classes,
                                 in_channels=in_channels),
        dtype=Precision.parse(dtype, what="dtype") if dtype is not None else None,
        device=custom_device(peak_tflops, bandwidth_gbs) if custom else get_device(gpu),
        depth=depth, top=top, trace_device=trace_device, inputs=input_spec(input_dtype, input_range),
        convention=convention, measure=measure, iterations=iterations, engine=engine, memory=memory,
        optimizer=None if optimizer == "none" else optimizer, memory_target=memory_target, weights=weights,
    )
    if engine is not None:  # before any profiling: a missing TensorRT or file is one line, not a late traceback
        from deploykit.backends.registry import get_backend
        from deploykit.errors import ArtifactError, BackendUnavailable

        reason = get_backend("trt").unavailable()
        if reason is not None:
            raise BackendUnavailable(f"--engine {engine}: {reason}")
        if not engine.is_file():
            raise ArtifactError(f"--engine: file not found: {engine}")
    return opts


def _plot(run: Any, folder: Path) -> None:
    from deploykit.report.plots import plot_layers, plot_roofline, plot_stem

    prof, roof, times = run.profile, run.roofline, run.times
    stem = plot_stem(prof.model)
    measured_ms = dict(times.layer_ms) if times else None
    before = existing_files(folder)
    written = [
        plot_roofline([(prof, roof)], folder / f"{stem}-roofline.png",
                      measured_ms={prof.model: measured_ms} if measured_ms else None),
        plot_layers(prof, roof, folder / f"{stem}-layers.png", measured_ms=measured_ms),
    ]
    report_written(written, before)


def _json(run: Any) -> str:
    from dataclasses import asdict

    from deploykit.report import profile_tables as pt

    o, prof = run.options, run.profile
    doc = pt.profile_document(prof, run.roofline, run.findings, run.settings())
    if o.convention != "deploykit":
        doc["convention"] = {"name": o.convention, "flops": prof.convention_flops(o.convention),
                             "deploykit_macs": prof.total_macs, "deploykit_flops": prof.total_flops}
    if run.times is not None:
        doc["measured"] = {**run.times.to_dict(), "ceilings": run.ceilings.to_dict() if run.ceilings else None,
                           "achieved": [asdict(a) for a in run.achieved]}
    if run.engine_times is not None:
        doc["engine"] = asdict(run.engine_times)
    if run.memory is not None:
        doc["memory"] = run.memory.to_dict()
    return json_text(doc)


def _render(run: Any, format: str, output: Path | None) -> None:
    from deploykit.report import profile_tables as pt

    o, prof, roof = run.options, run.profile, run.roofline
    if format == "json":
        emit(_json(run), output)
    elif format == "csv":
        emit(pt.profile_csv(prof, roof, run.rows), output)
    elif format == "markdown":
        text = pt.profile_markdown(prof, roof, run.rows)
        if o.convention != "deploykit":
            text += "\n" + pt.convention_text(prof, o.convention) + "\n"
        if run.memory is not None:
            from deploykit.report.memory_tables import memory_markdown

            text += "\n" + memory_markdown(run.memory)
        emit(text, output)
    else:
        renderables: list[Any] = [pt.profile_table(prof, roof, run.rows), pt.findings_renderable(prof, roof, run.findings)]
        if o.convention != "deploykit":
            renderables.append(pt.convention_text(prof, o.convention))
        if run.times is not None:
            renderables.append(pt.measured_table(prof, roof, run.times, run.achieved, run.ceilings))
        if run.engine_times is not None:
            renderables.append(pt.engine_table(run.engine_times))
        if run.memory is not None:
            from deploykit.report.memory_tables import memory_renderable

            renderables.append(memory_renderable(run.memory, o.top))
        show(renderables, output)
