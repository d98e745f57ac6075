"""Real INT8 calibration data (``.npy`` files) and the TensorRT 10.x entropy calibrator that feeds it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploykit.backends.tensorrt import runtime as _rt
from deploykit.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import torch


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
            _rt.current_stream(device).synchronize()  # TensorRT reads it on its own stream
            self.batches_fed += 1
            return [int(self._buffer.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return None  # always calibrate from the data given, never from a stale cache

        def write_calibration_cache(self, cache: Any) -> None:
            self.cache_bytes = len(bytes(cache))

    return _Calibrator()
