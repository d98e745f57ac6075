"""Ceilings measured on the device itself: DRAM bandwidth (a large device-to-device copy) and matmul
throughput per precision. Cached per GPU, driver-independent torch/CUDA build, so they are measured once.

The copy moves ``2 x nbytes`` (read + write) per call; the matmul is ``n x n x n`` (``2 n^3`` FLOPs). fp32
is measured with TF32 off, tf32 with it on. All timing uses :class:`deploykit.bench.timing.CudaEventTimer`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deploykit._io import atomic_write_json
from deploykit.backends.math_mode import torch_math
from deploykit.errors import BackendUnavailable
from deploykit.precision import Precision

CEILINGS_SCHEMA_VERSION = 1
MATMUL_DTYPES = Precision.names(Precision.FP32, Precision.TF32, Precision.FP16, Precision.BF16)


@dataclass(frozen=True)
class Ceilings:
    """What the device really reaches: copy bandwidth in GB/s (10^9 B/s) and matmul TFLOP/s per precision."""

    device_name: str
    copy_gbs: float
    matmul_tflops: Mapping[str, float]
    copy_bytes: int
    matmul_n: int
    torch_version: str
    cuda_version: str | None

    def peak_flops(self, precision: str) -> float | None:
        """Measured matmul FLOP/s for ``precision`` (int8 is not measured: ``None``)."""
        v = self.matmul_tflops.get(precision)
        return v * 1e12 if v is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": CEILINGS_SCHEMA_VERSION, **asdict(self), "matmul_tflops": dict(self.matmul_tflops)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ceilings:
        return cls(
            device_name=d["device_name"], copy_gbs=float(d["copy_gbs"]), matmul_tflops=dict(d["matmul_tflops"]),
            copy_bytes=int(d["copy_bytes"]), matmul_n=int(d["matmul_n"]), torch_version=d["torch_version"],
            cuda_version=d.get("cuda_version"),
        )


def cache_path(device_name: str, torch_version: str, cache_dir: Path | None = None) -> Path:
    """Cache file for one GPU model and torch build: ``<cache>/ceilings/<gpu>-torch<version>.json``."""
    from deploykit.bench.cache import default_cache_dir

    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{device_name}-torch{torch_version}")
    return (cache_dir or default_cache_dir()) / "ceilings" / f"{safe}.json"


def load_cached(path: Path) -> Ceilings | None:
    """The cached ceilings, or ``None`` when the file is missing, unreadable or of another schema."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("schema_version") != CEILINGS_SCHEMA_VERSION:
        return None
    try:
        return Ceilings.from_dict(d)
    except (KeyError, TypeError, ValueError):
        return None


def _median_ms(fn: Any, n: int, device: Any) -> float:
    """Median of ``n`` calls timed with events on ``device``'s current stream (the work is enqueued there: the
    caller made ``device`` current)."""
    import torch

    from deploykit.bench.timing import CudaEventTimer, median

    stream = torch.cuda.current_stream(device)
    for _ in range(3):
        fn()
    torch.cuda.synchronize(device)
    return median(CudaEventTimer(stream).time(fn, n))


def selected_device(device: str | Any = "cuda") -> Any:
    """``"cuda"`` / ``"cuda:N"`` / a ``torch.device`` -> the ``torch.device`` with its index filled in (the current
    device for a bare ``"cuda"``), so that every stream, event and synchronization names the same GPU."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        raise BackendUnavailable(f"ceilings are measured on a CUDA device, not {dev}")
    return dev if dev.index is not None else torch.device("cuda", torch.cuda.current_device())


def measure_ceilings(
    device: str = "cuda", *, copy_bytes: int = 1 << 30, matmul_n: int = 8192, iterations: int = 20
) -> Ceilings:
    """Measure the copy bandwidth and matmul throughput of ``device`` (a CUDA device)."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("measuring ceilings needs a CUDA GPU and none is available")
    dev = selected_device(device)
    with torch.cuda.device(dev):  # kernels, streams and events all on the selected GPU
        src = torch.empty(copy_bytes // 4, dtype=torch.float32, device=dev)
        dst = torch.empty_like(src)
        copy_ms = _median_ms(lambda s=src, d=dst: d.copy_(s), iterations, dev)
        del src, dst
        tflops: dict[str, float] = {}
        try:
            for prec in MATMUL_DTYPES:
                dtype = Precision(prec).torch_dtype
                with torch_math(tf32=prec == "tf32"):  # fp32: true fp32 (deploykit.backends.math_mode)
                    a = torch.randn(matmul_n, matmul_n, device=dev, dtype=dtype)
                    b = torch.randn(matmul_n, matmul_n, device=dev, dtype=dtype)
                    ms = _median_ms(lambda a=a, b=b: torch.mm(a, b), max(5, iterations // 2), dev)
                tflops[prec] = 2 * matmul_n**3 / (ms / 1e3) / 1e12
                del a, b
        finally:
            torch.cuda.empty_cache()
    return Ceilings(
        device_name=torch.cuda.get_device_name(dev),
        copy_gbs=2 * copy_bytes / (copy_ms / 1e3) / 1e9,
        matmul_tflops=tflops,
        copy_bytes=copy_bytes,
        matmul_n=matmul_n,
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
    )


def device_ceilings(device: str = "cuda", *, cache_dir: Path | None = None, refresh: bool = False) -> Ceilings:
    """The ceilings of ``device``: from the cache when present, else measured and cached."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("measured ceilings need a CUDA GPU and none is available")
    dev = selected_device(device)
    path = cache_path(torch.cuda.get_device_name(dev), torch.__version__, cache_dir)
    cached = None if refresh else load_cached(path)
    if cached is not None:
        return cached
    result = measure_ceilings(str(dev))
    atomic_write_json(path, result.to_dict())
    return result
