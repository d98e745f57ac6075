"""The optimization profile (min / opt / max shape per input) from the ONNX input dims and the batch options."""

from __future__ import annotations

from collections.abc import Sequence

from deploykit.backends.tensorrt.executor import ProfileShape
from deploykit.errors import InvalidInput
from deploykit.export.tensorrt.onnx_info import TensorSpec

#: Default optimization-profile batch sizes for a dynamic-batch ONNX when none are given.
DEFAULT_MIN_BATCH = 1

DEFAULT_OPT_BATCH = 8

DEFAULT_MAX_BATCH = 32

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
