"""Accuracy of every deployed artifact on real labelled data: does the ONNX file / engine still classify like the
PyTorch model it came from?

For one model (with its weights) and one data set's test split, :func:`evaluate_model` runs the eager PyTorch
model in fp32 (the reference) and each artifact: ONNX fp32 and fp16 in ONNX Runtime (exported on the fly with
:func:`deploykit.export.export_module`, into a temporary or given folder, or given files) and TensorRT engines
when TensorRT and a CUDA GPU are usable (otherwise one skipped row saying why). Every artifact gets the same
metrics (:func:`deploykit.metrics.logit_metrics`):

* ``top1`` / ``top5``: accuracy against the labels (top-5 only with more than 5 classes);
* ``agreement``: the share of samples whose predicted class (argmax) equals eager PyTorch's: the figure that
  says whether a deployment changed the model's decisions;
* ``max_abs_error`` / ``mean_abs_error``: of the logits against eager's, over all samples and classes;
* ``cosine_mean`` / ``cosine_min``: cosine similarity of each sample's logit vector with eager's.

A sample whose output holds NaN or inf counts as wrong and as disagreeing. fp16 on ONNX Runtime's CPU provider:
the provider has fp16 kernels for almost no operator, so it inserts Casts and runs most nodes in fp32
(:func:`deploykit.backends.ort.fp16_coverage` counts them and the row says so): what the CPU measures is the
effect of fp16 weights, inputs and outputs, not of fp16 arithmetic.

>>> ev = evaluate_model("mnist1d-cnn", "mnist1d", weights="w.safetensors")   # doctest: +SKIP
>>> [(r.label, r.metrics.agreement) for r in ev.rows if r.metrics]        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploykit.data.base import LabelledData
from deploykit.errors import ArtifactError, BackendUnavailable, DeploykitError, InvalidInput, first_line
from deploykit.export.logits import (  # noqa: F401  (moved; re-exported)
    _eager_logits,
    _graph_batch,
    _graph_input,
    _onnx_graph,
    _run_onnx,
)
from deploykit.metrics import LogitMetrics, logit_metrics  # shared with the export's validation

__all__ = [
    "EVAL_SCHEMA",
    "PRECISIONS",
    "ArtifactResult",
    "Evaluation",
    "LogitMetrics",
    "evaluate_model",
    "evaluate_onnx",
    "logit_metrics",
]

EVAL_SCHEMA = "deploykit.evaluation"
EVAL_VERSION = 1
#: Precisions an artifact can be exported and evaluated in: ``int8`` is the Q/DQ graph statically quantized
#: with calibration on the data's train split (:mod:`deploykit.export.int8`); ``int8-dynamic`` is ONNX Runtime's
#: dynamic quantization (no calibration; for comparison, not a TensorRT graph).
PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
#: What :func:`evaluate_model` evaluates by default.
DEFAULT_PRECISIONS = ("fp32", "fp16")
_QUANTIZED = ("int8", "int8-dynamic")
DEFAULT_BATCH = 256


# --------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ArtifactResult:
    """One row: an artifact (eager model, ONNX file, engine), how it ran, and its metrics.

    ``status`` is ``"ok"``, ``"skipped"`` (the runtime is not usable here: ``reason`` says why) or
    ``"failed"`` (the artifact could not be made or run: ``reason`` says why). ``notes`` say what the numbers
    cover (e.g. which nodes of an fp16 graph the CPU provider ran in fp32).
    """

    label: str
    kind: str
    precision: str | None
    runtime: str
    status: str
    metrics: LogitMetrics | None = None
    path: str | None = None
    sha256: str | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()
    fp16_coverage: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArtifactResult:
        m = d.get("metrics")
        return cls(
            label=d["label"], kind=d["kind"], precision=d.get("precision"), runtime=d["runtime"],
            status=d["status"], metrics=LogitMetrics(**m) if m else None, path=d.get("path"),
            sha256=d.get("sha256"), reason=d.get("reason", ""), notes=tuple(d.get("notes", ())),
            fp16_coverage=d.get("fp16_coverage"),
        )


@dataclass(frozen=True)
class Evaluation:
    """The evaluation of one model (or ONNX file) on one data split: a row per artifact.

    ``reference`` describes the row the others are compared with (``None``: no reference). ``weights`` is the
    :class:`~deploykit.models.weights.WeightsRecord` of the model, as a dict (``None``: random weights).
    """

    model: str
    spec: dict[str, Any]
    weights: dict[str, Any] | None
    data: dict[str, Any]
    reference: str | None
    rows: tuple[ArtifactResult, ...]
    notes: tuple[str, ...] = ()
    environment: dict[str, Any] = field(default_factory=dict)

    def row(self, label: str) -> ArtifactResult:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": EVAL_SCHEMA,
            "schema_version": EVAL_VERSION,
            "model": self.model,
            "spec": self.spec,
            "weights": self.weights,
            "data": self.data,
            "reference": self.reference,
            "rows": [r.to_dict() for r in self.rows],
            "notes": list(self.notes),
            "environment": self.environment,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evaluation:
        if d.get("schema") != EVAL_SCHEMA or int(d.get("schema_version", 0)) > EVAL_VERSION:
            raise InvalidInput(f"not a deploykit evaluation (schema {d.get('schema')!r} v{d.get('schema_version')})")
        return cls(
            model=d["model"], spec=dict(d["spec"]), weights=d.get("weights"), data=dict(d["data"]),
            reference=d.get("reference"), rows=tuple(ArtifactResult.from_dict(r) for r in d["rows"]),
            notes=tuple(d.get("notes", ())), environment=dict(d.get("environment") or {}),
        )


# ------------------------------------------------------------------------------------------------ running
def _check_precisions(precisions: Sequence[str]) -> list[str]:
    out = [p.strip().lower() for p in precisions]
    bad = [p for p in out if p not in PRECISIONS]
    if bad or not out:
        raise InvalidInput(f"unknown precision {', '.join(bad) or '(none)'}; choose from {', '.join(PRECISIONS)}")
    return out


def _device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type not in ("cpu", "cuda"):
        raise InvalidInput(f"evaluate runs on cpu or cuda, not {dev}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda: no CUDA GPU is available here")
    return dev












def _ort_runtime(info: Mapping[str, Any]) -> str:
    provider = str(info.get("provider", "?")).replace("ExecutionProvider", "")
    return f"ONNX Runtime {info.get('onnxruntime', '?')} ({provider})"


def _fp16_notes(path: Path, device: torch.device) -> tuple[list[str], dict[str, Any] | None]:
    from deploykit.backends.ort import fp16_coverage

    try:
        cov = fp16_coverage(path, device)
    except DeploykitError as exc:
        return [f"fp16 node coverage unknown: {exc}"], None
    n, n16, n32 = cov["float_nodes"], cov["fp16_nodes"], cov["fp32_nodes"]
    if n32:
        ops = ", ".join(f"{k} x{v}" for k, v in cov["fp32_op_types"].items())
        return [
            f"{cov['provider']} ran {n32} of {n} float nodes in fp32 between inserted Casts ({ops}) and {n16} in "
            "fp16: this row measures fp16 weights, inputs and outputs, not fp16 arithmetic"
        ], cov
    return [f"{cov['provider']} ran all {n} float nodes in fp16"], cov


def _onnx_row(
    label: str, path: Path, precision: str | None, data: LabelledData, ref: torch.Tensor | None,
    device: torch.device, batch: int, sha256: str | None, keep_path: bool,
) -> ArtifactResult:
    try:
        logits, info = _run_onnx(path, data, device, batch)
    except DeploykitError as exc:
        return ArtifactResult(label, "onnx", precision, "ONNX Runtime", "failed", reason=str(exc),
                              path=os.fspath(path) if keep_path else None, sha256=sha256)
    notes: list[str] = []
    cov = None
    if precision == "fp16" or info.get("input_dtype") == "float16":
        notes, cov = _fp16_notes(path, device)
    return ArtifactResult(
        label, "onnx", precision, _ort_runtime(info), "ok", logit_metrics(logits, data.y, ref),
        path=os.fspath(path) if keep_path else None, sha256=sha256, notes=tuple(notes), fp16_coverage=cov,
    )


def _trt_rows(
    onnx_files: Mapping[str, tuple[Path, Any]], module: nn.Module, data: LabelledData, ref: torch.Tensor,
    out_dir: Path, batch: int, keep: bool,
) -> list[ArtifactResult]:
    """TensorRT engines built from the ONNX files, or one skipped row saying why they cannot be."""
    import copy

    from deploykit.backends.registry import get_backend

    reason = get_backend("trt").unavailable()
    if reason is not None:
        return [ArtifactResult("tensorrt", "tensorrt", None, "TensorRT", "skipped", reason=reason)]
    from deploykit.backends.tensorrt import TensorRTRunner
    from deploykit.export.tensorrt import build_engine

    rows = []
    for precision, (path, art) in onnx_files.items():
        label = f"tensorrt {precision}"
        try:
            engine = build_engine(
                art if art is not None else path, precision=precision, min_batch=1, opt_batch=batch,
                max_batch=batch, out_path=out_dir / f"{path.stem}.engine",
                reference_model=copy.deepcopy(module).float(), device="cuda",
            )
            outs = []
            runner = TensorRTRunner(engine.path, "cuda")
            runner.activate()
            try:
                for x, _ in data.batches(batch):
                    outs.append(runner.infer(runner.prepare_input(x.to(runner.device))).float().cpu())
                version = runner.info.get("tensorrt")
            finally:
                runner.deactivate()
            rows.append(ArtifactResult(
                label, "tensorrt", precision, f"TensorRT {version}", "ok",
                logit_metrics(torch.cat(outs), data.y, ref), path=os.fspath(engine.path) if keep else None,
            ))
        except BackendUnavailable as exc:
            rows.append(ArtifactResult(label, "tensorrt", precision, "TensorRT", "skipped", reason=str(exc)))
        except DeploykitError as exc:
            rows.append(ArtifactResult(label, "tensorrt", precision, "TensorRT", "failed", reason=str(exc)))
    return rows


def _quantized_rows(
    precisions: Sequence[str], module: nn.Module, spec: Any, data: Any, test: LabelledData, ref: torch.Tensor,
    made: dict[str, tuple[Path, Any]], out: Path, device: torch.device, batch: int, keep: bool,
    cache_dir: str | os.PathLike[str] | None,
) -> list[ArtifactResult]:
    """INT8 rows: the Q/DQ graph calibrated on the train split of ``data`` (``made["int8"]`` for TensorRT) and
    ONNX Runtime's dynamic quantization, both from the fp32 graph. Reported as measured: no accuracy gate here."""
    from deploykit.export import export_module
    from deploykit.export.int8 import (
        DEFAULT_CALIB_SAMPLES,
        calibration_splits,
        check_overlap,
        ort_int8_kernels,
        quantize_dynamic_onnx,
        quantize_onnx,
    )
    from deploykit.export.onnx import sha256_file

    rows: list[ArtifactResult] = []
    try:
        if "fp32" in made:
            fp32 = made["fp32"][0]
        else:
            fp32 = export_module(module, spec, out_dir=out, dynamic_batch=True, device=device, name=spec.name).path
    except DeploykitError as exc:
        return [ArtifactResult(f"onnx {p}", "onnx", p, "ONNX Runtime", "failed", reason=f"fp32 export: {first_line(exc, 400)}")
                for p in precisions]
    for precision in precisions:
        label = f"onnx {precision}"
        path = out / f"{fp32.stem}-{precision}.onnx"
        try:
            if precision == "int8":
                if isinstance(data, LabelledData):
                    rows.append(ArtifactResult(label, "onnx", precision, "ONNX Runtime", "skipped",
                                               reason="calibration needs the data set's train split (give its name or file)"))
                    continue
                calib, _ = calibration_splits(data, spec, cache_dir=cache_dir)
                overlap = check_overlap(calib, test)
                if overlap:  # e.g. a single-set file, evaluated whole: nothing held out to calibrate on
                    rows.append(ArtifactResult(
                        label, "onnx", precision, "ONNX Runtime", "skipped",
                        reason=f"the calibration split shares {overlap} of {len(test)} samples with the evaluated data: "
                               "give data with separate train and test splits"))
                    continue
                rec = quantize_onnx(fp32, path, calib, samples=DEFAULT_CALIB_SAMPLES)
                notes = [f"static Q/DQ, {rec['method']} calibration on {rec['samples']} samples of {calib.name} "
                         f"({rec['data']['split']}, sha256 {rec['data']['sha256'][:12]}), disjoint from the test split"]
                made["int8"] = (path, None)
            else:
                quantize_dynamic_onnx(fp32, path)
                notes = ["ONNX Runtime dynamic quantization: int8 weights, activations quantized per batch at run time "
                         "(no calibration; comparison only, TensorRT does not take this graph)"]
            kernels = ort_int8_kernels(path, device)
            notes.append(f"{kernels['device']} ran int8 kernels "
                         + (", ".join(f"{k} x{v}" for k, v in kernels["int8_kernels"].items()) or "none")
                         + "; float compute: "
                         + (", ".join(f"{k} x{v}" for k, v in kernels["float_compute_kernels"].items()) or "none"))
        except DeploykitError as exc:
            rows.append(ArtifactResult(label, "onnx", precision, "ONNX Runtime", "failed", reason=first_line(exc, 400)))
            continue
        row = _onnx_row(label, path, precision, test, ref, device, batch, sha256_file(path), keep)
        rows.append(ArtifactResult(**{**row.__dict__, "notes": (*row.notes, *notes)}))
    return rows


@contextlib.contextmanager
def _artifact_dir(given: str | os.PathLike[str] | None) -> Iterator[Path]:
    """``given`` (created), or a temporary folder removed afterwards."""
    if given is not None:
        path = Path(given)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot create {path}: {first_line(exc)}") from None
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="deploykit-eval-") as tmp:
        yield Path(tmp)


def _test_split(
    source: str | os.PathLike[str] | LabelledData, shape: Sequence[int], classes: int, name: str,
    cache_dir: str | os.PathLike[str] | None, limit: int | None,
) -> LabelledData:
    from deploykit.data import check_for_model, load_data

    if isinstance(source, LabelledData):
        data = source.subset(limit) if limit else source
        check_for_model(data, shape, classes, name)
        return data
    return load_data(source, shape, num_classes=classes, model_name=name, cache_dir=cache_dir, limit=limit).test


def evaluate_model(
    model: str | tuple[nn.Module, Any],
    data: str | os.PathLike[str] | LabelledData,
    *,
    weights: str | os.PathLike[str] | None = None,
    precisions: Sequence[str] = DEFAULT_PRECISIONS,
    onnx_files: Sequence[str | os.PathLike[str]] = (),
    onnx_dir: str | os.PathLike[str] | None = None,
    tensorrt: bool = True,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Evaluation:
    """Evaluate a model and its deployed artifacts on the test split of ``data``.

    Args:
        model: a registered name (or ``pkg.mod:Net``), or ``(module, spec)`` already built with its weights.
        data: ``"mnist1d"``, ``"digits"``, an ``.npz`` file, an image folder, or a :class:`LabelledData`.
        weights: the model's weights (a file or torchvision name; see :func:`~deploykit.models.create_model`).
            Without weights the model is randomly initialised (seed 0) and the evaluation says so.
        precisions: ONNX (and TensorRT) precisions to export and evaluate.
        onnx_files: evaluate these ONNX files instead of exporting (their precision is read from the input).
        onnx_dir: keep the exported ONNX files (and engines) in this folder (default: a temporary one).
        tensorrt: also build and evaluate TensorRT engines (a skipped row when TensorRT is not usable).
        device: ``"cpu"`` or ``"cuda"``: where eager PyTorch and ONNX Runtime run.
        batch_size: samples per inference call (dynamic-batch exports).
        limit: only the first ``limit`` test samples.
        cache_dir: where generated data is cached (MNIST-1D).

    Returns an :class:`Evaluation` with a row for eager fp32 (the reference) and one per artifact.
    """
    from deploykit._env import environment
    from deploykit.export import export_module
    from deploykit.models import create_model

    if batch_size < 1:
        raise InvalidInput(f"batch size must be at least 1, got {batch_size}")
    dev = _device(device)
    precs = _check_precisions(precisions)
    notes: list[str] = []
    if isinstance(model, tuple):
        module, spec = model
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            module, spec = create_model(model, device="cpu", weights=weights)
    if spec.weights is None:
        notes.append("random weights (no --weights): accuracy is chance level and says nothing about a deployment")
    test = _test_split(data, spec.input_shape, spec.num_classes, spec.name, cache_dir, limit)
    ref = _eager_logits(module, test, dev, batch_size)
    rows = [ArtifactResult(
        "eager fp32", "eager", "fp32", f"PyTorch {torch.__version__.split('+')[0]} eager ({dev.type})", "ok",
        logit_metrics(ref, test.y),
        notes=(("TF32 off",) if dev.type == "cuda" else ()),
    )]
    with _artifact_dir(onnx_dir) as out:
        made: dict[str, tuple[Path, Any]] = {}
        if onnx_files:
            for f in onnx_files:
                path = Path(f)
                if not path.is_file():
                    raise InvalidInput(f"ONNX file not found: {path}")
                from deploykit.export.onnx import sha256_file

                precision = "fp16" if _input_is_fp16(path) else "fp32"
                rows.append(_onnx_row(f"onnx {precision} ({path.name})", path, precision, test, ref, dev,
                                      batch_size, sha256_file(path), True))
                made.setdefault(precision, (path, None))
        else:
            for precision in [p for p in precs if p not in _QUANTIZED]:
                label = f"onnx {precision}"
                try:
                    art = export_module(module, spec, out_dir=out, precision=precision, dynamic_batch=True,
                                        device=dev, name=spec.name,
                                        model_info={"weights": spec.weights.to_dict() if spec.weights else None})
                except DeploykitError as exc:
                    rows.append(ArtifactResult(label, "onnx", precision, "ONNX Runtime", "failed",
                                               reason=f"export: {first_line(exc, 400)}"))
                    continue
                rows.append(_onnx_row(label, art.path, precision, test, ref, dev, batch_size,
                                      art.manifest["sha256"], onnx_dir is not None))
                made[precision] = (art.path, art)
            quantized = [p for p in precs if p in _QUANTIZED]
            if quantized:
                rows.extend(_quantized_rows(quantized, module, spec, data, test, ref, made, out, dev, batch_size,
                                            onnx_dir is not None, cache_dir))
        if tensorrt:
            rows.extend(_trt_rows(made, module, test, ref, out, batch_size, onnx_dir is not None))
    return Evaluation(
        model=spec.name,
        spec=spec.to_dict(),
        weights=spec.weights.to_dict() if spec.weights else None,
        data=test.to_dict(),
        reference=f"eager PyTorch fp32 on {dev}",
        rows=tuple(rows),
        notes=tuple(notes),
        environment=environment(str(dev)),
    )


def _input_is_fp16(path: Path) -> bool:
    import onnx

    return bool(_graph_input(path).type.tensor_type.elem_type == onnx.TensorProto.FLOAT16)


def evaluate_onnx(
    path: str | os.PathLike[str],
    data: str | os.PathLike[str] | LabelledData,
    *,
    weights: str | os.PathLike[str] | None = None,
    model: str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Evaluation:
    """Evaluate one ONNX file on the test split of ``data``.

    With ``weights`` the file is compared with eager PyTorch: the model is ``model`` or, for a deploykit export,
    the one named in its manifest (with the manifest's input shape and classes), built with those weights.
    Without ``weights`` only accuracy is reported (there is nothing to agree with).
    """
    from deploykit._env import environment
    from deploykit.export.onnx import manifest_path_for, sha256_file

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"ONNX file not found: {p}")
    dev = _device(device)
    manifest: dict[str, Any] = {}
    mpath = manifest_path_for(p)
    if mpath.is_file():
        from deploykit.export.onnx import load_onnx_artifact

        manifest = load_onnx_artifact(p).manifest  # checks the file against its manifest (sha256)
    mspec = (manifest.get("model") or {}).get("spec") or {}
    name = model or (manifest.get("model") or {}).get("name")
    if weights is not None and name is None:
        raise InvalidInput(f"{p} has no deploykit manifest naming its model: give the model (--model) with --weights")
    if weights is not None:
        from deploykit.models import create_model, get_model_spec

        over: dict[str, Any] = {}
        if mspec and ":" not in str(name):
            base = get_model_spec(str(name))
            if tuple(mspec["input_shape"]) != base.input_shape:
                over["input_shape"] = mspec["input_shape"]
            if int(mspec["num_classes"]) != base.num_classes:
                over["num_classes"] = int(mspec["num_classes"])
        elif ":" in str(name) and mspec:
            over = {"input_shape": mspec["input_shape"], "num_classes": mspec["num_classes"]}
        module, spec = create_model(str(name), device="cpu", weights=weights, **over)
        ev = evaluate_model((module, spec), data, onnx_files=[p], tensorrt=False, device=dev,
                            batch_size=batch_size, limit=limit, cache_dir=cache_dir)
        return ev
    shape, classes = _onnx_io(p)
    label = str(name or p.name)
    test = _test_split(data, shape, classes, label, cache_dir, limit)
    precision = "fp16" if _input_is_fp16(p) else "fp32"
    row = _onnx_row(f"onnx {precision} ({p.name})", p, precision, test, None, dev, batch_size, sha256_file(p), True)
    return Evaluation(
        model=label,
        spec=dict(mspec) or {"input_shape": list(shape), "num_classes": classes},
        weights=None,
        data=test.to_dict(),
        reference=None,
        rows=(row,),
        notes=("no eager reference: give the model's --weights to compare the file with eager PyTorch",),
        environment=environment(str(dev)),
    )


def _onnx_io(path: Path) -> tuple[tuple[int, ...], int]:
    """(per-sample input shape, number of classes) read from an ONNX file's declared shapes."""
    graph = _onnx_graph(path)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in _graph_input(path).type.tensor_type.shape.dim]
    out = [d.dim_value if d.HasField("dim_value") else None for d in graph.output[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d is None for d in dims[1:]) or not out or out[-1] is None:
        raise InvalidInput(f"{path}: the per-sample input shape or the number of classes is not declared in the graph")
    return tuple(int(d) for d in dims[1:] if d is not None), int(out[-1])
