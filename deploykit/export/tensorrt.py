"""TensorRT engines built from a validated ONNX file (TensorRT 10.x and 11.x Python API).

``tensorrt`` is imported lazily: importing this module never needs it (nor torch).

How a precision is built, per TensorRT version (:func:`select_precision_plan`, a pure function):

========  ==========================  ==========================================================================
asked     ONNX graph                  what is built
========  ==========================  ==========================================================================
fp32      fp32                        strongly typed network, no precision flag, TF32 cleared (true fp32)
fp16      fp16 (``export --fp16``)    strongly typed network, no flag: the graph's dtypes decide (10.x and 11.x)
fp16      fp32                        10.0-10.11 only: weakly typed network + ``BuilderFlag.FP16`` (the legacy
                                      route, recorded as ``weak-typing``); refused on 10.12+ (deprecated) and
                                      11.x (the flag is gone): export an fp16 ONNX instead
bf16      bf16 / fp32                 as fp16, with ``BuilderFlag.BF16`` on the legacy route
int8      Q/DQ ONNX                   strongly typed network, no flag: scales come from the graph (10.x, 11.x)
int8      fp32 + calibration data     10.x only: weakly typed + ``BuilderFlag.INT8`` + ``IInt8EntropyCalibrator2``
                                      fed with the user's real samples; refused on 11.x (implicit INT8 removed)
int8      no Q/DQ, no data            refused: deploykit never calibrates on random data
========  ==========================  ==========================================================================

After every build the engine inspector (``ProfilingVerbosity.DETAILED``) must show layers in the precision that
was asked for; an fp16 request that produced an all-fp32 engine fails the build (the "silent fp32" bug). The
engine is then validated against an eager PyTorch reference (or ONNX Runtime on the source ONNX when no module
is given) with per-precision tolerances, and only then written, atomically, with its manifest.

API versions: each TensorRT call below carries a comment naming the versions that have it and where it was
checked. Nothing in this module has run against a real TensorRT: this workplace cannot install it.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import importlib.util
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploykit._io import atomic_path, atomic_write_bytes, atomic_write_json
from deploykit.errors import (
    ArtifactError,
    BackendUnavailable,
    DeploykitError,
    ExportError,
    InvalidInput,
    ShapeError,
    ValidationError,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

INSTALL_HINT = "pip install 'deploykit[tensorrt]'"

#: Precisions ``build_engine`` accepts.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
#: Oldest TensorRT this module is written for (the name-based tensor API, ``execute_async_v3``).
MIN_TENSORRT = (10, 0)
#: Weak typing (precision builder flags) is deprecated from here on (TensorRT 10.12 release notes; the
#: migration guide's "Strongly Typed Networks Are Now Required"), removed in 11.0.
WEAK_TYPING_DEPRECATED = (10, 12)
#: Default optimization-profile batch sizes for a dynamic-batch ONNX when none are given.
DEFAULT_MIN_BATCH = 1
DEFAULT_OPT_BATCH = 8
DEFAULT_MAX_BATCH = 32
#: ``IBuilderConfig.builder_optimization_level`` range (0-5, default 3; TensorRT 8.6+ and 11.x).
OPT_LEVELS = range(0, 6)

MANIFEST_SCHEMA = "deploykit.tensorrt-engine"
MANIFEST_VERSION = 1
ENGINE_SUFFIX = ".engine"

#: Layer types that only move data; they do not count when checking which precision the engine computes in.
_DATA_MOVEMENT_LAYERS = frozenset({"Reformat", "NoOp", "Shuffle", "Constant", "Cast"})


def tensorrt_status() -> str | None:
    """``None`` when TensorRT and a CUDA GPU are usable here, else a one-line reason saying what is missing."""
    if importlib.util.find_spec("tensorrt") is None:
        return f"TensorRT is not installed ({INSTALL_HINT})"
    import torch

    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA GPU and none is available"
    return None


def import_tensorrt() -> Any:
    """``import tensorrt``, or :class:`BackendUnavailable` naming the install command."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(f"TensorRT is not installed ({INSTALL_HINT})") from None
    except OSError as exc:  # the wheel is there but libnvinfer cannot be loaded
        raise BackendUnavailable(f"TensorRT is installed but cannot be loaded: {exc}") from None
    return trt


def parse_trt_version(text: str) -> tuple[int, int, int]:
    """``"10.13.0.35"`` -> ``(10, 13, 0)``. The branches of this module gate on these numbers, never on
    ``hasattr`` (``trt.__version__`` exists in every TensorRT Python package)."""
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if not m:
        raise InvalidInput(f"cannot read a TensorRT version from {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


# ------------------------------------------------------------------------------------------------ ONNX facts
_ONNX_DTYPES = {
    "FLOAT": "float32",
    "FLOAT16": "float16",
    "BFLOAT16": "bfloat16",
    "DOUBLE": "float64",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FLOAT8E4M3FN": "float8_e4m3fn",
}
_FLOAT_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, dims (``int`` or a symbolic name for a dynamic dim), dtype name."""

    name: str
    dims: tuple[int | str, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dims": list(self.dims), "dtype": self.dtype}


@dataclass(frozen=True)
class OnnxInfo:
    """What ``build_engine`` needs to know about the source ONNX file, read with ``onnx`` (no TensorRT).

    ``precision`` is the dtype that holds most of the float weights (``"fp32"``, ``"fp16"``, ``"bf16"``);
    ``has_qdq`` says whether the graph is explicitly quantized (QuantizeLinear/DequantizeLinear nodes).
    ``model`` is the registered model name from the ONNX manifest, when there is one.
    """

    path: Path
    sha256: str
    external_data: tuple[tuple[str, str], ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    precision: str
    has_qdq: bool
    model: str | None = None
    manifest: dict[str, Any] | None = field(default=None, compare=False)
    manifest_path: Path | None = None

    @property
    def graph_tag(self) -> str:
        """``"int8"`` for a Q/DQ graph, else its float precision: what an engine built as-is computes in."""
        return "int8" if self.has_qdq else self.precision


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dims_of(value_info: Any) -> tuple[int | str, ...]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return tuple(dims)


def _dtype_name(elem_type: int) -> str:
    import onnx

    name = onnx.TensorProto.DataType.Name(elem_type)
    return _ONNX_DTYPES.get(name, name.lower())


def _onnx_artifact_parts(onnx_like: Any) -> tuple[Path, dict[str, Any] | None, Path | None]:
    """Accept an ``OnnxArtifact`` (``path``, ``manifest_path``, ``manifest``) or a path to a ``.onnx`` file."""
    if hasattr(onnx_like, "path"):
        path = Path(onnx_like.path)
        manifest = getattr(onnx_like, "manifest", None)
        mpath = getattr(onnx_like, "manifest_path", None)
        return path, (dict(manifest) if manifest else None), (Path(mpath) if mpath else None)
    if not isinstance(onnx_like, (str, os.PathLike)):
        raise InvalidInput(f"expected an OnnxArtifact or a path to a .onnx file, got {type(onnx_like).__name__}")
    path = Path(onnx_like)
    # The ONNX exporter (deploykit.export.onnx, written concurrently) reads its own manifest; use it when present.
    try:
        from deploykit.export.onnx import load_onnx_artifact
    except ImportError:
        return path, None, None
    try:
        art = load_onnx_artifact(path)
    except (DeploykitError, OSError, ValueError, KeyError):
        return path, None, None  # a bare ONNX file without a deploykit manifest is fine
    return Path(art.path), dict(art.manifest), Path(art.manifest_path)


def inspect_onnx(onnx_like: Any) -> OnnxInfo:
    """Read the graph inputs/outputs, weight precision and Q/DQ presence of an ONNX file (or ``OnnxArtifact``).

    Only the graph is loaded (external weights are hashed, not read into memory). A missing or unreadable file
    raises :class:`ArtifactError`.
    """
    import onnx

    path, manifest, manifest_path = _onnx_artifact_parts(onnx_like)
    if not path.is_file():
        raise ArtifactError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for a corrupt file
        raise ArtifactError(f"cannot read ONNX file {path}: {type(exc).__name__}: {exc}") from None
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    inputs = tuple(
        TensorSpec(vi.name, _dims_of(vi), _dtype_name(vi.type.tensor_type.elem_type))
        for vi in graph.input
        if vi.name not in init_names
    )
    outputs = tuple(TensorSpec(vi.name, _dims_of(vi), _dtype_name(vi.type.tensor_type.elem_type)) for vi in graph.output)
    if not inputs:
        raise ArtifactError(f"ONNX file {path} has no graph inputs")

    # Precision: which float dtype holds most weight elements (Cast-wrapped fp16 graphs keep fp32 I/O).
    elements: dict[str, int] = {}
    external: dict[str, str] = {}
    for t in graph.initializer:
        dtype = _dtype_name(t.data_type)
        if dtype in _FLOAT_PRECISION:
            elements[dtype] = elements.get(dtype, 0) + math.prod(t.dims)
        for entry in t.external_data:
            if entry.key == "location" and entry.value not in external:
                ext = path.parent / entry.value
                if not ext.is_file():
                    raise ArtifactError(f"ONNX file {path} refers to external weights {ext}, which is missing")
                external[entry.value] = sha256_file(ext)
    if elements:
        precision = _FLOAT_PRECISION[max(elements, key=lambda k: elements[k])]
    else:
        float_inputs = [s.dtype for s in inputs if s.dtype in _FLOAT_PRECISION]
        precision = _FLOAT_PRECISION[float_inputs[0]] if float_inputs else "fp32"
    has_qdq = any(n.op_type in _QDQ_OPS for n in graph.node)

    model_name = None
    if manifest:
        m = manifest.get("model")
        model_name = m.get("name") if isinstance(m, Mapping) else m
    return OnnxInfo(
        path=path,
        sha256=sha256_file(path),
        external_data=tuple(sorted(external.items())),
        inputs=inputs,
        outputs=outputs,
        precision=precision,
        has_qdq=has_qdq,
        model=str(model_name) if model_name else None,
        manifest=manifest,
        manifest_path=manifest_path,
    )


# ---------------------------------------------------------------------------------------- profile shapes
@dataclass(frozen=True)
class ProfileShape:
    """The min / opt / max shape of one input in the optimization profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[int]]) -> ProfileShape:
        return cls(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))


def _check_batch_arg(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
    return value


def derive_profile_shapes(
    inputs: Sequence[TensorSpec],
    *,
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
) -> dict[str, ProfileShape]:
    """The optimization profile for each input, from the ONNX input dims and the batch options.

    Only the first (batch) dimension may be dynamic. For a dynamic batch the defaults are ``min=1``,
    ``max=max(32, min, opt)`` and ``opt=8`` clamped into ``[min, max]``; ``min <= opt <= max`` must hold.
    For a fixed-batch ONNX every given batch option must equal that batch (re-export with a dynamic batch
    otherwise).

    >>> s = derive_profile_shapes([TensorSpec("x", ("batch", 3, 224, 224), "float32")], max_batch=16)
    >>> s["x"].min, s["x"].opt, s["x"].max
    ((1, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))
    """
    mn = _check_batch_arg("min_batch", min_batch)
    op = _check_batch_arg("opt_batch", opt_batch)
    mx = _check_batch_arg("max_batch", max_batch)
    given = {k: v for k, v in (("min_batch", mn), ("opt_batch", op), ("max_batch", mx)) if v is not None}

    dynamic: list[TensorSpec] = []
    static: list[TensorSpec] = []
    for spec in inputs:
        if not spec.dims:
            raise InvalidInput(f"input {spec.name!r} is a scalar; a batch dimension is needed")
        for i, d in enumerate(spec.dims[1:], start=1):
            if not isinstance(d, int):
                raise InvalidInput(
                    f"input {spec.name!r} has a dynamic dimension {i} ({d!r}); only the batch (dimension 0) may be "
                    "dynamic: export with a fixed image size"
                )
        (dynamic if not isinstance(spec.dims[0], int) else static).append(spec)

    shapes: dict[str, ProfileShape] = {}
    for spec in static:
        dims = tuple(int(d) for d in spec.dims)
        if not dynamic:
            wrong = {k: v for k, v in given.items() if v != dims[0]}
            if wrong:
                opts = ", ".join(f"{k}={v}" for k, v in wrong.items())
                raise InvalidInput(
                    f"the ONNX input {spec.name!r} has a fixed batch of {dims[0]}, so {opts} cannot be built; "
                    "re-export with a dynamic batch (deploykit export --dynamic-batch)"
                )
        shapes[spec.name] = ProfileShape(dims, dims, dims)
    if dynamic:
        lo = mn if mn is not None else DEFAULT_MIN_BATCH
        hi = mx if mx is not None else max(DEFAULT_MAX_BATCH, lo, op or 0)
        mid = op if op is not None else min(max(DEFAULT_OPT_BATCH, lo), hi)
        if not lo <= mid <= hi:
            raise InvalidInput(f"batch sizes must satisfy min <= opt <= max; got min={lo}, opt={mid}, max={hi}")
        for spec in dynamic:
            rest = tuple(int(d) for d in spec.dims[1:])
            shapes[spec.name] = ProfileShape((lo, *rest), (mid, *rest), (hi, *rest))
    return shapes


# ------------------------------------------------------------------------------------------- precision plan
@dataclass(frozen=True)
class PrecisionPlan:
    """How one precision is built on one TensorRT version (see the table in the module docstring).

    ``path`` is ``"strong-typing"``, ``"weak-typing"`` (a precision builder flag on a weakly typed network,
    10.0-10.11) or ``"int8-calibration"`` (10.x implicit quantization with a calibrator). ``builder_flags`` are
    ``trt.BuilderFlag`` member names to set. ``expect`` is the dtype that must show up in the built engine.
    """

    requested: str
    path: str
    strongly_typed: bool
    builder_flags: tuple[str, ...]
    calibrate: bool
    expect: str | None
    tensorrt_version: tuple[int, int, int]
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "path": self.path,
            "strongly_typed": self.strongly_typed,
            "builder_flags": list(self.builder_flags),
            "calibrated": self.calibrate,
            "expect": self.expect,
            "note": self.note,
        }


def _version_tuple(version: str | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(version, str):
        return parse_trt_version(version)
    v = (*(int(x) for x in version), 0, 0, 0)
    return v[0], v[1], v[2]


def check_precision(precision: str) -> str:
    """Normalise and check a precision name (``fp32``, ``fp16``, ``bf16``, ``int8``)."""
    p = str(precision).lower()
    if p not in PRECISIONS:
        raise InvalidInput(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return p


def refuse_int8_without_data(precision: str, *, has_qdq: bool, calibration_data: bool) -> None:
    """INT8 needs real calibration data or a Q/DQ ONNX; raise :class:`InvalidInput` otherwise (any version)."""
    if precision == "int8" and not has_qdq and not calibration_data:
        raise InvalidInput(
            "INT8 needs real calibration data (--calib-data FILE.npy or a folder of .npy inputs) or an explicitly "
            "quantized (Q/DQ) ONNX; deploykit never calibrates on random data"
        )


def select_precision_plan(
    precision: str,
    tensorrt_version: str | Sequence[int],
    *,
    onnx_precision: str,
    has_qdq: bool,
    calibration_data: bool = False,
) -> PrecisionPlan:
    """Decide how ``precision`` is built from this ONNX on this TensorRT version. Pure: no TensorRT needed.

    Raises :class:`InvalidInput` for a combination that cannot be built honestly (the message says what to do)
    and :class:`BackendUnavailable` for a TensorRT older than 10.0.
    """
    p = check_precision(precision)
    v = _version_tuple(tensorrt_version)
    vs = ".".join(map(str, v))
    if v[:2] < MIN_TENSORRT:
        raise BackendUnavailable(f"TensorRT {vs} is too old; deploykit needs TensorRT 10.0 or newer ({INSTALL_HINT})")
    major = v[0]
    legacy_weak = major == 10 and v[:2] < WEAK_TYPING_DEPRECATED

    def plan(path: str, strong: bool, flags: tuple[str, ...], expect: str | None, note: str, calib: bool = False) -> PrecisionPlan:
        return PrecisionPlan(p, path, strong, flags, calib, expect, v, note)

    if has_qdq and p != "int8":
        raise InvalidInput(f"the ONNX is explicitly quantized (Q/DQ nodes); build it with precision 'int8', not {p!r}")
    if p == "fp32":
        if onnx_precision != "fp32":
            raise InvalidInput(
                f"the ONNX graph is {onnx_precision}; a strongly typed build runs it in {onnx_precision}. "
                "Build an fp32 engine from an fp32 ONNX"
            )
        return plan("strong-typing", True, (), None, "fp32 graph, strongly typed, TF32 off")
    if p in ("fp16", "bf16"):
        if onnx_precision == p:
            return plan("strong-typing", True, (), p, f"{p} graph, strongly typed: precision comes from the ONNX dtypes")
        if onnx_precision != "fp32":
            raise InvalidInput(f"the ONNX graph is {onnx_precision}; it cannot be built as {p}")
        flag = "FP16" if p == "fp16" else "BF16"
        if legacy_weak:
            return plan(
                "weak-typing",
                False,
                (flag,),
                p,
                f"fp32 graph + BuilderFlag.{flag} on a weakly typed network (TensorRT {vs} < 10.12)",
            )
        why = (
            f"TensorRT {vs} has no BuilderFlag.{flag} (removed in 11.0: every network is strongly typed)"
            if major >= 11
            else f"BuilderFlag.{flag} (weak typing) is deprecated since TensorRT 10.12"
        )
        remedy = (
            "export an fp16 ONNX (deploykit export MODEL --fp16) and build the engine from it; its dtypes then "
            "decide the precision"
            if p == "fp16"
            else "a bf16 engine needs a bf16 ONNX graph (Conv in bf16 needs opset >= 22), which deploykit does not "
            "export yet; build fp16 instead, or bf16 on TensorRT 10.0-10.11"
        )
        raise InvalidInput(f"the ONNX graph is fp32 and {why}: {remedy}")
    # int8
    refuse_int8_without_data(p, has_qdq=has_qdq, calibration_data=calibration_data)
    if has_qdq:
        if calibration_data:
            raise InvalidInput("the ONNX already carries Q/DQ scales; --calib-data is not used for it, leave it out")
        return plan("strong-typing", True, (), "int8", "Q/DQ graph, strongly typed: scales come from the ONNX")
    if major >= 11:
        raise InvalidInput(
            f"TensorRT {vs} removed implicit INT8 calibration (IInt8Calibrator, BuilderFlag.INT8): quantize the ONNX "
            "with Q/DQ nodes using your calibration data (e.g. NVIDIA ModelOpt: python -m modelopt.onnx.quantization) "
            "and build int8 from that file"
        )
    return plan(
        "int8-calibration",
        False,
        ("INT8",),
        "int8",
        f"weakly typed + BuilderFlag.INT8 + IInt8EntropyCalibrator2 on real data (TensorRT {vs}; deprecated since 10.1)",
        calib=True,
    )


# ------------------------------------------------------------------------------------ calibration data
def load_calibration_batches(
    path: str | os.PathLike[str], *, sample_shape: Sequence[int], batch_size: int, dtype: str = "float32"
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Real calibration inputs from a ``.npy`` file or a folder of ``.npy`` files, cut into full batches.

    Each file holds ``(N, *sample_shape)`` samples (or one ``sample_shape`` sample). Values must be finite.
    Returns the batches (the remainder that does not fill a batch is dropped) and a description for the
    manifest (files, sample count, sha256 of the data).
    """
    import numpy as np

    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".npy" and f.is_file())
        if not files:
            raise InvalidInput(f"calibration folder {p} has no .npy files")
    elif p.is_file():
        if p.suffix != ".npy":
            raise InvalidInput(f"calibration data must be a .npy file or a folder of .npy files, got {p}")
        files = [p]
    else:
        raise InvalidInput(f"calibration data not found: {p}")
    sample = tuple(int(d) for d in sample_shape)
    if batch_size < 1:
        raise InvalidInput(f"calibration batch size must be positive, got {batch_size}")
    arrays = []
    h = hashlib.sha256()
    for f in files:
        try:
            a = np.load(f, allow_pickle=False)
        except Exception as exc:
            raise InvalidInput(f"cannot read calibration file {f}: {type(exc).__name__}: {exc}") from None
        if a.shape == sample:
            a = a[None]
        if a.ndim != len(sample) + 1 or tuple(a.shape[1:]) != sample:
            raise InvalidInput(
                f"calibration file {f} holds shape {tuple(a.shape)}; expected (N, {', '.join(map(str, sample))})"
            )
        if not np.issubdtype(a.dtype, np.number):
            raise InvalidInput(f"calibration file {f} holds {a.dtype} values, not numbers")
        a = np.ascontiguousarray(a.astype(dtype, copy=False))
        if not np.isfinite(a).all():
            raise InvalidInput(f"calibration file {f} contains NaN or infinite values")
        h.update(a.tobytes())
        arrays.append(a)
    data = np.concatenate(arrays, axis=0)
    n_batches = data.shape[0] // batch_size
    if n_batches == 0:
        raise InvalidInput(f"calibration data has {data.shape[0]} samples, fewer than one batch of {batch_size}")
    batches = [np.ascontiguousarray(data[i * batch_size : (i + 1) * batch_size]) for i in range(n_batches)]
    desc = {
        "path": os.fspath(p),
        "files": [f.name for f in files],
        "samples": int(data.shape[0]),
        "batch_size": batch_size,
        "batches": n_batches,
        "samples_dropped": int(data.shape[0] - n_batches * batch_size),
        "sha256": h.hexdigest(),
    }
    return batches, desc


def _make_calibrator(trt: Any, batches: Sequence[np.ndarray], device: torch.device) -> Any:
    """An ``IInt8EntropyCalibrator2`` that feeds the given batches from torch CUDA tensors (10.x only).

    API: ``trt.IInt8EntropyCalibrator2`` with ``get_batch_size`` / ``get_batch(names) -> [ptr] | None`` /
    ``read_calibration_cache`` / ``write_calibration_cache`` — TensorRT 8.x-10.x Python API (docs "Int8 /
    IInt8EntropyCalibrator2", deprecated in 10.1, removed in 11.0 per the 10.x->11.x Python migration guide);
    pattern checked against NVIDIA's samples/python/efficientdet/build_engine.py and Polygraphy's
    backend/trt/calibrator.py (which also returns batch size 1 for explicit-batch networks).
    """
    import torch

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind trampolines need the explicit base __init__
            self._batches = list(batches)
            self._next = 0
            self._buffer: torch.Tensor | None = None  # kept alive until TensorRT asks for the next batch
            self.batches_fed = 0

        def get_batch_size(self) -> int:
            return 1  # explicit-batch network: the batch lives in the tensor shape (deprecated in 10.0)

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            if self._next >= len(self._batches):
                return None
            arr = self._batches[self._next]
            self._next += 1
            self._buffer = torch.from_numpy(arr).to(device).contiguous()
            _current_stream(device).synchronize()  # TensorRT reads it on its own stream
            self.batches_fed += 1
            return [int(self._buffer.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return None  # always calibrate from the data given, never from a stale cache

        def write_calibration_cache(self, cache: Any) -> None:
            self.cache_bytes = len(bytes(cache))

    return _Calibrator()


# -------------------------------------------------------------------------------------- GPU and caches
@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for or loaded on."""

    name: str
    compute_capability: str
    cuda: str | None
    index: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.compute_capability, "cuda": self.cuda, "index": self.index}


def current_gpu(device: str | Any = "cuda") -> GpuInfo:
    """Name and compute capability of ``device`` (via torch); :class:`BackendUnavailable` without CUDA."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        raise InvalidInput(f"TensorRT runs on a CUDA device, not {dev}")
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs a CUDA GPU and none is available")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return GpuInfo(props.name, f"{props.major}.{props.minor}", torch.version.cuda, int(index), f"cuda:{index}")


def timing_cache_key(*, gpu_name: str, compute_capability: str, cuda_version: str | None, tensorrt_version: str) -> str:
    """A file-name-safe key for a timing cache: caches are only valid for one GPU, CUDA and TensorRT version.

    >>> timing_cache_key(gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", cuda_version="13.0",
    ...                  tensorrt_version="10.13.0.35")
    'NVIDIA_H100_80GB_HBM3-sm90-cuda13.0-trt10.13.0.35'
    """
    raw = f"{gpu_name}-sm{compute_capability.replace('.', '')}-cuda{cuda_version or 'unknown'}-trt{tensorrt_version}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_")


def default_cache_dir() -> Path:
    """``$DEPLOYKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deploykit``, else ``~/.cache/deploykit``."""
    if os.environ.get("DEPLOYKIT_CACHE_DIR"):
        return Path(os.environ["DEPLOYKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deploykit"


def default_timing_cache_path(key: str) -> Path:
    """Where the timing cache for ``key`` (see :func:`timing_cache_key`) lives by default."""
    return default_cache_dir() / "tensorrt" / f"timing-{key}.cache"


# -------------------------------------------------------------------------------------------- manifests
def engine_manifest_path(engine_path: str | os.PathLike[str]) -> Path:
    """The manifest that sits next to an engine: ``resnet18-fp16.engine`` -> ``resnet18-fp16.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


@dataclass(frozen=True)
class EngineArtifact:
    """A built TensorRT engine on disk and its manifest (also written as JSON next to it)."""

    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


def check_engine_compatibility(
    manifest: Mapping[str, Any], *, tensorrt_version: str, gpu_name: str, compute_capability: str
) -> None:
    """Raise :class:`ArtifactError` naming both sides when an engine was built for another GPU or TensorRT.

    Engines (plans) are valid only for the exact TensorRT version (major.minor.patch.build) and GPU they were
    built on, unless built version/hardware compatible (TensorRT "Support Policies": semantic versioning does
    not extend to serialized objects). A different GPU model with the same compute capability is refused too:
    tactics are timed and chosen for one GPU.
    """
    built_trt = str(manifest.get("tensorrt", {}).get("version", "?"))
    gpu = manifest.get("gpu", {}) or {}
    built_gpu, built_cc = str(gpu.get("name", "?")), str(gpu.get("compute_capability", "?"))
    problems = []
    if built_trt != str(tensorrt_version):
        problems.append(f"it was built with TensorRT {built_trt} and this machine has TensorRT {tensorrt_version}")
    if built_gpu != gpu_name or built_cc != compute_capability:
        problems.append(
            f"it was built on {built_gpu} (compute capability {built_cc}) and this GPU is {gpu_name} "
            f"(compute capability {compute_capability})"
        )
    if problems:
        name = manifest.get("engine_file", "the engine")
        raise ArtifactError(
            f"{name} cannot run here: {'; '.join(problems)}. TensorRT engines are specific to one GPU and one "
            "TensorRT version: rebuild it on this machine (deploykit export MODEL --format trt)"
        )


def load_engine_manifest(path: str | os.PathLike[str], *, check: bool = True, device: str = "cuda") -> dict[str, Any]:
    """Read the manifest of an engine (give the ``.engine`` or its ``.engine.json``) and verify it.

    Checks the schema, that the engine file exists with the recorded size and sha256, and (``check=True``)
    that this machine's TensorRT version and GPU are the ones it was built for (:class:`ArtifactError` naming
    both otherwise; :class:`BackendUnavailable` when TensorRT or CUDA is missing).
    """
    p = Path(path)
    if p.suffix == ".json":
        manifest_path = p
        engine_path = p.with_name(p.name[: -len(".json")])
    else:
        engine_path, manifest_path = p, engine_manifest_path(p)
    if not manifest_path.is_file():
        raise ArtifactError(
            f"no manifest {manifest_path} next to {engine_path}: deploykit runs engines it built (the manifest "
            "records the GPU and TensorRT version an engine is valid for)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read engine manifest {manifest_path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise ArtifactError(f"{manifest_path} is not a deploykit TensorRT engine manifest")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise ArtifactError(
            f"{manifest_path} has manifest schema version {version!r}; this deploykit reads up to {MANIFEST_VERSION}"
        )
    if not engine_path.is_file():
        raise ArtifactError(f"engine file {engine_path} (named by {manifest_path}) is missing")
    size = engine_path.stat().st_size
    if size != manifest.get("engine_bytes") or sha256_file(engine_path) != manifest.get("engine_sha256"):
        raise ArtifactError(f"engine file {engine_path} does not match its manifest (size or sha256 differ): rebuild it")
    if check:
        trt = import_tensorrt()
        gpu = current_gpu(device)
        check_engine_compatibility(
            manifest, tensorrt_version=str(trt.__version__), gpu_name=gpu.name, compute_capability=gpu.compute_capability
        )
    return manifest


# ------------------------------------------------------------------------------ engine inspector parsing
def dtype_from_format(text: str) -> str | None:
    """The data type named in an inspector ``Format/Datatype`` (10.x) or ``DataType`` (11.x) string.

    ``"Row major linear FP16 format"`` -> ``"fp16"``, ``"Half"`` -> ``"fp16"``, ``"Float"`` -> ``"fp32"``,
    ``"Thirty-two wide channel vectorized row major Int8 format."`` -> ``"int8"``; ``None`` when unknown
    (e.g. ``"N/A due to dynamic shapes"`` when no execution context with input shapes was set).
    """
    t = str(text).lower()
    for needles, name in (
        (("bf16", "bfloat"), "bf16"),
        (("fp16", "half", "float16"), "fp16"),
        (("fp8", "e4m3"), "fp8"),
        (("int8",), "int8"),
        (("uint8",), "uint8"),
        (("int32",), "int32"),
        (("int64",), "int64"),
        (("bool",), "bool"),
        (("fp32", "float"), "fp32"),
    ):
        if any(n in t for n in needles):
            return name
    return None


_ONNX_LAYER_RE = re.compile(r"\[ONNX Layer: ([^\]]+)\]")


def _tensor_entry(t: Any) -> dict[str, Any]:
    if not isinstance(t, Mapping):
        return {"name": str(t), "dims": None, "dtype": None, "format": None}
    fmt = t.get("Format/Datatype", t.get("Format"))
    dtype_text = t.get("DataType", fmt)  # 11.x splits DataType from Format; 10.x has "Format/Datatype"
    return {
        "name": t.get("Name"),
        "dims": list(t["Dimensions"]) if isinstance(t.get("Dimensions"), list) else t.get("Dimensions"),
        "dtype": dtype_from_format(dtype_text) if dtype_text is not None else None,
        "format": fmt,
    }


def parse_engine_information(info: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` from 10.x or 11.x.

    10.x lists I/O names under ``"Bindings"`` and each tensor's ``"Format/Datatype"``; 11.x lists objects under
    ``"I/O Tensors"`` and splits ``"DataType"`` from ``"Format"`` (10.x->11.x migration guide, "Migrating
    IEngineInspector Usage"). Returns ``schema`` (``"10.x"``, ``"11.x"`` or ``"unknown"``), ``layers`` (name,
    type, inputs/outputs with dims and dtype, tactic, ONNX nodes it fuses, precision), ``io_tensors`` and
    ``precision_counts`` (compute layers per output dtype; data-movement layers excluded).
    """
    if isinstance(info, str):
        try:
            data = json.loads(info)
        except ValueError as exc:
            raise ArtifactError(f"engine inspector output is not JSON: {exc}") from None
    else:
        data = dict(info)
    if not isinstance(data, Mapping):
        raise ArtifactError("engine inspector output is not a JSON object")
    if "I/O Tensors" in data:
        schema = "11.x"
        io = [
            {
                "name": t.get("Name"),
                "mode": t.get("IOMode"),
                "dtype": dtype_from_format(t.get("DataType", "")) if t.get("DataType") else None,
                "dims": t.get("Dimensions"),
                "profiles": t.get("ProfileInfo"),
            }
            for t in data["I/O Tensors"]
            if isinstance(t, Mapping)
        ]
    elif "Bindings" in data:
        schema = "10.x"
        io = [{"name": str(n), "mode": None, "dtype": None, "dims": None, "profiles": None} for n in data["Bindings"]]
    else:
        schema, io = "unknown", []

    layers: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    touching: dict[str, int] = {}
    compute_layers = 0
    for raw in data.get("Layers", []) or []:
        if not isinstance(raw, Mapping):  # LAYER_NAMES_ONLY verbosity: plain names
            layers.append({"name": str(raw), "type": None, "inputs": [], "outputs": [], "tactic": None,
                           "onnx_nodes": [], "precision": None})
            continue
        inputs = [_tensor_entry(t) for t in raw.get("Inputs", []) or []]
        outputs = [_tensor_entry(t) for t in raw.get("Outputs", []) or []]
        ltype = raw.get("LayerType")
        precision = next((t["dtype"] for t in outputs if t["dtype"]), None) or next(
            (t["dtype"] for t in inputs if t["dtype"]), None
        )
        meta = str(raw.get("Metadata", "") or "")
        onnx_nodes = _ONNX_LAYER_RE.findall(meta) or _ONNX_LAYER_RE.findall(str(raw.get("Name", "")))
        layers.append(
            {
                "name": raw.get("Name"),
                "type": ltype,
                "inputs": inputs,
                "outputs": outputs,
                "tactic": raw.get("TacticName") or raw.get("TacticValue"),
                "onnx_nodes": onnx_nodes,
                "precision": precision,
            }
        )
        if ltype in _DATA_MOVEMENT_LAYERS:
            continue
        compute_layers += 1
        if precision:
            counts[precision] = counts.get(precision, 0) + 1
        for d in {t["dtype"] for t in inputs + outputs if t["dtype"]}:
            touching[d] = touching.get(d, 0) + 1
    return {
        "schema": schema,
        "layers": layers,
        "io_tensors": io,
        "num_layers": len(layers),
        "compute_layers": compute_layers,
        "precision_counts": dict(sorted(counts.items())),
        "layers_touching": dict(sorted(touching.items())),
    }


def verify_engine_precision(plan: PrecisionPlan, parsed: Mapping[str, Any]) -> dict[str, Any]:
    """Check that the built engine really computes in the precision asked for (the silent-fp32 check).

    ``parsed`` is :func:`parse_engine_information` output. Raises :class:`ExportError` when ``plan.expect`` is
    set and no compute layer has a tensor of that dtype, or when the inspector gave no dtypes at all.
    Returns the observed figures for the manifest.
    """
    compute = int(parsed.get("compute_layers", 0))
    touching = dict(parsed.get("layers_touching", {}))
    observed = {
        "compute_layers": compute,
        "precision_counts": dict(parsed.get("precision_counts", {})),
        "layers_touching": touching,
        "expected": plan.expect,
        "expected_share": (touching.get(plan.expect, 0) / compute) if plan.expect and compute else None,
    }
    if plan.expect is None:
        return observed
    if not touching:
        raise ExportError(
            f"cannot verify that the engine computes in {plan.expect}: the engine inspector reported no data types "
            "(was it built with ProfilingVerbosity.DETAILED and inspected with input shapes set?)"
        )
    if touching.get(plan.expect, 0) == 0:
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(touching.items()))
        raise ExportError(
            f"asked for {plan.requested} but the built engine has no {plan.expect} layer ({compute} compute layers; "
            f"{seen}) — TensorRT {'.'.join(map(str, plan.tensorrt_version))} silently built it in another precision "
            f"(path: {plan.path}). The engine was not written"
        )
    return observed


# ---------------------------------------------------------------------------------- execution on torch
_TRT_TO_TORCH = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FP8": "float8_e4m3fn",
}


def trt_dtype_name(trt_dtype: Any) -> str:
    """``trt.DataType.HALF`` -> ``"HALF"`` (pybind11 enums have ``.name``; ``str`` gives ``"DataType.HALF"``)."""
    name = getattr(trt_dtype, "name", None)
    return str(name if name is not None else trt_dtype).split(".")[-1].upper()


def torch_dtype_for(trt_dtype: Any) -> torch.dtype:
    """The torch dtype for a ``trt.DataType`` (FLOAT, HALF, BF16, INT8, UINT8, INT32, INT64, BOOL, FP8).

    Members per the ``tensorrt.DataType`` page of the 10.x Python API docs (BF16/INT64/FP8/INT4 added in 9.x-10.0);
    INT4/FP4 have no torch dtype and raise :class:`ArtifactError`.
    """
    import torch

    name = trt_dtype_name(trt_dtype)
    if name not in _TRT_TO_TORCH:
        raise ArtifactError(f"TensorRT data type {name} has no torch equivalent; deploykit cannot bind it")
    dtype: torch.dtype = getattr(torch, _TRT_TO_TORCH[name])
    return dtype


def _device_guard(device: Any) -> Any:
    """``torch.cuda.device(device)``: TensorRT builds and deserializes on the current CUDA device.

    This and the two stream helpers below are the only CUDA calls of the executor; the fake-TensorRT tests
    replace them to drive the same code on a CPU-only machine.
    """
    import torch

    return torch.cuda.device(device)


def _new_stream(device: Any) -> Any:
    """A new (non-default) ``torch.cuda.Stream`` on ``device``."""
    import torch

    return torch.cuda.Stream(device)


def _current_stream(device: Any) -> Any:
    """torch's current stream on ``device`` (the caller's stream)."""
    import torch

    return torch.cuda.current_stream(device)


def _make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that keeps warnings and errors so failures can quote them.

    API: subclassing ``trt.ILogger`` with ``log(severity, msg)`` and calling ``trt.ILogger.__init__`` — TensorRT
    8.x-11.x Python API ("Logger" docs); same pattern as Polygraphy's backend/trt/util.py ``get_trt_logger``.
    """

    class _KeepingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt_dtype_name(severity)
            if sev in ("INTERNAL_ERROR", "ERROR", "WARNING"):
                self.messages.append((sev, str(msg)))

        def errors(self) -> list[str]:
            return [m for s, m in self.messages if s in ("INTERNAL_ERROR", "ERROR")]

    return _KeepingLogger()


@dataclass(frozen=True)
class IOTensor:
    """One engine input or output: its name, whether it is an input, torch dtype and engine shape (-1 = dynamic)."""

    name: str
    is_input: bool
    dtype: Any
    shape: tuple[int, ...]
    profile: ProfileShape | None


class EngineExecutor:
    """A deserialized engine and one execution context that run torch CUDA tensors (no pycuda).

    The one place in deploykit that binds tensors and enqueues TensorRT work; :class:`deploykit.backends.tensorrt.
    TensorRTRunner` and the post-build validation both use it. Work is enqueued with ``execute_async_v3`` on a
    **non-default** ``torch.cuda.Stream`` (``self.stream``; on the legacy default stream TensorRT synchronizes
    the device), which first waits for the caller's current stream and is then waited on by it, so CUDA events
    recorded on the caller's stream bracket the engine's work exactly.

    Call order per run, identical on 10.x and 11.x (Python API "IExecutionContext"; Polygraphy
    backend/trt/runner.py ``_infer_impl_v3``; Torch-TensorRT runtime/_PythonTorchTensorRTModule.py):
    ``set_input_shape`` for each input -> ``get_tensor_shape`` for each output -> ``set_tensor_address`` for all
    -> ``execute_async_v3(stream.cuda_stream)``.
    """

    def __init__(self, trt: Any, engine_bytes: bytes, device: str | Any = "cuda", *, name: str = "engine") -> None:
        import torch

        self.trt = trt
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())  # x.device is always indexed
        self.name = name
        self.logger = _make_logger(trt)
        # trt.Runtime(logger).deserialize_cuda_engine(bytes) -> ICudaEngine | None (None on a version / device
        # mismatch or corrupt plan). TensorRT 8.x-11.x; checked: 11.x Python migration guide examples, Polygraphy
        # backend/trt/loader.py EngineFromBytes.
        self.runtime = trt.Runtime(self.logger)
        with _device_guard(self.device):
            self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
            if self.engine is None:
                errs = "; ".join(self.logger.errors()[-3:]) or "no message"
                raise ArtifactError(
                    f"TensorRT could not deserialize {name} ({errs}); an engine runs only with the TensorRT version "
                    "and GPU it was built for"
                )
            # ICudaEngine.create_execution_context() -> IExecutionContext | None. 8.x-11.x (Python API "ICudaEngine").
            self.context = self.engine.create_execution_context()
        if self.context is None:
            raise ArtifactError(f"TensorRT could not create an execution context for {name} (out of GPU memory?)")
        self.io = self._read_io()
        self.inputs = [t for t in self.io if t.is_input]
        self.outputs = [t for t in self.io if not t.is_input]
        self.stream = _new_stream(self.device)
        self._out_cache: dict[str, torch.Tensor] = {}

    def _read_io(self) -> list[IOTensor]:
        trt, engine = self.trt, self.engine
        io = []
        # num_io_tensors / get_tensor_name / get_tensor_mode / get_tensor_dtype / get_tensor_shape /
        # get_tensor_profile_shape(name, profile_index): the name-based I/O API, TensorRT 8.5+ and the only one
        # in 10.x/11.x (Python API "ICudaEngine"; 8.x->10.x Python migration appendix).
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            profile = None
            if is_input:
                mn, op, mx = engine.get_tensor_profile_shape(name, 0)
                profile = ProfileShape(tuple(int(d) for d in mn), tuple(int(d) for d in op), tuple(int(d) for d in mx))
            io.append(IOTensor(name, is_input, torch_dtype_for(engine.get_tensor_dtype(name)), shape, profile))
        if not any(t.is_input for t in io) or all(t.is_input for t in io):
            raise ArtifactError(f"{self.name} has no inputs or no outputs")
        return io

    # -- binding
    def check_input(self, spec: IOTensor, x: Any) -> None:
        """Raise :class:`ShapeError` / :class:`InvalidInput` when ``x`` cannot be bound to input ``spec``."""
        if x.device != self.device:
            raise InvalidInput(f"{self.name}: input {spec.name!r} is on {x.device}, the engine runs on {self.device}")
        if x.dtype != spec.dtype:
            raise InvalidInput(
                f"{self.name}: input {spec.name!r} is {x.dtype}, the engine takes {spec.dtype} "
                "(use runner.prepare_input to convert once, outside timing)"
            )
        shape = tuple(x.shape)
        if len(shape) != len(spec.shape):
            raise ShapeError(f"{self.name}: input {spec.name!r} takes {len(spec.shape)}-D tensors, got shape {shape}")
        if spec.profile is not None:
            lo, hi = spec.profile.min, spec.profile.max
            if any(s < a or s > b for s, a, b in zip(shape, lo, hi, strict=True)):
                raise ShapeError(
                    f"{self.name}: input {spec.name!r} shape {shape} is outside the engine's profile "
                    f"(min {lo}, max {hi}); rebuild with --min-batch/--max-batch"
                )

    def bind(self, inputs: Sequence[Any], *, reuse_outputs: bool = True) -> list[Any]:
        """Set input shapes and all tensor addresses for ``inputs``; return the output tensors to be written."""
        import torch

        if len(inputs) != len(self.inputs):
            raise InvalidInput(f"{self.name} takes {len(self.inputs)} input(s), got {len(inputs)}")
        ctx = self.context
        for spec, x in zip(self.inputs, inputs, strict=True):
            self.check_input(spec, x)
            # set_input_shape(name, shape) -> bool: must precede get_tensor_shape of outputs. 8.5+/10.x/11.x.
            if not ctx.set_input_shape(spec.name, tuple(x.shape)):
                raise ShapeError(f"{self.name}: TensorRT refused shape {tuple(x.shape)} for input {spec.name!r}")
        outs = []
        for spec in self.outputs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise ArtifactError(f"{self.name}: output {spec.name!r} has a data-dependent shape {shape}; not supported")
            out = self._out_cache.get(spec.name) if reuse_outputs else None
            if out is None or tuple(out.shape) != shape:
                out = torch.empty(shape, dtype=spec.dtype, device=self.device)
                if reuse_outputs:
                    self._out_cache[spec.name] = out
            outs.append(out)
        # set_tensor_address(name, int pointer) -> bool; torch tensors give data_ptr(). 8.5+/10.x/11.x.
        for spec, t in [*zip(self.inputs, inputs, strict=True), *zip(self.outputs, outs, strict=True)]:
            if not t.is_contiguous():
                raise InvalidInput(f"{self.name}: tensor {spec.name!r} must be contiguous")
            if not ctx.set_tensor_address(spec.name, int(t.data_ptr())):
                raise ArtifactError(f"{self.name}: TensorRT refused the address of tensor {spec.name!r}")
        return outs

    def enqueue(self) -> None:
        """``execute_async_v3`` on ``self.stream`` with the stream waits on both sides (shapes/addresses bound)."""
        caller = _current_stream(self.device)
        self.stream.wait_stream(caller)
        # execute_async_v3(stream_handle: int) -> bool. TensorRT 8.5+, the only enqueue in 10.x/11.x
        # (execute_async_v2 removed in 10.0: 8.x->10.x Python migration appendix). torch.cuda.Stream.cuda_stream is
        # the raw cudaStream_t as an int (used the same way by Torch-TensorRT's Python runtime).
        ok = self.context.execute_async_v3(self.stream.cuda_stream)
        caller.wait_stream(self.stream)
        if not ok:
            errs = "; ".join(self.logger.errors()[-3:]) or "no message"
            raise ArtifactError(f"{self.name}: TensorRT execute_async_v3 failed ({errs})")

    def run(self, inputs: Sequence[Any], *, reuse_outputs: bool = False) -> list[Any]:
        """Bind ``inputs`` and run once; returns the outputs (fresh tensors unless ``reuse_outputs``)."""
        outs = self.bind(inputs, reuse_outputs=reuse_outputs)
        self.enqueue()
        for x in inputs:  # inputs were read on self.stream: keep the allocator from reusing them too early
            if x.is_cuda:
                x.record_stream(self.stream)
        return outs

    def engine_information(self, input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
        """The engine inspector's JSON, parsed (:func:`parse_engine_information`), with the raw JSON under ``raw``.

        Input shapes (default: each profile's opt shape) are set on the context first, so the inspector can
        report concrete dims and formats for a dynamic engine. API: ``ICudaEngine.create_engine_inspector()``,
        ``EngineInspector.execution_context`` (attribute name in the 10.x/11.x Python API and Polygraphy
        backend/trt/util.py; 8.x called it ``context``), ``get_engine_information(trt.LayerInformationFormat.JSON)``
        — TensorRT 8.2+/10.x/11.x ("Engine Inspector", TensorRT 10.16 developer guide, engine-tools page).
        """
        for spec in self.inputs:
            shape = tuple(input_shapes[spec.name]) if input_shapes and spec.name in input_shapes else (
                spec.profile.opt if spec.profile else spec.shape
            )
            if not self.context.set_input_shape(spec.name, shape):
                raise ShapeError(f"{self.name}: TensorRT refused shape {shape} for input {spec.name!r}")
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = self.context
        raw = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
        parsed = parse_engine_information(raw)
        parsed["raw"] = json.loads(raw) if isinstance(raw, str) else raw
        return parsed


# ------------------------------------------------------------------------------------------- validation
def validation_tolerance(precision: str) -> Any:
    """The :class:`~deploykit.export.validate.Tolerance` an engine of ``precision`` is validated with: the same
    table as the ONNX export (scale-relative: ``max|out - ref| <= atol + rtol * max|ref|``)."""
    from deploykit.export.validate import tolerance_for

    return tolerance_for(check_precision(precision))


def _reference_fn(info: OnnxInfo, reference_model: Any, device: Any) -> tuple[Callable[..., list[Any]], str]:
    """The reference the engine is compared with: the eager module when given, else ONNX Runtime on the ONNX.

    The ONNX exporter folds BatchNorm into Conv weights and models are randomly initialised, so a module rebuilt
    from the registry would not hold the exported weights: eager validation needs the very module that was
    exported (``reference_model=``; the CLI has it in hand right after ``export_onnx``).
    """
    import torch

    if reference_model is not None:
        model = copy.deepcopy(reference_model).to(device=device, dtype=torch.float32).eval()

        def eager(*xs: Any) -> list[Any]:
            with torch.inference_mode():
                out = model(*[x.to(torch.float32) for x in xs])
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            return [o.float() for o in outs]

        return eager, "eager-pytorch"

    try:
        import onnxruntime as ort
    except ImportError:
        raise ValidationError(
            "no reference to validate against: pass reference_model= (the exported nn.Module) or install onnxruntime"
        ) from None
    avail = ort.get_available_providers()
    provider = "CUDAExecutionProvider" if "CUDAExecutionProvider" in avail else "CPUExecutionProvider"
    try:
        sess = ort.InferenceSession(os.fspath(info.path), providers=[provider])
    except Exception as exc:
        raise ValidationError(f"ONNX Runtime cannot load {info.path} as a reference: {exc}") from None
    names = [i.name for i in sess.get_inputs()]
    np_types = {i.name: i.type for i in sess.get_inputs()}

    def onnxrt(*xs: Any) -> list[Any]:
        feed = {}
        for n, x in zip(names, xs, strict=True):
            arr = x.detach().to("cpu", torch.float32).numpy()
            feed[n] = arr.astype("float16") if np_types[n] == "tensor(float16)" else arr
        try:
            outs = sess.run(None, feed)
        except Exception as exc:
            raise ValidationError(f"ONNX Runtime could not run the reference: {exc}") from None
        return [torch.from_numpy(o.astype("float32")) for o in outs]

    return onnxrt, f"onnxruntime:{provider}"


def validate_engine(
    executor: EngineExecutor,
    info: OnnxInfo,
    precision: str,
    *,
    reference_model: Any = None,
    batches: Sequence[int] | None = None,
    calibration: Sequence[Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the engine and the reference on the same inputs (each profile batch, fixed seed) and compare.

    Inputs are standard-normal (real calibration samples for a calibrated INT8 engine). Returns the record for
    the manifest; raises :class:`ValidationError` with the numbers when a batch is outside the tolerance.
    """
    import torch

    from deploykit.export.validate import compare_outputs

    tol = validation_tolerance(precision)
    reference, ref_name = _reference_fn(info, reference_model, executor.device)
    first = executor.inputs[0]
    profile = first.profile or ProfileShape(first.shape, first.shape, first.shape)
    sizes = sorted(set(batches or (profile.min[0], profile.opt[0], profile.max[0])))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    pool = None
    if calibration is not None and len(executor.inputs) == 1 and len(calibration) > 0:
        import numpy as np

        pool = torch.from_numpy(np.concatenate(list(calibration), axis=0)).float()
    runs = []
    for b in sizes:
        xs = []
        for spec in executor.inputs:
            p = spec.profile.opt if spec.profile else spec.shape
            dynamic = spec.profile is not None and spec.profile.min[0] != spec.profile.max[0]
            shape = (b, *p[1:]) if dynamic or spec is first else tuple(p)
            if pool is not None:
                reps = -(-shape[0] // pool.shape[0])
                xs.append(pool.repeat(reps, *([1] * (pool.dim() - 1)))[: shape[0]])
            else:
                xs.append(torch.randn(shape, generator=gen, dtype=torch.float32))
        engine_in = [x.to(executor.device, spec.dtype).contiguous() for x, spec in zip(xs, executor.inputs, strict=True)]
        outs = executor.run(engine_in)
        _current_stream(executor.device).synchronize()
        # The reference sees what the engine saw: inputs rounded to the engine's input dtype, then fp32.
        refs = reference(*[x.to(torch.float32).to(executor.device) for x in engine_in])
        if len(refs) != len(outs):
            raise ValidationError(f"the engine has {len(outs)} outputs and the reference {len(refs)}")
        for spec, out, ref in zip(executor.outputs, outs, refs, strict=True):
            cmp = compare_outputs(out, ref, tol)
            runs.append({"batch": b, "output": spec.name, **cmp})
    result = {
        "reference": ref_name,
        "precision": precision,
        "tolerance": tol.to_dict(),
        "seed": seed,
        "inputs": "calibration samples" if calibration is not None else "standard normal",
        "batches": sizes,
        "max_abs_error": max(r["max_abs_error"] for r in runs),
        "max_rel_error": max(r["max_rel_error"] for r in runs),
        "passed": all(r["passed"] for r in runs),
        "runs": runs,
    }
    if not result["passed"]:
        bad = next(r for r in runs if not r["passed"])
        raise ValidationError(
            f"the {precision} engine disagrees with the reference ({ref_name}) beyond atol={tol.atol:g}, "
            f"rtol={tol.rtol:g} of the output scale: batch {bad['batch']}, output {bad['output']!r}: max abs error "
            f"{bad['max_abs_error']:.3g}, max rel error {bad['max_rel_error']:.3g}; the engine was not written"
        )
    return result


# ------------------------------------------------------------------------------------------------ build
def _parser_errors(parser: Any) -> list[str]:
    """Parser errors with node names: ``ParserError.node_name()/node_operator()`` (nodeName/nodeOperator are
    in the 10.x C++ IParserError reference, e.g. 10.2/10.4/10.14; Python names as used by NVIDIA's
    trt-samples cookbook), ``node()`` (index), ``desc()``, ``code()`` (all 8.x+)."""
    out = []
    for i in range(int(parser.num_errors)):
        err = parser.get_error(i)
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        where = f"node {name!r}" if name else f"node #{err.node()}"
        out.append(f"{where}{f' ({op})' if op else ''}: {err.desc()} [{err.code()}]")
    return out


def _default_engine_path(info: OnnxInfo, precision: str) -> Path:
    stem = info.path.stem if precision == info.graph_tag else f"{info.path.stem}-{precision}"
    return info.path.with_name(stem + ENGINE_SUFFIX)


@dataclass
class _BuildResult:
    plan: bytes
    build_time_s: float
    timing_cache: dict[str, Any]
    calibration: dict[str, Any] | None
    warnings: list[str]


def _build_serialized(
    trt: Any,
    info: OnnxInfo,
    plan: PrecisionPlan,
    shapes: Mapping[str, ProfileShape],
    *,
    workspace_bytes: int | None,
    opt_level: int | None,
    tf32: bool,
    cache_path: Path,
    calibrator: Any,
    calib_batch: int | None,
    device: Any,
) -> _BuildResult:
    """Logger -> Builder -> network -> ONNX parser -> builder config -> build_serialized_network, call by call."""

    logger = _make_logger(trt)
    # trt.Builder(logger): 8.x-11.x.
    builder = trt.Builder(logger)
    # create_network(flags): STRONGLY_TYPED exists in 10.x (Python API "Builder": NetworkDefinitionCreationFlag)
    # and is accepted-but-ignored in 11.x (every network strongly typed; 10.x->11.x migration guide). flags=0 is a
    # weakly typed (explicit batch) network, the legacy 10.x route; EXPLICIT_BATCH is ignored in 10.x, gone in 11.
    flags = (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    # trt.OnnxParser(network, logger).parse_from_file(path) -> bool; reads model.onnx.data next to the file
    # (Polygraphy backend/trt/loader.py NetworkFromOnnxPath: "We need to use parse_from_file ... external weights").
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(os.fspath(info.path))
    if not ok or int(parser.num_errors) > 0:
        errors = _parser_errors(parser) or ["no error was recorded"]
        raise ExportError(f"TensorRT's ONNX parser rejected {info.path.name}: " + "; ".join(errors[:5]))
    net_inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    missing = [n for n in net_inputs if n not in shapes]
    if missing:
        raise ExportError(f"the parsed network has inputs {missing} that the ONNX graph does not list")

    config = builder.create_builder_config()
    if workspace_bytes is not None:
        # set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes): TensorRT 8.4+ ("API Changes for 8.4"), 10.x, 11.x.
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if opt_level is not None:
        # builder_optimization_level (0-5, default 3): 8.6+ (Polygraphy CreateConfig), 10.x, 11.x.
        config.builder_optimization_level = int(opt_level)
    # DETAILED so the engine inspector reports per-layer dtypes/tactics (Python API "EngineInspector"): 8.2+.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if not tf32:
        # TF32 is on by default for fp32 convs/matmuls; fp32 here means fp32. BuilderFlag.TF32 stays in 11.x.
        config.clear_flag(trt.BuilderFlag.TF32)
    for flag in plan.builder_flags:
        # FP16 / BF16 / INT8: 10.x only (removed in 11.0 per "Removed Python APIs and Replacements"); the plan
        # only names them on the 10.x legacy routes.
        config.set_flag(getattr(trt.BuilderFlag, flag))

    # Optimization profile: builder.create_optimization_profile(); profile.set_shape(name, min, opt, max);
    # config.add_optimization_profile(profile) -> index. 7.x-11.x (Python API "IOptimizationProfile").
    profile = builder.create_optimization_profile()
    for name in net_inputs:
        s = shapes[name]
        profile.set_shape(name, s.min, s.opt, s.max)
    config.add_optimization_profile(profile)

    calibration = None
    if plan.calibrate:
        # config.int8_calibrator + set_calibration_profile: 10.x only (deprecated 10.1, removed 11.0).
        config.int8_calibrator = calibrator
        calib_profile = builder.create_optimization_profile()
        for name in net_inputs:
            s = shapes[name]
            c = (int(calib_batch or s.opt[0]), *s.opt[1:])
            calib_profile.set_shape(name, c, c, c)
        config.set_calibration_profile(calib_profile)

    # Timing cache: config.create_timing_cache(bytes) (b"" = empty) + config.set_timing_cache(cache,
    # ignore_mismatch=False); after the build config.get_timing_cache().serialize(). 8.0+/10.x/11.x (Polygraphy
    # backend/trt/config.py and loader.py). ignore_mismatch=False: a cache from another device/version is refused.
    loaded = 0
    cache_note = "created"
    old = b""
    if cache_path.is_file():
        old = cache_path.read_bytes()
    try:
        cache = config.create_timing_cache(old)
    except Exception:  # a truncated or foreign file: start empty rather than fail the build
        cache = None
    if cache is None:
        cache, cache_note = config.create_timing_cache(b""), "unreadable, started empty"
    elif old:
        loaded, cache_note = len(old), "reused"
    if not config.set_timing_cache(cache, ignore_mismatch=False) and old:
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        loaded, cache_note = 0, "did not match this GPU/TensorRT, started empty"

    t0 = time.perf_counter()
    with _device_guard(device):
        # build_serialized_network(network, config) -> IHostMemory | None (None on failure): 8.0+/10.x/11.x
        # (build_engine was removed in 10.0: 8.x->10.x Python migration appendix).
        serialized = builder.build_serialized_network(network, config)
    build_time_s = time.perf_counter() - t0
    if serialized is None:
        errs = "; ".join(logger.errors()[-5:]) or "see the TensorRT log"
        raise ExportError(f"TensorRT could not build an engine from {info.path.name}: {errs}")
    plan_bytes = bytes(serialized)  # IHostMemory implements the buffer protocol
    if not plan_bytes:
        raise ExportError(f"TensorRT returned an empty engine for {info.path.name}")
    if plan.calibrate and calibrator is not None:
        calibration = {"batches_fed": int(getattr(calibrator, "batches_fed", 0))}

    new_cache = bytes(config.get_timing_cache().serialize())
    atomic_write_bytes(cache_path, new_cache)
    return _BuildResult(
        plan=plan_bytes,
        build_time_s=build_time_s,
        timing_cache={"path": os.fspath(cache_path), "status": cache_note, "loaded_bytes": loaded,
                      "saved_bytes": len(new_cache)},
        calibration=calibration,
        warnings=[m for s, m in logger.messages if s == "WARNING"][-20:],
    )


def build_engine(
    onnx: Any,
    *,
    precision: str = "fp32",
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    workspace_bytes: int | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    opt_level: int | None = None,
    calib_data: str | os.PathLike[str] | None = None,
    validate: bool = True,
    out_path: str | os.PathLike[str] | None = None,
    reference_model: Any = None,
    tf32: bool = False,
    device: str = "cuda",
) -> EngineArtifact:
    """Build, check and validate a TensorRT engine from an ONNX file; write it with its manifest.

    Args:
        onnx: an ``OnnxArtifact`` (``path``, ``manifest_path``, ``manifest``) or a path to a ``.onnx`` file.
        precision: ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"`` (see the module docstring for how each is
            built on 10.x and 11.x).
        min_batch, opt_batch, max_batch: optimization profile for a dynamic-batch ONNX (defaults 1 / 8 / 32).
        workspace_bytes: ``MemoryPoolType.WORKSPACE`` limit (TensorRT's default: the device memory).
        timing_cache: timing-cache file, reused and updated; default a file keyed by GPU, CUDA and TensorRT
            version under ``~/.cache/deploykit/tensorrt/`` (``$DEPLOYKIT_CACHE_DIR`` overrides).
        opt_level: builder optimization level 0-5 (TensorRT's default 3).
        calib_data: ``.npy`` file or folder of real inputs for INT8 calibration (10.x only).
        validate: compare the engine's outputs with ``reference_model`` (eager PyTorch) or, without one, with
            ONNX Runtime on the source ONNX; a failure raises :class:`ValidationError` and writes nothing.
        out_path: engine path; default next to the ONNX, ``<onnx stem>[-<precision>].engine``.
        reference_model: the ``nn.Module`` that was exported (for eager validation).
        tf32: allow TF32 in fp32 layers (off: an "fp32" engine computes in fp32).
        device: the CUDA device to build for.

    Returns the :class:`EngineArtifact`. Raises :class:`BackendUnavailable` without TensorRT or CUDA,
    :class:`InvalidInput` for impossible options (checked before TensorRT is imported), :class:`ExportError`
    when parsing/building fails or the engine lacks the precision asked for.

    >>> art = build_engine("out/resnet18-fp16.onnx", precision="fp16", reference_model=model)  # doctest: +SKIP
    >>> art.manifest["precision"]["path"]                                                    # doctest: +SKIP
    'strong-typing'
    """
    # 1. Everything that needs no TensorRT: arguments, the ONNX graph, the profile, INT8 refusal.
    p = check_precision(precision)
    if workspace_bytes is not None and (isinstance(workspace_bytes, bool) or not isinstance(workspace_bytes, int)
                                        or workspace_bytes < 1):
        raise InvalidInput(f"workspace_bytes must be a positive integer, got {workspace_bytes!r}")
    if opt_level is not None and (isinstance(opt_level, bool) or opt_level not in OPT_LEVELS):
        raise InvalidInput(f"opt_level must be an integer from 0 to 5, got {opt_level!r}")
    if calib_data is not None and not Path(calib_data).exists():
        raise InvalidInput(f"calibration data not found: {calib_data}")
    info = inspect_onnx(onnx)
    shapes = derive_profile_shapes(info.inputs, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch)
    refuse_int8_without_data(p, has_qdq=info.has_qdq, calibration_data=calib_data is not None)
    engine_path = Path(out_path) if out_path is not None else _default_engine_path(info, p)
    if engine_path.suffix == ".json":
        raise InvalidInput(f"out_path {engine_path} looks like a manifest; give the engine file name")

    # 2. TensorRT, its version, the precision plan and the GPU.
    trt = import_tensorrt()
    trt_version = str(trt.__version__)
    plan = select_precision_plan(
        p, trt_version, onnx_precision=info.precision, has_qdq=info.has_qdq, calibration_data=calib_data is not None
    )
    gpu = current_gpu(device)
    import torch

    dev = torch.device(gpu.device)
    key = timing_cache_key(
        gpu_name=gpu.name, compute_capability=gpu.compute_capability, cuda_version=gpu.cuda, tensorrt_version=trt_version
    )
    cache_path = Path(timing_cache) if timing_cache is not None else default_timing_cache_path(key)

    calibrator, calib_desc, calib_batches, calib_batch = None, None, None, None
    if plan.calibrate:
        assert calib_data is not None
        if len(info.inputs) != 1:
            raise InvalidInput("INT8 calibration data is supported for single-input models only")
        spec = info.inputs[0]
        s = shapes[spec.name]
        calib_batch = s.opt[0] if s.min[0] != s.max[0] else s.min[0]
        calib_batches, calib_desc = load_calibration_batches(
            calib_data, sample_shape=s.opt[1:], batch_size=calib_batch, dtype=spec.dtype
        )
        calibrator = _make_calibrator(trt, calib_batches, dev)

    # 3. Build.
    built = _build_serialized(
        trt, info, plan, shapes, workspace_bytes=workspace_bytes, opt_level=opt_level, tf32=tf32,
        cache_path=cache_path, calibrator=calibrator, calib_batch=calib_batch, device=dev,
    )
    if calib_desc is not None and built.calibration is not None:
        calib_desc.update(built.calibration)

    # 4. Inspect: the engine must compute in the precision asked for (the silent-fp32 check).
    executor = EngineExecutor(trt, built.plan, dev, name=engine_path.name)
    layer_info = executor.engine_information({n: s.opt for n, s in shapes.items()})
    observed = verify_engine_precision(plan, layer_info)

    # 5. Validate against the reference.
    if validate:
        validation: dict[str, Any] = validate_engine(
            executor, info, p, reference_model=reference_model, calibration=calib_batches
        )
    else:
        validation = {"skipped": "validate=False"}

    # 6. Write engine + manifest atomically (the engine is renamed into place only after the manifest is written).
    from deploykit._env import environment

    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "schema_version": MANIFEST_VERSION,
        "engine_file": engine_path.name,
        "engine_bytes": len(built.plan),
        "engine_sha256": hashlib.sha256(built.plan).hexdigest(),
        "model": info.model,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_time_s": built.build_time_s,
        "source_onnx": {
            "path": os.fspath(info.path),
            "sha256": info.sha256,
            "external_data": [{"file": f, "sha256": h} for f, h in info.external_data],
            "manifest": os.fspath(info.manifest_path) if info.manifest_path else None,
            "graph_precision": info.precision,
            "qdq": info.has_qdq,
        },
        "tensorrt": {"version": trt_version, "major": plan.tensorrt_version[0], "minor": plan.tensorrt_version[1]},
        "gpu": gpu.to_dict(),
        "precision": {**plan.to_dict(), "tf32": tf32, "observed": observed, "calibration": calib_desc},
        "profile": {n: s.to_dict() for n, s in shapes.items()},
        "io": {
            "inputs": [{"name": t.name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
                       for t in executor.inputs],
            "outputs": [{"name": t.name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
                        for t in executor.outputs],
        },
        "builder": {
            "workspace_bytes": workspace_bytes,
            "optimization_level": opt_level,
            "profiling_verbosity": "DETAILED",
            "timing_cache": {**built.timing_cache, "key": key},
            "warnings": built.warnings,
        },
        "layers": {"schema": layer_info["schema"], "num_layers": layer_info["num_layers"]},
        "validation": validation,
        "environment": environment(str(dev)),
    }
    manifest_path = engine_manifest_path(engine_path)
    with atomic_path(engine_path) as tmp:
        with open(tmp, "wb") as f:
            f.write(built.plan)
            f.flush()
            os.fsync(f.fileno())
        atomic_write_json(manifest_path, manifest)
    return EngineArtifact(path=engine_path, manifest_path=manifest_path, manifest=manifest)


def load_engine(path: str | os.PathLike[str], device: str = "cuda", *, check: bool = True) -> tuple[EngineExecutor, dict[str, Any]]:
    """Load an engine built by :func:`build_engine`: verify its manifest, then deserialize it on ``device``."""
    manifest = load_engine_manifest(path, check=check, device=device)
    p = Path(path)
    engine_path = p.with_name(p.name[: -len(".json")]) if p.suffix == ".json" else p
    trt = import_tensorrt()
    dev = current_gpu(device).device  # "cuda" -> "cuda:N": tensors are compared against an indexed device
    return EngineExecutor(trt, engine_path.read_bytes(), dev, name=engine_path.name), manifest
