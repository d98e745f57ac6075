"""``deploykit export``: a model -> a validated ONNX file (+ a TensorRT engine when TensorRT is usable)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from deploykit.cli._common import console, err_console, handle_errors, split_list

FORMATS = ("onnx", "trt")

HELP = """Export a model to ONNX, check it, validate it numerically against eager PyTorch, and (when TensorRT and a CUDA GPU are usable, or with --format trt) build a TensorRT engine from it.

MODEL is a registered name (`deploykit list`) or an import path `pkg.module:ClassOrFactory` (with --input-shape). Weights are freshly initialised with --seed (no download).

[bold]Files[/] (in --out, default deploykit-out/): `<model>[-fp16][-b<N>|-dynamic].onnx` with the weights embedded, and its manifest `<file>.onnx.json` (model, input/output names, shapes and dtypes, opset, precision, exporter, package versions, sha256, validation results). Written atomically; a graph that fails validation is kept only as `<stem>.failed.onnx` and the command exits 1 with the errors.

[bold]Exporter[/]: torch.onnx's dynamo exporter; if it fails on a model, the TorchScript exporter (recorded in the manifest). [bold]--fp16[/]: weights, activations, input and output are fp16.

[bold]Validation[/]: onnx.checker (full check), then ONNX Runtime vs eager PyTorch fp32 on three random batches (seed 0; batches 1, 2, 3 with --dynamic-batch): pass when max|ort - eager| <= atol + rtol x max|eager| for every output (fp32: rtol 1e-4, fp16: rtol 1e-2). On the GPU with the CUDA provider when onnxruntime-gpu is installed, else on the CPU provider, which runs fp16 graphs in fp32 (the manifest says which nodes).

[bold]TensorRT[/]: --fp16 builds a strongly typed engine from the fp16 graph; --bf16 (TensorRT 10.0-10.11 only) and --int8 (TensorRT 10.x with real --calib-data, or a Q/DQ graph) from the fp32 graph; --min-batch, --opt-batch and --max-batch need --dynamic-batch. Without TensorRT the engine is skipped with one line (exit 0; exit 3 when --format trt was asked for).
"""


def register(app: typer.Typer) -> None:
    app.command("export", help=HELP)(export)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "inf" if math.isinf(x) else f"{x:.3g}"
    return str(x)


def _print_onnx(art: Any) -> None:
    from rich.markup import escape

    m = art.manifest
    v = m["validation"]
    shape = lambda io: "x".join(str(d) for d in io["shape"])  # noqa: E731
    ins = ", ".join(f"{i['name']} {shape(i)} {i['dtype']}" for i in m["inputs"])
    outs = ", ".join(f"{o['name']} {shape(o)} {o['dtype']}" for o in m["outputs"])
    ex = m["exporter"]
    console.print(
        f"[bold green]ONNX[/] {escape(str(art.path))}  ({m['bytes'] / 1e6:.1f} MB)", highlight=False
    )
    console.print(f"  manifest   {escape(str(art.manifest_path))}", highlight=False)
    console.print(
        f"  graph      opset {m['opset']}, {m['precision']}, exporter {ex['name']}"
        + (f" (dynamo failed: {escape(ex['fallback_reason'])})" if ex.get("fallback_reason") else ""),
        highlight=False,
    )
    console.print(f"  input      {escape(ins)}", highlight=False)
    console.print(f"  output     {escape(outs)}", highlight=False)
    if v.get("status") == "skipped":
        console.print("  validation skipped", highlight=False)
        return
    tol = v["tolerance"]
    sizes = v["batch_sizes"]
    batches = (
        f"{len(sizes)} random batches of {sizes[0]}"
        if len(set(sizes)) == 1
        else f"random batches of {', '.join(map(str, sizes))}"
    )
    console.print(
        f"  validation [bold green]passed[/] on {v['provider']} ({v['device']}), {batches}: "
        f"max abs error {_fmt(v['max_abs_error'])}, "
        f"max rel error {_fmt(v['max_rel_error'])} (allowed: atol {tol['atol']:g} + rtol {tol['rtol']:g} x max|ref|)",
        highlight=False,
    )
    for line in v.get("not_validated", []):
        console.print(f"  [yellow]not validated here:[/] {escape(line)}", highlight=False)
    for line in v.get("warnings", []):
        console.print(f"  [yellow]warning:[/] {escape(line)}", highlight=False)


@handle_errors
def export(
    model: Annotated[str, typer.Argument(help="Registered model name or pkg.module:Attr import path.")],
    fp16: Annotated[
        bool, typer.Option("--fp16", help="fp16 graph (weights, activations, input, output).")
    ] = False,
    bf16: Annotated[bool, typer.Option("--bf16", help="bf16 TensorRT engine (from the fp32 graph).")] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="INT8 TensorRT engine (needs --calib-data or a Q/DQ graph).")
    ] = False,
    opset: Annotated[
        int | None, typer.Option(help="ONNX opset (default: the exporter's, 20 on torch 2.14).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", help="Fixed batch of the graph (default 1).")
    ] = None,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Symbolic batch dimension.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("deploykit-out"),
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help="onnx, trt or onnx,trt (default: onnx, plus trt when usable)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Validation device: cpu or cuda (default: cuda when usable).")
    ] = None,
    exporter: Annotated[str, typer.Option(help="auto | dynamo | torchscript.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    input_shape: Annotated[str | None, typer.Option(help="Per-sample input shape, e.g. 3x224x224.")] = None,
    image_size: Annotated[
        str | None, typer.Option(help="Spatial size, e.g. 96 or 128x160 (keeps channels).")
    ] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of output classes.")] = None,
    in_channels: Annotated[int | None, typer.Option(help="Input channels (models that allow it).")] = None,
    calib_data: Annotated[
        Path | None, typer.Option(help="INT8 calibration inputs: a .npy file or a folder of them.")
    ] = None,
    min_batch: Annotated[int | None, typer.Option(help="TensorRT profile: smallest batch.")] = None,
    opt_batch: Annotated[int | None, typer.Option(help="TensorRT profile: batch to tune for.")] = None,
    max_batch: Annotated[int | None, typer.Option(help="TensorRT profile: largest batch.")] = None,
    workspace_gb: Annotated[float | None, typer.Option(help="TensorRT workspace limit in GiB.")] = None,
    timing_cache: Annotated[
        Path | None, typer.Option(help="TensorRT timing cache file (reused, updated).")
    ] = None,
    opt_level: Annotated[int | None, typer.Option(help="TensorRT builder optimization level 0-5.")] = None,
    input_dtype: Annotated[
        str, typer.Option(help="Input element type: float32 (default), int64, int32 or bool (token ids, indices).")
    ] = "float32",
    input_range: Annotated[
        str | None,
        typer.Option(help="Integer inputs: validation draws values from [LO, HI), e.g. 0,30522 (default: "
                     "[0, num_embeddings) of the model's nn.Embedding)."),
    ] = None,
) -> None:
    from deploykit.errors import BackendUnavailable, InvalidInput

    # ---- arguments, all checked before anything heavy runs
    from deploykit.models.inputs import input_spec

    inputs = input_spec(input_dtype, input_range)
    if sum((fp16, bf16, int8)) > 1:
        raise InvalidInput("choose one of --fp16, --bf16, --int8")
    precision = "fp16" if fp16 else "bf16" if bf16 else "int8" if int8 else "fp32"
    if batch_size is not None and dynamic_batch:
        raise InvalidInput("--batch-size fixes the batch and --dynamic-batch makes it symbolic: choose one")
    if any(v is not None for v in (min_batch, opt_batch, max_batch)) and not dynamic_batch:
        raise InvalidInput(
            "--min-batch/--opt-batch/--max-batch shape a dynamic-batch engine: add --dynamic-batch"
        )
    if workspace_gb is not None and not workspace_gb > 0:
        raise InvalidInput(f"--workspace-gb must be positive, got {workspace_gb}")
    explicit = format is not None
    formats = split_list(format) if explicit else []
    if explicit:
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise InvalidInput(
                f"unknown format {', '.join(unknown) or repr(format)}; choose from {', '.join(FORMATS)}"
            )
    trt_options = {
        "--bf16": bf16,
        "--int8": int8,
        "--calib-data": calib_data,
        "--min-batch": min_batch,
        "--opt-batch": opt_batch,
        "--max-batch": max_batch,
        "--workspace-gb": workspace_gb,
        "--timing-cache": timing_cache,
        "--opt-level": opt_level,
    }
    given_trt = [k for k, v in trt_options.items() if v not in (None, False)]
    if explicit and "trt" not in formats and given_trt:
        raise InvalidInput(f"{', '.join(given_trt)} apply to the TensorRT engine: add trt to --format")
    if opt_level is not None and not 0 <= opt_level <= 5:
        raise InvalidInput(f"--opt-level must be 0-5, got {opt_level}")
    if calib_data is not None and not calib_data.exists():
        raise InvalidInput(f"calibration data not found: {calib_data}")

    from deploykit.export.tensorrt import tensorrt_status

    trt_reason = tensorrt_status()
    if not explicit:
        # Default: the ONNX file and, when TensorRT is usable, the engine; without TensorRT the engine is
        # reported as skipped (exit 0), so the user learns what the command could have built.
        formats = ["onnx", "trt"]

    # ---- the export (always: the engine is built from the validated ONNX file)
    import torch

    from deploykit.export.onnx import export_module
    from deploykit.models import create_model

    overrides: dict[str, Any] = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "input_shape": input_shape,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module, spec = create_model(model, device="cpu", **overrides)
    err_console.print(f"exporting {model} ({'x'.join(map(str, spec.input_shape))}) ...", highlight=False)
    art = export_module(
        module,
        spec,
        out_dir=out,
        precision="fp16" if precision == "fp16" else "fp32",
        batch_size=batch_size or 1,
        dynamic_batch=dynamic_batch,
        opset=opset,
        device=device,
        exporter=exporter,
        name=model,
        model_info={"overrides": {k: v for k, v in overrides.items() if v is not None}, "weight_seed": seed},
        inputs=inputs,
    )
    _print_onnx(art)
    if "trt" not in formats:
        return

    # ---- the TensorRT engine
    if trt_reason is not None:
        from rich.markup import escape

        line = escape(f"TensorRT engine skipped: {trt_reason}")
        if explicit:  # asked for by name: an error (BackendUnavailable's exit code), printed here unmangled
            err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(BackendUnavailable.exit_code)
        console.print(f"[yellow]{line}[/]", highlight=False)
        return
    from deploykit.export.tensorrt import build_engine

    err_console.print(f"building the TensorRT {precision} engine ...", highlight=False)
    engine = build_engine(
        art,
        precision=precision,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        workspace_bytes=int(workspace_gb * 2**30) if workspace_gb is not None else None,
        timing_cache=timing_cache,
        opt_level=opt_level,
        calib_data=calib_data,
        reference_model=module,
        device=device if device and device.startswith("cuda") else "cuda",
    )
    from rich.markup import escape

    console.print(f"[bold green]TensorRT[/] {escape(str(engine.path))}", highlight=False)
    console.print(f"  manifest   {escape(str(engine.manifest_path))}", highlight=False)
    val = engine.manifest.get("validation") if isinstance(engine.manifest, dict) else None
    if isinstance(val, dict) and "max_abs_error" in val:
        console.print(
            f"  validation passed: max abs error {_fmt(val.get('max_abs_error'))}, "
            f"max rel error {_fmt(val.get('max_rel_error'))}",
            highlight=False,
        )
