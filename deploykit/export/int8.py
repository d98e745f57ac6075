"""INT8 post-training quantization from real calibration data: a validated fp32 ONNX -> one Q/DQ ONNX that ONNX
Runtime runs on the CPU and on CUDA and TensorRT 10 / 11 builds as a strongly typed INT8 engine.

Steps (:func:`quantize_artifact`):

1. **Pre-processing** with ``onnxruntime.quantization.shape_inference.quant_pre_process`` (symbolic shape
   inference, ONNX Runtime's graph optimisation, ONNX shape inference), as ONNX Runtime's quantization docs
   recommend before ``quantize_static``. A model it cannot process is quantized without it (recorded).
2. **Static quantization**, ``quantize_static`` in QDQ format (QuantizeLinear / DequantizeLinear pairs around each
   quantized operator), with the settings TensorRT's explicit quantization accepts:

   * weights int8, **per channel, symmetric** (zero point 0, range -127..127);
   * activations int8, **per tensor, symmetric** (zero point 0): TensorRT supports only symmetric quantization
     with a zero point of 0 (TensorRT developer guide, "Explicit Quantization"), and ONNX Runtime's
     ``quantize_static`` docstring (1.32): "If model is targeted to GPU/TRT, symmetric activation and weight are
     required";
   * biases stay fp32 (``QuantizeBias=False``): ONNX Runtime would otherwise store them as int32 behind a
     DequantizeLinear, which TensorRT's ONNX parser does not take (it fuses an fp32 bias into the int8
     convolution itself); NVIDIA ModelOpt's ONNX INT8 quantizer sets the same option for TensorRT.

   The same graph runs in ONNX Runtime on the CPU, where this module validates and measures it.
3. **Calibration** by a :class:`DataCalibrationReader` over real inputs: the **train** split of a
   :mod:`deploykit.data` data set (at most ``samples`` of them; default :data:`DEFAULT_CALIB_SAMPLES`), with the
   method ``minmax``, ``entropy`` or ``percentile`` (99.999th). deploykit never calibrates on random data: there
   is no code path that makes calibration inputs up.
4. **Validation on held-out data**: the **test** split, which must not overlap the calibration samples (checked
   sample by sample, refused unless ``allow_overlap``). The INT8 model's logits are compared with eager PyTorch
   fp32 with :func:`deploykit.metrics.logit_metrics` (top-1, top-1 agreement, logit errors, cosine) and the
   accuracy drop (fp32 top-1 minus INT8 top-1, in percentage points) is gated by ``max_accuracy_drop``
   (default :data:`DEFAULT_MAX_ACCURACY_DROP` point). A model that misses it is kept as ``<stem>.failed.onnx``
   and :class:`ValidationError` (exit 1) says the measured drop. With random weights (no trained model) the
   accuracy is at chance level and cannot show a quantization loss: the verdict is ``inconclusive``.

The manifest (``<file>.onnx.json``, the ONNX manifest schema with ``precision: "int8"``) adds ``quantization``:
tool and settings, calibration (method, samples, batch, the data's name / split / sha256), the evaluation data,
which Conv / Gemm / MatMul nodes were quantized and which stayed float (and why), Q/DQ node counts, the zero-point
check; and ``source``: the fp32 ONNX file it was made from.

>>> calib, test = calibration_splits("mnist1d", spec)                              # doctest: +SKIP
>>> res = quantize_artifact(fp32_art, module, calib, test, Int8Options(method="entropy"))  # doctest: +SKIP
>>> res.artifact.path, res.accuracy_drop_points                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deploykit.backends.ort import import_onnxruntime
from deploykit.data.base import DataSplits, LabelledData, check_for_model
from deploykit.errors import ExportError, InvalidInput, first_line
from deploykit.export.int8_graph import QUANTIZABLE_OPS as QUANTIZABLE_OPS
from deploykit.export.int8_graph import ort_int8_kernels as ort_int8_kernels
from deploykit.export.int8_graph import qdq_summary as qdq_summary

import_onnxruntime()  # after torch, with CUDA libraries preloaded where there are any
from onnxruntime.quantization import CalibrationDataReader  # noqa: E402

__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_CALIB_SAMPLES",
    "DEFAULT_MAX_ACCURACY_DROP",
    "QUANTIZABLE_OPS",
    "DataCalibrationReader",
    "Int8Options",
    "Int8Result",
    "calibration_splits",
    "check_overlap",
    "ort_int8_kernels",
    "qdq_summary",
    "quantize_artifact",
    "quantize_dynamic_onnx",
    "quantize_onnx",
]

#: Calibration methods by the name deploykit takes -> ``onnxruntime.quantization.CalibrationMethod`` member.
CALIBRATION_METHODS: dict[str, str] = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
#: Calibration samples used by default (the issue's target: at most 1,000 from the train split).
DEFAULT_CALIB_SAMPLES = 512
#: Largest accepted accuracy drop of INT8 against fp32, in percentage points of top-1 on the test split.
DEFAULT_MAX_ACCURACY_DROP = 1.0
#: Calibration batch for a dynamic-batch graph.
CALIB_BATCH = 32
#: Calibration samples held in memory at once (ONNX Runtime keeps every intermediate tensor of a collect call).
_SAMPLES_PER_COLLECT = 32
#: Settings of ``quantize_static`` that make the graph TensorRT-compatible (see the module docstring).
TRT_EXTRA_OPTIONS: dict[str, Any] = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}


@dataclass(frozen=True)
class Int8Options:
    """How to quantize and what to accept.

    Attributes:
        method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        samples: calibration samples taken from the start of the train split (all of it when smaller).
        max_accuracy_drop: largest accepted (fp32 top-1 - INT8 top-1) on the test split, in percentage points.
        batch_size: calibration batch for a dynamic-batch graph (a fixed-batch graph uses its own batch).
        allow_overlap: calibrate even when calibration samples also appear in the evaluation data (forced).
    """

    method: str = "minmax"
    samples: int = DEFAULT_CALIB_SAMPLES
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    batch_size: int = CALIB_BATCH
    allow_overlap: bool = False

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise InvalidInput(
                f"unknown calibration method {self.method!r}; choose from {', '.join(CALIBRATION_METHODS)}"
            )
        if self.samples < 1:
            raise InvalidInput(f"calibration needs at least one sample, got --calib-samples {self.samples}")
        if not (self.max_accuracy_drop >= 0) or self.max_accuracy_drop > 100:
            raise InvalidInput(
                f"--max-accuracy-drop is a tolerance in percentage points (0-100), got {self.max_accuracy_drop}"
            )
        if self.batch_size < 1:
            raise InvalidInput(f"calibration batch size must be positive, got {self.batch_size}")


@dataclass(frozen=True)
class Int8Result:
    """A quantized model that passed (or could not be judged): its artifact and the measured figures."""

    artifact: Any  # OnnxArtifact
    verdict: str  # "passed" | "inconclusive"
    fp32_top1: float
    int8_top1: float
    accuracy_drop_points: float
    agreement: float
    calibration: dict[str, Any]
    summary: dict[str, Any]


# ------------------------------------------------------------------------------------------------ data
def _row_digests(x: torch.Tensor) -> list[bytes]:
    a = x.detach().to(torch.float32).contiguous().reshape(x.shape[0], -1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in a]


def check_overlap(calibration: LabelledData, evaluation: LabelledData) -> int:
    """Number of evaluation samples whose input also appears (bit for bit) among the calibration inputs."""
    seen = set(_row_digests(calibration.x))
    return sum(d in seen for d in _row_digests(evaluation.x))


def calibration_splits(
    source: str | os.PathLike[str] | DataSplits,
    spec: Any,
    *,
    evaluation: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[LabelledData, LabelledData]:
    """``(calibration, evaluation)`` for a model: the train split of ``source`` and the test split of
    ``evaluation`` (default: of ``source``). A data set without splits (a single-set ``.npz`` or image folder)
    is split 80/20, stratified and seeded, as training splits it. Raises :class:`InvalidInput` (one line) for
    data the model cannot take."""
    from deploykit.data import load_data

    def load(src: Any) -> DataSplits:
        if isinstance(src, DataSplits):
            return src
        return load_data(src, spec.input_shape, num_classes=spec.num_classes, model_name=spec.name,
                         cache_dir=cache_dir)

    splits = load(source)
    train, test = splits.for_training()
    if evaluation is not None and (isinstance(source, DataSplits) or os.fspath(evaluation) != os.fspath(source)):
        ev = load(evaluation)
        test = ev.test if ev.train is not None else ev.for_training()[1]
    for part in (train, test):
        check_for_model(part, spec.input_shape, spec.num_classes, spec.name)
    return train, test


class DataCalibrationReader(CalibrationDataReader):
    """An ``onnxruntime.quantization.CalibrationDataReader`` over real inputs: ``x`` cut into batches of
    ``batch_size``; a last partial batch is dropped (``samples`` says how many are used).

    ``len()`` and ``set_range`` let ONNX Runtime collect in strides (``CalibStridedMinMax``), so only a stride's
    intermediate tensors are held in memory at once.
    """

    def __init__(self, x: torch.Tensor, input_name: str, batch_size: int) -> None:
        arr = x.detach().to(torch.float32).contiguous().numpy()
        n = arr.shape[0] - arr.shape[0] % batch_size
        if n <= 0:
            raise InvalidInput(
                f"{arr.shape[0]} calibration samples are fewer than one batch of the graph ({batch_size})"
            )
        self._batches = [arr[i : i + batch_size] for i in range(0, n, batch_size)]
        self.samples = n
        self.input_name = input_name
        self._start, self._end, self._i = 0, len(self._batches), 0

    def __len__(self) -> int:
        return len(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self._end:
            return None
        batch = self._batches[self._i]
        self._i += 1
        return {self.input_name: batch}

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end, self._i = start_index, min(end_index, len(self._batches)), start_index

    def rewind(self) -> None:
        self._i = self._start

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while (item := self.get_next()) is not None:
            yield item


# ------------------------------------------------------------------------------------------------ graph
def _graph_io(path: Path) -> tuple[str, int | None]:
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise InvalidInput(f"{path}: INT8 calibration supports single-input graphs, this one has {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    fixed = int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise InvalidInput(f"{path}: INT8 quantization starts from an fp32 graph (float32 input)")
    return inputs[0].name, fixed


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """ONNX Runtime's quantizer prints progress to stdout and logs warnings; only the CLI prints."""
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(buf):
            yield buf
    finally:
        root.setLevel(level)


def _even_batch(n: int, limit: int) -> int:
    """A batch of at most ``limit`` that divides ``n`` (so that no sample is dropped), or ``limit`` when the
    only such divisors are small (then fewer than ``limit`` samples are dropped)."""
    d = _largest_divisor_at_most(n, limit)
    return d if d * 4 >= min(n, limit) else min(n, limit)


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def quantize_onnx(
    fp32_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    calibration: LabelledData,
    *,
    method: str = "minmax",
    samples: int = DEFAULT_CALIB_SAMPLES,
    batch_size: int = CALIB_BATCH,
) -> dict[str, Any]:
    """Pre-process and statically quantize ``fp32_path`` into the Q/DQ graph ``out_path`` (see the module
    docstring for the settings), calibrated on the first ``samples`` inputs of ``calibration``.

    Returns the calibration record (method, samples used, batch, data identity, pre-processing, settings).
    """
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    options = Int8Options(method=method, samples=samples, batch_size=batch_size)
    src = Path(fp32_path)
    input_name, fixed = _graph_io(src)
    calib = calibration.subset(options.samples) if options.samples < len(calibration) else calibration
    batch = fixed or _even_batch(len(calib), options.batch_size)
    # Equal batches only: ONNX Runtime's histogram collector cannot merge batches of different sizes.
    reader = DataCalibrationReader(calib.x, input_name, batch)
    stride = _largest_divisor_at_most(len(reader), max(1, _SAMPLES_PER_COLLECT // batch))
    with tempfile.TemporaryDirectory(prefix="deploykit-int8-") as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        preprocess: dict[str, Any] = {"tool": "onnxruntime.quantization.shape_inference.quant_pre_process"}
        t0 = time.perf_counter()
        try:
            with _quiet():
                quant_pre_process(os.fspath(src), os.fspath(pre))
            model_in = pre
            preprocess["status"] = "done"
        except Exception as exc:  # symbolic shape inference fails on some graphs: quantize without it
            model_in = src
            preprocess.update(status="failed", reason=first_line(exc))
        extra = {**TRT_EXTRA_OPTIONS, "CalibStridedMinMax": stride}
        try:
            with _quiet():
                quantize_static(
                    os.fspath(model_in),
                    os.fspath(out_path),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    reduce_range=False,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[options.method]),
                    extra_options=extra,
                )
        except (InvalidInput, ExportError):
            raise
        except Exception as exc:
            raise ExportError(f"ONNX Runtime could not quantize {src.name}: {first_line(exc)}") from None
        seconds = time.perf_counter() - t0
    return {
        "tool": f"onnxruntime.quantization.quantize_static (onnxruntime {onnxruntime.__version__})",
        "format": "QDQ",
        "weights": "int8, per channel, symmetric (zero point 0)",
        "activations": "int8, per tensor, symmetric (zero point 0)",
        "bias": "float32 (not quantized: TensorRT takes no int32 DequantizeLinear and fuses the bias itself)",
        "extra_options": {k: v for k, v in extra.items()},
        "preprocess": preprocess,
        "method": options.method,
        "samples": reader.samples,
        "samples_requested": options.samples,
        "batch": batch,
        "data": _data_record(calib, reader.samples),
        "seconds": round(seconds, 3),
    }


def _data_record(data: LabelledData, used: int) -> dict[str, Any]:
    used_data = data.subset(used) if used < len(data) else data
    return {
        "name": data.name,
        "split": used_data.split,
        "samples": used,
        "sha256": used_data.sha256,
        "preprocessing": data.preprocessing,
        "source": data.source,
    }


def quantize_dynamic_onnx(fp32_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> dict[str, Any]:
    """ONNX Runtime's dynamic quantization (for comparison only): int8 weights, activations quantized at run time
    from each batch's own range (``DynamicQuantizeLinear``, no calibration data). TensorRT does not take this
    graph (no DynamicQuantizeLinear in its ONNX parser); it is an ONNX Runtime CPU figure."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            quantize_dynamic(os.fspath(fp32_path), os.fspath(out_path), weight_type=QuantType.QInt8,
                             per_channel=False)
    except Exception as exc:
        raise ExportError(f"ONNX Runtime could not quantize {Path(fp32_path).name} dynamically: {first_line(exc)}") from None
    return {"tool": "onnxruntime.quantization.quantize_dynamic", "weights": "int8 per tensor",
            "activations": "quantized per batch at run time (no calibration)"}


# ------------------------------------------------------------------------------------------------ the export
def _logits(path: Path, data: LabelledData, device: torch.device, batch: int) -> torch.Tensor:
    from deploykit.export.logits import _run_onnx

    return _run_onnx(path, data, device, batch)[0]


def _check_calibration_data(calibration: Any, evaluation: Any, opts: Int8Options) -> int:
    """Refuse random inputs and calibration data that is (or overlaps) the evaluation data, unless forced;
    return the number of shared samples."""
    if not isinstance(calibration, LabelledData) or not isinstance(evaluation, LabelledData):
        raise InvalidInput("INT8 calibration needs real labelled data (a deploykit.data split), never random inputs")
    overlap = check_overlap(calibration, evaluation)
    same = calibration.sha256 == evaluation.sha256
    if (same or overlap) and not opts.allow_overlap:
        what = "is the evaluation data" if same else f"shares {overlap} of {len(evaluation)} samples with the evaluation data"
        raise InvalidInput(
            f"the calibration data ({calibration.name} {calibration.split}) {what} ({evaluation.name} "
            f"{evaluation.split}): calibrate on the train split and evaluate on the test split "
            "(or force it with --allow-calib-overlap)"
        )
    return overlap


def _quantize_checked(
    fp32_path: Path, tmp: Path, calibration: LabelledData, opts: Int8Options
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quantize ``fp32_path`` into ``tmp`` and check the result with ``onnx.checker`` and for quantized
    nodes; return the calibration record and the Q/DQ summary."""
    import onnx

    calib_rec = quantize_onnx(fp32_path, tmp, calibration, method=opts.method, samples=opts.samples,
                              batch_size=opts.batch_size)
    try:
        onnx.checker.check_model(os.fspath(tmp), full_check=True)
    except Exception as exc:
        raise ExportError(f"the quantized graph fails onnx.checker: {first_line(exc)}") from None
    summary = qdq_summary(tmp)
    if not summary["quantized_nodes"]:
        raise ExportError(f"ONNX Runtime quantized no Conv/Gemm/MatMul node of {fp32_path.name}")
    return calib_rec, summary


def _validate_int8(
    tmp: Path,
    fp32_path: Path,
    module: nn.Module,
    calibration: LabelledData,
    evaluation: LabelledData,
    opts: Int8Options,
    calib_rec: dict[str, Any],
    *,
    overlap: int,
    dev: torch.device,
    trained: bool,
    eval_batch: int,
) -> tuple[dict[str, Any], Any, Any]:
    """Validation on held-out data against eager fp32: the manifest's ``validation`` record, the eager fp32
    metrics and the INT8 graph's."""
    from deploykit.export.logits import _eager_logits
    from deploykit.metrics import logit_metrics

    ref_module = module if dev.type == "cpu" else copy.deepcopy(module).to(dev)
    ref = _eager_logits(ref_module, evaluation, dev, eval_batch)
    fp32_metrics = logit_metrics(ref, evaluation.y)
    onnx32 = logit_metrics(_logits(fp32_path, evaluation, dev, eval_batch), evaluation.y, ref)
    int8 = logit_metrics(_logits(tmp, evaluation, dev, eval_batch), evaluation.y, ref)
    drop = (fp32_metrics.top1 - int8.top1) * 100.0
    passed = drop <= opts.max_accuracy_drop + 1e-9
    verdict = "failed" if not passed else "passed" if trained else "inconclusive"
    validation = {
        "status": verdict,
        "passed": passed if trained else None,
        "reference": f"eager PyTorch fp32 on {dev}",
        "data": evaluation.to_dict(),
        "fp32_top1": fp32_metrics.top1,
        "onnx_fp32": asdict(onnx32),
        "int8": asdict(int8),
        "accuracy_drop_points": drop,
        "max_accuracy_drop_points": opts.max_accuracy_drop,
        "resolution_points": 100.0 / len(evaluation),
        "calibration_eval_overlap_samples": overlap,
        "device": str(dev),
        "validated": (
            f"top-1 of INT8 vs eager fp32 on {len(evaluation)} held-out samples ({evaluation.name} "
            f"{evaluation.split}), disjoint from the {calib_rec['samples']} calibration samples "
            f"({calibration.name} {calib_rec['data']['split']})"
            if not overlap else f"calibration and evaluation share {overlap} samples (forced)"
        ),
        "not_validated": (
            ["random weights: accuracy is at chance level and cannot show a quantization loss"] if not trained else []
        ) + ([] if dev.type == "cuda" else ["ONNX Runtime CUDA and TensorRT runs of the INT8 graph (CPU here)"]),
    }
    return validation, fp32_metrics, int8


def _int8_manifest(
    m: Mapping[str, Any],
    fp32_path: Path,
    final: Path,
    tmp: Path,
    calib_rec: dict[str, Any],
    evaluation: LabelledData,
    summary: dict[str, Any],
    validation: dict[str, Any],
) -> dict[str, Any]:
    """The INT8 graph's manifest: the fp32 manifest's facts with the INT8 file, its source, the quantization
    and the validation."""
    from datetime import datetime, timezone

    from deploykit.export.onnx import sha256_file

    digest, size = sha256_file(tmp), tmp.stat().st_size
    manifest = {
        **{k: v for k, v in m.items() if k not in ("validation", "fp16_coverage")},
        "file": final.name,
        "sha256": digest,
        "bytes": size,
        "precision": "int8",
        "io_dtype": "float32",
        "source": {"file": fp32_path.name, "sha256": m["sha256"], "bytes": m["bytes"]},
        "quantization": {**calib_rec, "evaluation_data": _data_record(evaluation, len(evaluation)),
                         "ops": summary},
        "validation": validation,
    }
    manifest["created_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return manifest


def quantize_artifact(
    fp32: Any,
    module: nn.Module,
    calibration: LabelledData,
    evaluation: LabelledData,
    options: Int8Options | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    trained: bool = True,
    eval_batch: int = 256,
) -> Int8Result:
    """Quantize a validated fp32 :class:`~deploykit.export.onnx.OnnxArtifact` to INT8, validate it on
    ``evaluation`` against eager ``module`` and write ``<stem>-int8.onnx`` + manifest (atomically).

    Args:
        fp32: the fp32 ONNX artifact (from :func:`~deploykit.export.export_module`) of ``module``.
        module: the eager model with its weights: the fp32 reference.
        calibration: real calibration inputs (a train split); labels are not used by calibration.
        evaluation: held-out labelled data (a test split) that must not share samples with ``calibration``.
        options: :class:`Int8Options`.
        out_dir: where to write (default: next to the fp32 file).
        device: where eager PyTorch and ONNX Runtime run for the validation (``"cpu"`` or ``"cuda"``).
        trained: ``False`` for randomly initialised weights: the verdict is then ``inconclusive``.
        eval_batch: samples per inference call in the validation.

    Raises :class:`InvalidInput` when the calibration data is the evaluation data (or overlaps it) unless
    ``options.allow_overlap``; :class:`ValidationError` (exit 1; the graph kept as ``<stem>.failed.onnx``) when
    the accuracy drop exceeds ``options.max_accuracy_drop``; :class:`ExportError` when ONNX Runtime cannot
    quantize the graph.
    """
    from deploykit._io import make_temporary
    from deploykit.export.onnx import OnnxArtifact, artifact_stem, manifest_path_for, publish_graph

    opts = options or Int8Options()
    dev = torch.device(device)
    overlap = _check_calibration_data(calibration, evaluation, opts)
    m = fp32.manifest
    batch = m["batch"]
    stem = artifact_stem(m["model"]["name"], "int8", batch.get("size") or 1, bool(batch.get("dynamic")))
    out = Path(out_dir) if out_dir is not None else fp32.path.parent
    out.mkdir(parents=True, exist_ok=True)
    final, failed = out / f"{stem}.onnx", out / f"{stem}.failed.onnx"

    tmp = make_temporary(final, ".onnx")
    try:
        calib_rec, summary = _quantize_checked(fp32.path, tmp, calibration, opts)
        validation, fp32_metrics, int8 = _validate_int8(
            tmp, fp32.path, module, calibration, evaluation, opts, calib_rec,
            overlap=overlap, dev=dev, trained=trained, eval_batch=eval_batch,
        )
        verdict, drop = validation["status"], validation["accuracy_drop_points"]
        manifest = _int8_manifest(m, fp32.path, final, tmp, calib_rec, evaluation, summary, validation)
        failure = None
        if verdict == "failed":
            # labelled data gave the drop, so these are set
            assert fp32_metrics.top1 is not None and int8.top1 is not None and int8.agreement is not None
            failure = (
                f"INT8 accuracy drop {drop:.2f} points > allowed {opts.max_accuracy_drop:g} (fp32 top-1 "
                f"{fp32_metrics.top1 * 100:.2f}%, INT8 {int8.top1 * 100:.2f}%, agreement {int8.agreement * 100:.2f}%, "
                f"{calib_rec['method']} on {calib_rec['samples']} samples); {final} was not written, the graph is "
                f"kept as {failed}"
            )
        publish_graph(tmp, final, failed, manifest, failure=failure)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)

    return Int8Result(
        artifact=OnnxArtifact(final, manifest_path_for(final), manifest),
        verdict=verdict,
        fp32_top1=fp32_metrics.top1,
        int8_top1=int8.top1,
        accuracy_drop_points=drop,
        agreement=float(int8.agreement or 0.0),
        calibration=calib_rec,
        summary=summary,
    )


def calibration_record(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The calibration part of an INT8 manifest (method, samples, data), for reports."""
    q = manifest.get("quantization") or {}
    return {k: q.get(k) for k in ("method", "samples", "batch", "data")}
