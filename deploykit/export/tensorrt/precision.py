"""How a precision is built on a TensorRT version (a pure function), and the check that the engine honours it.

See the table in :mod:`deploykit.export.tensorrt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploykit.backends.tensorrt.runtime import INSTALL_HINT, MIN_TENSORRT, parse_trt_version
from deploykit.errors import BackendUnavailable, ExportError, InvalidInput
from deploykit.precision import Precision

#: Precisions ``build_engine`` accepts.
PRECISIONS = Precision.names(Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8)

#: Weak typing (precision builder flags) is deprecated from here on (TensorRT 10.12 release notes; the
#: migration guide's "Strongly Typed Networks Are Now Required"), removed in 11.0.
WEAK_TYPING_DEPRECATED = (10, 12)


@dataclass(frozen=True)
class PrecisionPlan:
    """How one precision is built on one TensorRT version (see the table in the module docstring).

    ``path`` is ``"strong-typing"`` or ``"weak-typing"`` (a precision builder flag on a weakly typed network,
    10.0-10.11). INT8 is always strongly typed from a Q/DQ graph (no calibrator route). ``builder_flags`` are
    ``trt.BuilderFlag`` member names to set. ``expect`` is the dtype that must show up in the built engine.
    """

    requested: str
    path: str
    strongly_typed: bool
    builder_flags: tuple[str, ...]
    expect: str | None
    tensorrt_version: tuple[int, int, int]
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "path": self.path,
            "strongly_typed": self.strongly_typed,
            "builder_flags": list(self.builder_flags),
            "expect": self.expect,
            "note": self.note,
        }

def _version_tuple(version: str | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(version, str):
        return parse_trt_version(version)
    v = (*(int(x) for x in version), 0, 0, 0)
    return v[0], v[1], v[2]

def check_precision(precision: str | Precision) -> Precision:
    """Normalise and check a precision name (``fp32``, ``fp16``, ``bf16``, ``int8``)."""
    return Precision.parse(precision, allowed=PRECISIONS)


def refuse_int8_without_qdq(precision: str, *, has_qdq: bool) -> None:
    """An INT8 engine is built from a Q/DQ ONNX only; raise :class:`InvalidInput` otherwise (any version)."""
    if precision == "int8" and not has_qdq:
        raise InvalidInput(
            "an INT8 engine is built from an explicitly quantized (Q/DQ) ONNX: make one with `deploykit export MODEL "
            "--int8 --calib-data D` (real calibration data; deploykit never calibrates on random data)"
        )

def select_precision_plan(
    precision: str,
    tensorrt_version: str | Sequence[int],
    *,
    onnx_precision: str,
    has_qdq: bool,
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

    def plan(path: str, strong: bool, flags: tuple[str, ...], expect: str | None, note: str) -> PrecisionPlan:
        return PrecisionPlan(p, path, strong, flags, expect, v, note)

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
    # Explicit quantization only: TensorRT 11 removed implicit INT8 (IInt8Calibrator, BuilderFlag.INT8; 10.x->11.x
    # migration guide), and on 10.x a strongly typed network takes a Q/DQ graph as it is (the Q/DQ nodes set the
    # int8 regions; "Explicit Quantization" in the 10.x developer guide). One route for both.
    refuse_int8_without_qdq(p, has_qdq=has_qdq)
    return plan("strong-typing", True, (), "int8", f"Q/DQ graph, strongly typed (TensorRT {vs}): scales come from the ONNX")

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
