"""``deploykit evaluate``: accuracy of a model and of its deployed artifacts on real labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deploykit.cli._common import emit, handle_errors, json_text, show, split_list

FORMATS = ("table", "json", "markdown")

HELP = """Measure whether deployed artifacts still classify like the PyTorch model: accuracy on the test split of real data for eager PyTorch fp32 (the reference), ONNX fp32, fp16 and INT8 in ONNX Runtime (exported on the fly, or --onnx files) and TensorRT engines (when TensorRT and a CUDA GPU are usable; otherwise one line says why).

TARGET is a registered model (with --weights) or an ONNX file (compared with eager PyTorch when --weights is given: the model is read from the file's deploykit manifest, or --model). Given .engine files are not evaluated yet (engines are built from the model's ONNX exports when TensorRT is usable).

[bold]Metrics[/] per artifact: top-1 and top-5 accuracy (top-5 with more than 5 classes); agreement = share of samples whose predicted class equals eager PyTorch's; max and mean |logit - eager logit|; max 1 - cosine similarity of a sample's logits with eager's. Percentages are truncated, never rounded up to 100%.

[bold]INT8[/]: `onnx int8` is the Q/DQ graph `deploykit export --int8` makes (int8 weights per channel and activations per tensor, symmetric), calibrated with minmax on 512 samples of the data's TRAIN split (refused when they overlap the test split); `onnx int8-dynamic` is ONNX Runtime's dynamic quantization (activations quantized per batch at run time, no calibration; not a TensorRT graph), for comparison. Each row says which nodes ran as int8 kernels. No accuracy gate here: `deploykit export --int8 --max-accuracy-drop` has one.

[bold]fp16 on the CPU[/]: ONNX Runtime's CPU provider has almost no fp16 kernels; it inserts Casts and runs those nodes in fp32, so the fp16 row measures fp16 weights, inputs and outputs, not fp16 arithmetic (a line says which nodes).

[bold]Exit codes[/]: 0 measured; 1 an artifact could not be made or run, or an agreement is below --min-agreement; 2 bad input (unknown model, weights that do not fit, bad data); 3 a requested device or backend is missing.

Examples: `deploykit evaluate mnist1d-cnn --weights w.safetensors --data mnist1d`; `deploykit evaluate deploykit-out/mnist1d-cnn.onnx --weights w.safetensors --data mnist1d -f markdown`.
"""


def register(app: typer.Typer) -> None:
    app.command("evaluate", help=HELP)(evaluate)


@handle_errors
def evaluate(
    target: Annotated[str, typer.Argument(help="A registered model (`deploykit list`) or an ONNX file.")],
    data: Annotated[str, typer.Option("--data", "-d", help="mnist1d | digits | FILE.npz | image folder; its test split is used.")],
    weights: Annotated[str | None, typer.Option("--weights", "-w", help="The model's weights: a safetensors or torch file, or a torchvision name (DEFAULT) for torchvision models.")] = None,
    model: Annotated[str | None, typer.Option(help="For an ONNX TARGET without a deploykit manifest: the model the file was exported from.")] = None,
    onnx: Annotated[list[Path] | None, typer.Option("--onnx", help="Evaluate this ONNX file instead of exporting (repeat for several).")] = None,
    onnx_dir: Annotated[Path | None, typer.Option(help="Keep the exported ONNX files (and engines) in this folder (default: a temporary one).")] = None,
    precision: Annotated[str, typer.Option(help="Precisions to export and evaluate, comma separated: fp32, fp16, int8 (static Q/DQ, calibrated on the data's train split), int8-dynamic (ONNX Runtime dynamic quantization, for comparison).")] = "fp32,fp16,int8,int8-dynamic",
    tensorrt: Annotated[bool, typer.Option("--tensorrt/--no-tensorrt", help="Also build and evaluate TensorRT engines when TensorRT is usable.")] = True,
    device: Annotated[str, typer.Option(help="cpu | cuda: where eager PyTorch and ONNX Runtime run.")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Samples per inference call.")] = 256,
    limit: Annotated[int | None, typer.Option(help="Only the first N test samples.")] = None,
    min_agreement: Annotated[float | None, typer.Option(help="Exit 1 when an artifact's top-1 agreement with eager is below this percentage (e.g. 99.5).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json | markdown.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    from deploykit.errors import InvalidInput
    from deploykit.evaluate import evaluate_model, evaluate_onnx
    from deploykit.report import evaluate as re

    if format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    if min_agreement is not None and not 0 <= min_agreement <= 100:
        raise InvalidInput(f"--min-agreement is a percentage (0-100), got {min_agreement}")
    if target.endswith(".engine"):
        from deploykit.backends.registry import get_backend
        from deploykit.errors import BackendUnavailable

        reason = get_backend("trt").unavailable()
        if reason is not None:
            raise BackendUnavailable(f"{target}: {reason}")
        raise InvalidInput(
            "evaluating a given .engine file is not supported yet; evaluate the model (engines are built from its "
            "ONNX exports when TensorRT is usable)"
        )
    if target.endswith(".onnx"):
        if onnx or onnx_dir:
            raise InvalidInput("--onnx / --onnx-dir are for a model TARGET; an ONNX TARGET is evaluated as it is")
        ev = evaluate_onnx(target, data, weights=weights, model=model, device=device, batch_size=batch_size,
                           limit=limit)
    else:
        ev = evaluate_model(target, data, weights=weights, precisions=split_list(precision),
                            onnx_files=onnx or (), onnx_dir=onnx_dir, tensorrt=tensorrt, device=device,
                            batch_size=batch_size, limit=limit)
    if format == "json":
        emit(json_text(ev.to_dict()), output)
    elif format == "markdown":
        emit(re.evaluation_markdown(ev), output)
    else:
        show([re.evaluation_renderable(ev)], output)
    failed = [r.label for r in ev.rows if r.status == "failed"]
    low = [
        r.label for r in ev.rows
        if min_agreement is not None and r.kind != "eager" and r.metrics is not None
        and r.metrics.agreement is not None and r.metrics.agreement * 100 < min_agreement
    ]
    if failed or low:
        from deploykit.cli._common import fail

        why = [f"{', '.join(failed)} failed"] if failed else []
        why += [f"{', '.join(low)} below {min_agreement:g}% top-1 agreement with eager"] if low else []
        fail("; ".join(why), 1)
