"""What a precision means, in one place: :class:`Precision`.

Each member knows its element size, its torch / numpy / ONNX / TensorRT data types, the tolerance an output
computed in it is validated with, the key of the device peak tables (roofline) and the ONNX graph a TensorRT
engine of that precision is built from. Command lines parse a precision once (:meth:`Precision.parse`) and pass
the member down; it *is* a ``str`` (``Precision.FP16 == "fp16"``, it formats and serialises as ``"fp16"``), so
code and files that hold plain names keep working.

>>> p = Precision.parse("fp16")
>>> p.element_bytes, p.tolerance.rtol, p.onnx_graph
(2, 0.01, 'fp16')

Tolerances are relative to the output's scale (``max|out - ref| <= atol + rtol * max|ref|``, see
:mod:`deploykit.export.validate`); the reference is eager PyTorch in fp32 with TF32 off. fp32: measured errors on
the zoo are below 2e-6 of the output scale (other summation orders); 1e-4 leaves room for deep nets and other
CPUs while a real bug (a wrong constant, a missing layer) is orders of magnitude above it. tf32 and fp16 keep 10
mantissa bits: rounding input, weights and output to fp16 alone costs about 7e-4 of the scale on the zoo;
1e-2 leaves room for reduced-precision accumulation on a GPU. bf16 keeps 7 bits, so 8x looser; int8 is judged
loosely here and by top-1 agreement on real data. ``atol`` is 0: outputs of random-init models can be 1e-14 in
size, and any fixed floor could exceed a whole output and pass whatever the graph computes. ``dep_rtol``,
``normal_min`` and ``noise`` serve the check of the input-dependent part (:mod:`deploykit.metrics`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploykit.errors import InvalidInput

if TYPE_CHECKING:
    import torch


#: The smallest normal values of fp32 and fp16 / bf16 (below them a value loses precision, then becomes 0).
FP32_MIN_NORMAL = 2.0**-126
FP16_MIN_NORMAL = 2.0**-14


@dataclass(frozen=True)
class Tolerance:
    """Tolerances of one precision, relative to the reference's scale (the verdict that uses them:
    :func:`deploykit.metrics.judge_outputs`).

    ``rtol``: the largest ``max|A - R|`` allowed, as a share of ``max|R|`` (``max_abs_error <= atol + rtol *
    ref_max_abs``; element-wise use of these numbers is *not* what they were set for). ``atol``: an absolute floor,
    0 in the precision table (a floor larger than a random-init model's 1e-14 outputs would let any graph pass);
    kept for callers that compare values of a known scale. ``dep_rtol``: the largest relative L2 error of the
    input-dependent part of the outputs (outputs minus their mean over the inputs). ``normal_min``: the smallest
    normal value of the precision; a reference below it cannot be checked. ``noise``: the rounding error the
    precision is expected to cause, as a share of ``max|R|``; an input-dependent part so small that this much
    noise could move it by ``dep_rtol`` cannot be checked either.
    """

    atol: float
    rtol: float
    dep_rtol: float = 5e-3
    normal_min: float = FP32_MIN_NORMAL
    noise: float = 1e-5

    def allowed(self, ref_max_abs: float) -> float:
        """The largest ``max_abs_error`` that passes for a reference of magnitude ``ref_max_abs``."""
        return self.atol + self.rtol * ref_max_abs

    def to_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol, "dep_rtol": self.dep_rtol, "normal_min": self.normal_min,
                "noise": self.noise}


@dataclass(frozen=True)
class _Facts:
    element_bytes: int
    torch_name: str
    numpy_name: str | None  # numpy has no bfloat16
    onnx_name: str  # onnx.TensorProto data type name
    tensorrt_name: str  # tensorrt.DataType member
    tolerance: Tolerance
    peak_key: str
    onnx_graph: str
    is_float: bool = True


class Precision(str, enum.Enum):
    """A numeric precision: ``fp32``, ``tf32`` (fp32 storage, TF32 matmuls and convolutions), ``fp16``,
    ``bf16``, ``int8``. A ``str``: compares, hashes, formats and serialises as its name."""

    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    # -- facts
    @property
    def _facts(self) -> _Facts:
        return _FACTS[self.value]

    @property
    def element_bytes(self) -> int:
        """Bytes per stored element (tf32 is stored as fp32)."""
        return self._facts.element_bytes

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype tensors of this precision are stored in (imports torch)."""
        import torch

        dtype: torch.dtype = getattr(torch, self._facts.torch_name)
        return dtype

    @property
    def numpy_dtype(self) -> Any:
        """The numpy dtype, or :class:`InvalidInput` for bf16 (numpy has none)."""
        import numpy as np

        if self._facts.numpy_name is None:
            raise InvalidInput(f"numpy has no {self.value} data type")
        return np.dtype(self._facts.numpy_name)

    @property
    def onnx_dtype(self) -> int:
        """The ``onnx.TensorProto`` element type (imports onnx)."""
        import onnx

        return int(getattr(onnx.TensorProto, self._facts.onnx_name))

    @property
    def tensorrt_name(self) -> str:
        """The ``tensorrt.DataType`` member name (``"HALF"`` for fp16); TensorRT itself is not imported."""
        return self._facts.tensorrt_name

    @property
    def tolerance(self) -> Tolerance:
        """The validation tolerance of an output computed in this precision against eager fp32 (TF32 off)."""
        return self._facts.tolerance

    @property
    def peak_key(self) -> str:
        """The key of :class:`deploykit.profile.devices.DevicePreset`'s peak tables (roofline)."""
        return self._facts.peak_key

    @property
    def onnx_graph(self) -> Precision:
        """The precision of the ONNX graph a TensorRT engine of this precision is built from: an fp16 engine
        from an fp16 graph (strongly typed TensorRT 10.12+/11); bf16 from the fp32 one, int8 from the Q/DQ graph quantized from it (deploykit.export.int8)."""
        return Precision(self._facts.onnx_graph)

    @property
    def is_float(self) -> bool:
        return self._facts.is_float

    # -- parsing
    @classmethod
    def parse(
        cls, value: str | Precision, *, allowed: Iterable[str] | None = None, what: str = "precision"
    ) -> Precision:
        """``"fp16"`` / ``"FP16"`` / a member -> the member; anything else (or a name not in ``allowed``) is
        :class:`InvalidInput` naming the choices: ``unknown precision 'fp8'; choose from fp32, fp16``."""
        choices = [p.value for p in cls] if allowed is None else [str(a) for a in allowed]
        name = str(value.value if isinstance(value, Precision) else value).strip().lower()
        if name not in choices:
            raise InvalidInput(f"unknown {what} {str(value)!r}; choose from {', '.join(choices)}")
        return cls(name)

    @classmethod
    def parse_list(
        cls, text: str | Iterable[str | Precision], *, allowed: Iterable[str] | None = None, what: str = "precision"
    ) -> tuple[Precision, ...]:
        """A comma list (or an iterable of names) -> members, duplicates dropped, order kept."""
        items = [s for s in (text.split(",") if isinstance(text, str) else text) if str(s).strip()]
        if not items:
            raise InvalidInput(f"give at least one {what}")
        allowed = None if allowed is None else tuple(str(a) for a in allowed)
        return tuple(dict.fromkeys(cls.parse(s, allowed=allowed, what=what) for s in items))

    @classmethod
    def names(cls, *members: Precision) -> tuple[str, ...]:
        """The names of ``members`` (all members when none are given), for help texts and messages."""
        return tuple(p.value for p in (members or tuple(cls)))

    def __repr__(self) -> str:
        # as the plain name: messages written as f"{precision!r}" read the same for a member and a str
        return repr(str(self.value))


_ATOL = 0.0  # no absolute floor: see Tolerance
# dep_rtol 0.5% for fp32 / tf32 / fp16: a 1% error of the input-dependent part never passes. noise: the rounding
# error a correct artifact can show, as a share of the output's scale: fp32 5x the 2e-6 measured on the zoo; fp16
# half its tolerance (7e-4 measured on the CPU, where only I/O and weights are fp16; fp16 accumulation on a GPU
# adds to it); bf16, int8 their tolerance. A difference of the input-dependent part that this noise can explain is
# inconclusive, not failed: with these numbers only fp32 can fail on it.
_FACTS: dict[str, _Facts] = {
    "fp32": _Facts(4, "float32", "float32", "FLOAT", "FLOAT", Tolerance(_ATOL, 1e-4, 5e-3, FP32_MIN_NORMAL, 1e-5),
                   "fp32", "fp32"),
    "tf32": _Facts(4, "float32", "float32", "FLOAT", "FLOAT", Tolerance(_ATOL, 1e-2, 5e-3, FP32_MIN_NORMAL, 5e-3),
                   "tf32", "fp32"),
    "fp16": _Facts(2, "float16", "float16", "FLOAT16", "HALF", Tolerance(_ATOL, 1e-2, 5e-3, FP16_MIN_NORMAL, 5e-3),
                   "fp16", "fp16"),
    "bf16": _Facts(2, "bfloat16", None, "BFLOAT16", "BF16", Tolerance(_ATOL, 8e-2, 4e-2, FP32_MIN_NORMAL, 8e-2),
                   "bf16", "fp32"),
    "int8": _Facts(1, "int8", "int8", "INT8", "INT8", Tolerance(_ATOL, 1.5e-1, 1e-1, FP32_MIN_NORMAL, 1.5e-1),
                   "int8", "fp32", is_float=False),
}

#: Precisions a model can be run in by torch (eager, compile) and benchmarked.
TORCH_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.BF16)

__all__ = ["TORCH_PRECISIONS", "Precision", "Tolerance"]
