"""fp32 math on CUDA: deploykit's choice is **true fp32** (IEEE single precision) everywhere.

On Ampere and later GPUs an "fp32" convolution or matmul may round its inputs to TF32 (10 mantissa bits)
unless told not to, and each library has its own switch and its own default:

==================  =========================================  =================  ======================
library             switch                                     default            deploykit's fp32
==================  =========================================  =================  ======================
torch matmul        ``torch.backends.cuda.matmul``             IEEE fp32          IEEE (``"ieee"``)
torch cuDNN conv    ``torch.backends.cudnn.conv`` (and rnn)    **TF32**           IEEE (``"ieee"``)
ONNX Runtime CUDA   provider option ``use_tf32``               **1 (TF32)**       ``use_tf32=0``
TensorRT builder    ``BuilderFlag.TF32``                       **set (TF32)**     flag cleared
==================  =========================================  =================  ======================

Emulating TF32's input rounding on the CPU gives output errors of 5e-4 (resnet18) to 1e-3 (vgg16) of the
output scale -- 5 to 10 times the fp32 tolerance (1e-4) every fp32 export, engine and benchmark cell is judged
by. So either everything runs in TF32 with a TF32-sized tolerance, or nothing does. deploykit chooses true fp32
for every fp32 reference and every fp32 artifact: the eager reference of export validation, the bench sweep
(reference *and* eager / compile cells), ONNX Runtime CUDA sessions and TensorRT engines. Manifests and bench
results record it as ``fp32_math: "ieee"`` (see :func:`fp32_math_record`). fp16 / bf16 are unaffected.

torch 2.9+ has per-operator ``fp32_precision`` strings ("ieee" / "tf32" / "none"); mixing them with the legacy
``allow_tf32`` booleans makes torch raise when a legacy flag is *read* ("have used a mix of the legacy and new
APIs"). This module therefore uses the new API when it exists (never reading the legacy flags then), and the
legacy booleans only on an older torch. Everything here only sets flags: it runs on a CPU-only machine too,
which is how the tests check it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

#: The fp32 math deploykit uses on CUDA (recorded in manifests and bench regimes as ``fp32_math``).
FP32_MATH = "ieee"

#: ONNX Runtime CUDA provider options for true fp32 (the CUDA EP's ``use_tf32`` defaults to 1).
ORT_CUDA_FP32_OPTIONS: dict[str, str] = {"use_tf32": "0"}

#: The torch operators with a TF32 switch on CUDA.
TORCH_OPS = ("matmul", "conv", "rnn")


def _has_new_api() -> bool:
    getter = getattr(torch._C, "_get_fp32_precision_getter", None)
    if getter is None:
        return False
    try:
        getter("cuda", "conv")
    except Exception:
        return False
    return True


def _get(op: str) -> str:
    return str(torch._C._get_fp32_precision_getter("cuda", op))


def _legacy_cudnn() -> bool | None:
    """The legacy ``cudnn.allow_tf32`` boolean, or ``None`` when the flags are already a mix torch refuses to read."""
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:
        return None


def _set(op: str, value: str) -> None:
    torch._C._set_fp32_precision_setter("cuda", op, value)


def torch_fp32_math() -> dict[str, str]:
    """The effective fp32 math of torch's CUDA matmuls, cuDNN convolutions and RNNs: ``"ieee"`` or ``"tf32"``.

    Reads only; never raises on a mix of the legacy and new flags. An operator set to ``"none"`` inherits its
    backend's setting, then the generic one; ``"none"`` all the way up is IEEE for convolutions and RNNs (what
    the legacy ``cudnn.allow_tf32 = False`` leaves) and follows ``torch.get_float32_matmul_precision()`` for
    matmuls.
    """
    if not _has_new_api():  # torch < 2.9: the legacy booleans are the only switches
        cudnn = bool(torch.backends.cudnn.allow_tf32)
        return {
            "matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee",
            "conv": "tf32" if cudnn else "ieee",
            "rnn": "tf32" if cudnn else "ieee",
        }
    state: dict[str, str] = {}
    for op in TORCH_OPS:
        value = _get(op)
        if value == "none":
            value = _get("all")
        if value == "none":
            value = str(torch._C._get_fp32_precision_getter("generic", "all"))
        if value == "none":
            if op == "matmul":
                value = "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
            else:
                value = "ieee"
        state[op] = "tf32" if value == "tf32" else "ieee"
    return state


@contextlib.contextmanager
def torch_math(tf32: bool = False) -> Iterator[dict[str, str]]:
    """Set torch's CUDA matmuls, cuDNN convolutions and RNNs to IEEE fp32 (``tf32=False``, deploykit's fp32) or
    to TF32 (``tf32=True``, the ``tf32`` roofline column), and restore the exact previous settings afterwards.

    Yields the effective state (:func:`torch_fp32_math`). Flags only: harmless on a machine without CUDA.

    >>> with torch_math() as state:
    ...     state
    {'matmul': 'ieee', 'conv': 'ieee', 'rnn': 'ieee'}
    """
    want = "tf32" if tf32 else "ieee"
    if _has_new_api():
        saved = {op: _get(op) for op in TORCH_OPS}
        saved_cudnn = _legacy_cudnn()
        try:
            # The legacy cuDNN boolean first, then the strings: torch checks that boolean against the conv and RNN
            # strings whenever a legacy flag is read (torch.export and dynamo read them), and raises on a mismatch.
            torch.backends.cudnn.allow_tf32 = tf32
            for op in TORCH_OPS:
                _set(op, want)
            yield torch_fp32_math()
        finally:
            if saved_cudnn is not None:
                torch.backends.cudnn.allow_tf32 = saved_cudnn
            for op, value in saved.items():
                _set(op, value)
        return
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        yield torch_fp32_math()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def true_fp32() -> contextlib.AbstractContextManager[dict[str, str]]:
    """:func:`torch_math` with TF32 off: the context every fp32 reference and fp32 cell on CUDA runs in."""
    return torch_math(tf32=False)


def ort_cuda_options(precision: str = "fp32") -> dict[str, str]:
    """ONNX Runtime CUDA provider options for ``precision``'s math: ``use_tf32=0`` for every session.

    TF32 only touches fp32 nodes; an fp16 graph's fp32 islands (inserted Casts) are fp32 too, so the option is
    set whatever the graph's precision.
    """
    del precision  # the same options for every precision: fp32 nodes compute in fp32
    return dict(ORT_CUDA_FP32_OPTIONS)


def clear_tensorrt_tf32(config: Any, trt: Any) -> None:
    """Clear TensorRT's ``BuilderFlag.TF32`` (set by default; still present in TensorRT 11) on a builder config."""
    config.clear_flag(trt.BuilderFlag.TF32)


def fp32_math_record(device: str | torch.device) -> dict[str, Any]:
    """What fp32 meant for a result on ``device``, for a manifest or a bench regime (``fp32_math``)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return {"policy": FP32_MATH, "device_type": dev.type, "note": "no TF32 on this device"}
    return {
        "policy": FP32_MATH,
        "device_type": "cuda",
        "torch": torch_fp32_math(),
        "onnxruntime_cuda": dict(ORT_CUDA_FP32_OPTIONS),
        "tensorrt": "BuilderFlag.TF32 cleared",
    }


__all__ = [
    "FP32_MATH",
    "ORT_CUDA_FP32_OPTIONS",
    "TORCH_OPS",
    "clear_tensorrt_tf32",
    "fp32_math_record",
    "ort_cuda_options",
    "torch_fp32_math",
    "torch_math",
    "true_fp32",
]
