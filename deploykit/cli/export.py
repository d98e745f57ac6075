"""``deploykit export``: a model -> a validated ONNX file (+ a TensorRT engine when TensorRT is usable)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from deploykit.cli._common import console, err_console, handle_errors, split_list

FORMATS = ("onnx", "trt")

HELP = """Export a model to ONNX, check it, validate it numerically against eager PyTorch, and (when TensorRT and a CUDA GPU are usable, or with --format trt) build a TensorRT engine from it.

MODEL is a registered name (`deploykit list`), an import path `pkg.module:ClassOrFactory` or a file `path/to/file.py:ClassOrFactory` (with --input-shape). Weights: --weights FILE (safetensors, or a torch state_dict / checkpoint read with weights_only=True; strict: keys and shapes must fit, exit 2) or a torchvision name (DEFAULT); otherwise freshly initialised with --seed. The manifest records their source and sha256.

[bold]Files[/] (in --out, default deploykit-out/): `<model>[-fp16][-b<N>|-dynamic].onnx` with the weights embedded, and its manifest `<file>.onnx.json` (model, input/output names, shapes and dtypes, opset, precision, exporter, package versions, sha256, validation results). Written atomically; a graph that fails validation is kept only as `<stem>.failed.onnx` and the command exits 1 with the errors.

[bold]Exporter[/]: torch.onnx's dynamo exporter; if it fails on a model, the TorchScript exporter (recorded in the manifest). [bold]--fp16[/]: weights, activations, input and output are fp16.

[bold]Validation[/]: onnx.checker (full check), then ONNX Runtime vs eager PyTorch fp32 on three random batches (seed 0; batches 1, 2, 3 with --dynamic-batch) or, with --data, on the data's test split (then also accuracy and top-1 agreement). Verdict: [bold]passed[/] when max|ort - eager| <= rtol x max|eager| for every output (fp32: rtol 1e-4, fp16: rtol 1e-2; no absolute floor) and the input-dependent part of the outputs (minus their mean over the inputs) agrees to 0.5%; [bold]failed[/] (exit 1, kept as .failed.onnx) when an output is non-finite, all zeros or constant where eager's is not, or out of tolerance; [bold]inconclusive[/] (exit 0 with a warning; exit 1 with --strict) when the check could not have seen a 1% error in the input-dependent part: an all-zero reference, one below the precision's normal range, or one that hardly depends on the input (random weights: use --weights and --data). On the GPU with the CUDA provider when onnxruntime-gpu is installed, else on the CPU provider, which runs fp16 graphs in fp32 (the manifest says which nodes).

[bold]--int8[/]: post-training static quantization of the validated fp32 graph with ONNX Runtime into `<model>-int8[...].onnx`: QDQ format, int8 weights per channel and int8 activations per tensor, both symmetric (zero point 0, what TensorRT's explicit quantization takes), fp32 biases. Calibrated on real data only: the TRAIN split of --calib-data (mnist1d, digits, an .npz with x/y and optionally x_test/y_test, or an image folder; a single-set file is split 80/20, stratified, seed 0), --calib-samples of them (default 512), --calib-method minmax | entropy | percentile. Validated on the TEST split (of --calib-data; of --data when given), which must not share a sample with the calibration data: top-1 of INT8 against eager fp32, top-1 agreement, logit errors. An accuracy drop above --max-accuracy-drop (default 1.0 percentage point) keeps the graph only as `<stem>.failed.onnx` and exits 1 with the measured drop; with random weights (no --weights) the check is inconclusive (accuracy is at chance level). --int8 without --calib-data is refused (exit 2): deploykit never calibrates on random data.

[bold]TensorRT[/]: --fp16 builds a strongly typed engine from the fp16 graph, --int8 one from the Q/DQ graph (TensorRT 10 and 11: the scales come from the ONNX); --bf16 (TensorRT 10.0-10.11 only) from the fp32 graph; --min-batch, --opt-batch and --max-batch imply --dynamic-batch. Without TensorRT the engine is skipped with one line (exit 0; exit 3 when --format trt was asked for).
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
    w = m.get("weights")
    seed = (m.get("model") or {}).get("weight_seed")
    console.print(
        f"  weights    {escape(w['source'])} ({w['format']}, sha256 {w['sha256'][:12]})" if w
        else f"  weights    random initialisation (seed {seed}; --weights for trained ones)",
        highlight=False,
    )
    if v.get("status") == "skipped":
        console.print("  validation skipped", highlight=False)
        return
    print_validation(v)


def print_validation(v: dict[str, Any]) -> None:
    """The validation lines of an export: the verdict with its reason, accuracy with --data, what was not
    validated, warnings, and for an inconclusive check what to do."""
    from rich.markup import escape

    tol = v["tolerance"]
    inputs = v.get("inputs") or {}
    if inputs.get("kind") == "data":
        on = f"{v.get('samples')} test samples of {inputs.get('name')} ({inputs.get('split')})"
    else:
        sizes = v["batch_sizes"]
        on = (
            f"{len(sizes)} random batches of {sizes[0]}"
            if len(set(sizes)) == 1
            else f"random batches of {', '.join(map(str, sizes))}"
        )
    colour = {"passed": "bold green", "inconclusive": "bold yellow", "failed": "bold red"}.get(v["status"], "bold")
    console.print(
        f"  validation [{colour}]{v['status']}[/] on {v['provider']} ({v['device']}), {on}: "
        f"max abs error {_fmt(v['max_abs_error'])}, max rel error {_fmt(v['max_rel_error'])} "
        f"(allowed: rtol {tol['rtol']:g} x max|ref|)",
        highlight=False,
    )
    if v.get("reason"):
        label = "why" if v["status"] != "passed" else "checked"
        console.print(f"  {label:<10} {escape(v['reason'])}", highlight=False)
    acc = v.get("accuracy")
    if acc:
        from deploykit.report.evaluate import fmt_share

        e, o = acc["eager"], acc["onnx"]
        console.print(
            f"  accuracy   top-1 eager {fmt_share(e['top1'])}, ONNX {fmt_share(o['top1'])}; top-1 agreement "
            f"{fmt_share(o['agreement'], o['samples'])}; max 1-cos of logits {_fmt(max(0.0, 1.0 - o['cosine_min']))}",
            highlight=False,
        )
    for line in v.get("not_validated", []):
        console.print(f"  [yellow]not validated here:[/] {escape(line)}", highlight=False)
    for line in v.get("warnings", []):
        console.print(f"  [yellow]warning:[/] {escape(line)}", highlight=False)
    if v["status"] == "inconclusive" and v.get("advice"):
        console.print(f"  [yellow]to validate:[/] {escape(v['advice'])}", highlight=False)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _quantize(art: Any, module: Any, splits: Any, options: Any, *, trained: bool, out: Path) -> Any:
    """The INT8 Q/DQ graph of the validated fp32 ``art``, printed; ValidationError (exit 1) past the gate."""
    from rich.markup import escape

    from deploykit.export.int8 import quantize_artifact

    calib, test = splits
    err_console.print(
        f"quantizing to INT8: {options.method} calibration on {min(options.samples, len(calib))} samples of "
        f"{calib.name} ({calib.split}), validation on {len(test)} samples of {test.name} ({test.split}) ...",
        highlight=False,
    )
    res = quantize_artifact(art, module, calib, test, options, out_dir=out, trained=trained)
    m = res.artifact.manifest
    q, v = m["quantization"], m["validation"]
    ops = q["ops"]
    quantized = ", ".join(f"{k} x{n}" for k, n in ops["quantized_ops"].items())
    left = ", ".join(f"{k} x{n}" for k, n in ops["float_ops"].items()) or "none"
    console.print(f"[bold green]INT8[/] {escape(str(res.artifact.path))}  ({_size(m['bytes'])}; fp32 "
                  f"{_size(m['source']['bytes'])})", highlight=False)
    console.print(f"  manifest   {escape(str(res.artifact.manifest_path))}", highlight=False)
    console.print(f"  graph      QDQ: int8 weights per channel, int8 activations per tensor, symmetric (zero point "
                  f"0); quantized {quantized}; left in float: {left}", highlight=False)
    console.print(f"  calibrated {q['method']} on {q['samples']} samples of {escape(q['data']['name'])} "
                  f"({q['data']['split']}, sha256 {q['data']['sha256'][:12]}), batch {q['batch']}", highlight=False)
    i8 = v["int8"]
    colour = {"passed": "bold green", "inconclusive": "bold yellow"}.get(v["status"], "bold")
    console.print(
        f"  validation [{colour}]{v['status']}[/] on {i8['samples']} held-out samples of {escape(test.name)} "
        f"({test.split}): top-1 fp32 {100 * v['fp32_top1']:.1f}%, INT8 {100 * i8['top1']:.1f}% (drop "
        f"{v['accuracy_drop_points']:.2f} points, allowed {v['max_accuracy_drop_points']:g}); top-1 agreement "
        f"{100 * i8['agreement']:.1f}%; max abs logit error {_fmt(i8['max_abs_error'])}; min cosine "
        f"{i8['cosine_min']:.4f}",
        highlight=False,
    )
    for line in v.get("not_validated", []):
        console.print(f"  [yellow]not validated here:[/] {escape(line)}", highlight=False)
    return res.artifact


@handle_errors
def export(
    model: Annotated[str, typer.Argument(help="Registered model name or pkg.module:Attr import path.")],
    fp16: Annotated[
        bool, typer.Option("--fp16", help="fp16 graph (weights, activations, input, output).")
    ] = False,
    bf16: Annotated[bool, typer.Option("--bf16", help="bf16 TensorRT engine (from the fp32 graph).")] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="INT8 Q/DQ ONNX by static quantization (needs --calib-data).")
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
    seed: Annotated[int, typer.Option(help="Seed of the random weights (without --weights).")] = 0,
    weights: Annotated[
        str | None,
        typer.Option("--weights", "-w", help="The model's weights: a safetensors or torch file (state_dict or "
                     "checkpoint, read with weights_only=True), or a torchvision name (DEFAULT) for torchvision "
                     "models. Strict: missing / unexpected keys or shapes are an error (exit 2)."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Validate on this data's test split instead of random inputs, with accuracy "
                     "and top-1 agreement: mnist1d, digits, a .npz file (x, y) or an image folder."),
    ] = None,
    data_limit: Annotated[
        int | None, typer.Option(help="Validate on the first N test samples only (with --data).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when the validation is inconclusive (default: exit 0 with a warning).")
    ] = False,
    input_shape: Annotated[str | None, typer.Option(help="Per-sample input shape, e.g. 3x224x224.")] = None,
    image_size: Annotated[
        str | None, typer.Option(help="Spatial size, e.g. 96 or 128x160 (keeps channels).")
    ] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of output classes.")] = None,
    in_channels: Annotated[int | None, typer.Option(help="Input channels (models that allow it).")] = None,
    calib_data: Annotated[
        str | None,
        typer.Option(help="--int8: real calibration data, its train split: mnist1d, digits, FILE.npz or an image folder."),
    ] = None,
    calib_method: Annotated[
        str | None, typer.Option(help="--int8: minmax (default), entropy or percentile.")
    ] = None,
    calib_samples: Annotated[
        int | None, typer.Option(help="--int8: calibration samples from the train split (default 512).")
    ] = None,
    max_accuracy_drop: Annotated[
        float | None,
        typer.Option(help="--int8: largest accepted top-1 drop against fp32 on the test split, in percentage "
                     "points (default 1.0)."),
    ] = None,
    allow_calib_overlap: Annotated[
        bool, typer.Option("--allow-calib-overlap", help="--int8: calibrate even when calibration samples also "
                           "appear in the evaluation split (the manifest says so).")
    ] = False,
    min_batch: Annotated[int | None, typer.Option(help="TensorRT profile: smallest batch (implies --dynamic-batch).")] = None,
    opt_batch: Annotated[int | None, typer.Option(help="TensorRT profile: batch to tune for (implies --dynamic-batch).")] = None,
    max_batch: Annotated[int | None, typer.Option(help="TensorRT profile: largest batch (implies --dynamic-batch).")] = None,
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
    req = _Request(**locals())  # the parameters, as typer parsed them
    req.check()  # everything that can be refused, before anything heavy runs
    art, module = _export_onnx(req)
    if "trt" in req.formats:
        _build_trt(req, art, module)


@dataclass
class _Request:
    """The command line of ``deploykit export``, checked once (:meth:`check`) before any work."""

    model: str
    fp16: bool
    bf16: bool
    int8: bool
    opset: int | None
    batch_size: int | None
    dynamic_batch: bool
    out: Path
    format: str | None
    device: str | None
    exporter: str
    seed: int
    weights: str | None
    data: str | None
    data_limit: int | None
    strict: bool
    input_shape: str | None
    image_size: str | None
    num_classes: int | None
    in_channels: int | None
    calib_data: str | None
    calib_method: str | None
    calib_samples: int | None
    max_accuracy_drop: float | None
    allow_calib_overlap: bool
    min_batch: int | None
    opt_batch: int | None
    max_batch: int | None
    workspace_gb: float | None
    timing_cache: Path | None
    opt_level: int | None
    input_dtype: str
    input_range: str | None
    # set by check()
    precision: Any = None
    inputs: Any = None
    explicit: bool = False
    formats: list[str] = field(default_factory=list)
    int8_options: Any = None
    trt_reason: str | None = None

    def check(self) -> None:
        from deploykit.errors import InvalidInput
        from deploykit.models.inputs import input_spec
        from deploykit.precision import Precision

        self.inputs = input_spec(self.input_dtype, self.input_range)
        if sum((self.fp16, self.bf16, self.int8)) > 1:
            raise InvalidInput("choose one of --fp16, --bf16, --int8")
        self.precision = Precision.FP16 if self.fp16 else Precision.BF16 if self.bf16 else (
            Precision.INT8 if self.int8 else Precision.FP32)
        self._check_batches()
        from deploykit._io import check_output_dir

        check_output_dir(self.out)  # a file in the way, /proc, a name too long: before minutes of exporting
        if self.device is not None:
            from deploykit.export.onnx import _resolve_device

            _resolve_device(self.device)  # a bad device or a missing GPU (exit 3) before the export starts
        if self.workspace_gb is not None and not self.workspace_gb > 0:
            raise InvalidInput(f"--workspace-gb must be positive, got {self.workspace_gb}")
        self.explicit = self.format is not None
        self.formats = split_list(self.format) if self.explicit else []
        if self.explicit:
            unknown = [f for f in self.formats if f not in FORMATS]
            if unknown or not self.formats:
                raise InvalidInput(
                    f"unknown format {', '.join(unknown) or repr(self.format)}; choose from {', '.join(FORMATS)}"
                )
        self._check_int8()
        self._check_trt()
        if self.data_limit is not None and (self.data is None or self.data_limit < 1):
            raise InvalidInput("--data-limit needs --data and a positive number of samples")

        from deploykit.backends.registry import get_backend

        self.trt_reason = get_backend("trt").unavailable()
        if not self.explicit:
            # Default: the ONNX file and, when TensorRT is usable, the engine; without TensorRT the engine is
            # reported as skipped (exit 0), so the user learns what the command could have built.
            self.formats = ["onnx", "trt"]

    def _check_batches(self) -> None:
        from deploykit.errors import InvalidInput

        if self.batch_size is not None and self.dynamic_batch:
            raise InvalidInput("--batch-size fixes the batch and --dynamic-batch makes it symbolic: choose one")
        if any(v is not None for v in (self.min_batch, self.opt_batch, self.max_batch)):
            if self.batch_size is not None:
                raise InvalidInput(
                    "--min-batch/--opt-batch/--max-batch shape a dynamic-batch engine and --batch-size fixes the "
                    "batch: choose one"
                )
            self.dynamic_batch = True  # a batch range needs a symbolic batch: implied, as the help says
        if self.batch_size is not None and self.batch_size < 1:
            raise InvalidInput(f"--batch-size must be a positive integer, got {self.batch_size}")

    def _check_int8(self) -> None:
        from deploykit.errors import InvalidInput

        if self.int8:
            from deploykit.export.int8 import Int8Options

            if self.calib_data is None:
                raise InvalidInput(
                    "--int8 needs real calibration data: --calib-data mnist1d | digits | FILE.npz | FOLDER "
                    "(deploykit never calibrates on random data)"
                )
            defaults = Int8Options()
            self.int8_options = Int8Options(
                method=self.calib_method or defaults.method,
                samples=self.calib_samples if self.calib_samples is not None else defaults.samples,
                max_accuracy_drop=(self.max_accuracy_drop if self.max_accuracy_drop is not None
                                   else defaults.max_accuracy_drop),
                allow_overlap=self.allow_calib_overlap,
            )
            return
        given_int8 = [k for k, v in {"--calib-data": self.calib_data, "--calib-method": self.calib_method,
                                      "--calib-samples": self.calib_samples,
                                      "--max-accuracy-drop": self.max_accuracy_drop,
                                      "--allow-calib-overlap": self.allow_calib_overlap}.items()
                      if v not in (None, False)]
        if given_int8:
            raise InvalidInput(f"{', '.join(given_int8)} quantize to INT8: add --int8")

    def _check_trt(self) -> None:
        from deploykit.errors import InvalidInput

        trt_options = {
            "--bf16": self.bf16,
            "--min-batch": self.min_batch,
            "--opt-batch": self.opt_batch,
            "--max-batch": self.max_batch,
            "--workspace-gb": self.workspace_gb,
            "--timing-cache": self.timing_cache,
            "--opt-level": self.opt_level,
        }
        given_trt = [k for k, v in trt_options.items() if v not in (None, False)]
        if self.explicit and "trt" not in self.formats and given_trt:
            raise InvalidInput(f"{', '.join(given_trt)} apply to the TensorRT engine: add trt to --format")
        if self.opt_level is not None and not 0 <= self.opt_level <= 5:
            raise InvalidInput(f"--opt-level must be 0-5, got {self.opt_level}")

    @property
    def overrides(self) -> Any:
        from deploykit.models import ModelOverrides

        return ModelOverrides(input_shape=self.input_shape, image_size=self.image_size,
                              num_classes=self.num_classes, in_channels=self.in_channels)


def _export_onnx(req: _Request) -> tuple[Any, Any]:
    """The validated ONNX file (always: the engine is built from it), quantized with --int8; and the module."""
    import torch

    from deploykit.export.onnx import export_module, load_test_split
    from deploykit.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(req.seed)
        module, spec = create_model(req.model, device="cpu", weights=req.weights, **req.overrides.kwargs())
    if req.int8_options is not None:  # bad calibration data is refused before anything is exported
        from deploykit.export.int8 import calibration_splits

        calib = calibration_splits(str(req.calib_data), spec)
    test = load_test_split(req.data, spec, name=req.model, limit=req.data_limit) if req.data is not None else None
    if req.int8_options is not None and test is not None:  # --data: the INT8 graph is validated on its test split
        calib = (calib[0], test)
    err_console.print(f"exporting {req.model} ({'x'.join(map(str, spec.input_shape))}) ...", highlight=False)
    art = export_module(
        module,
        spec,
        out_dir=req.out,
        precision=req.precision.onnx_graph,
        batch_size=req.batch_size or 1,
        dynamic_batch=req.dynamic_batch,
        opset=req.opset,
        device=req.device,
        exporter=req.exporter,
        name=req.model,
        model_info={
            "overrides": req.overrides.given(),
            "weight_seed": None if req.weights is not None else req.seed,
        },
        inputs=req.inputs,
        data=test,
    )
    _print_onnx(art)
    inconclusive = art.manifest["validation"].get("status") == "inconclusive"
    if inconclusive and req.strict:
        err_console.print(
            "[bold red]error:[/] --strict: the validation is inconclusive (the file is written; its manifest says why)",
            highlight=False, soft_wrap=True,
        )
        raise typer.Exit(1)
    if req.int8_options is not None:
        art = _quantize(art, module, calib, req.int8_options, trained=getattr(spec, "weights", None) is not None,
                        out=req.out)
    return art, module


def _build_trt(req: _Request, art: Any, module: Any) -> None:
    """The TensorRT engine from the validated ONNX file, or one line saying why it was skipped."""
    from rich.markup import escape

    from deploykit.errors import BackendUnavailable

    if req.trt_reason is not None:
        line = escape(f"TensorRT engine skipped: {req.trt_reason}")
        if req.explicit:  # asked for by name: an error (BackendUnavailable's exit code), printed here unmangled
            err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(BackendUnavailable.exit_code)
        console.print(f"[yellow]{line}[/]", highlight=False)
        return
    from deploykit.export.tensorrt import build_engine

    err_console.print(f"building the TensorRT {req.precision} engine ...", highlight=False)
    engine = build_engine(
        art,
        precision=req.precision,
        min_batch=req.min_batch,
        opt_batch=req.opt_batch,
        max_batch=req.max_batch,
        workspace_bytes=int(req.workspace_gb * 2**30) if req.workspace_gb is not None else None,
        timing_cache=req.timing_cache,
        opt_level=req.opt_level,
        reference_model=module,
        device=req.device if req.device and req.device.startswith("cuda") else "cuda",
    )
    console.print(f"[bold green]TensorRT[/] {escape(str(engine.path))}", highlight=False)
    console.print(f"  manifest   {escape(str(engine.manifest_path))}", highlight=False)
    val = engine.manifest.get("validation") if isinstance(engine.manifest, dict) else None
    if isinstance(val, dict) and "max_abs_error" in val:
        status = val.get("status", "passed")
        colour = {"passed": "bold green", "inconclusive": "bold yellow"}.get(status, "bold")
        console.print(
            f"  validation [{colour}]{status}[/]: max abs error {_fmt(val.get('max_abs_error'))}, "
            f"max rel error {_fmt(val.get('max_rel_error'))}",
            highlight=False,
        )
        if status != "passed" and val.get("reason"):
            console.print(f"  why        {escape(val['reason'])}", highlight=False)
