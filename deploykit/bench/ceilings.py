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
from deploykit.errors import BackendUnavailable

CEILINGS_SCHEMA_VERSION = 1
MATMUL_DTYPES = ("fp32", "tf32", "fp16", "bf16")


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


def _median_ms(fn: Any, n: int) -> float:
    import torch

    from deploykit.bench.timing import CudaEventTimer, median

    stream = torch.cuda.current_stream()
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    return median(CudaEventTimer(stream).time(fn, n))


def measure_ceilings(
    device: str = "cuda", *, copy_bytes: int = 1 << 30, matmul_n: int = 8192, iterations: int = 20
) -> Ceilings:
    """Measure the copy bandwidth and matmul throughput of ``device`` (a CUDA device)."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("measuring ceilings needs a CUDA GPU and none is available")
    dev = torch.device(device)
    src = torch.empty(copy_bytes // 4, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    copy_ms = _median_ms(lambda s=src, d=dst: d.copy_(s), iterations)
    del src, dst
    tflops: dict[str, float] = {}
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        for prec in MATMUL_DTYPES:
            dtype = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[prec]
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
            a = torch.randn(matmul_n, matmul_n, device=dev, dtype=dtype)
            b = torch.randn(matmul_n, matmul_n, device=dev, dtype=dtype)
            ms = _median_ms(lambda a=a, b=b: torch.mm(a, b), max(5, iterations // 2))
            tflops[prec] = 2 * matmul_n**3 / (ms / 1e3) / 1e12
            del a, b
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
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
    path = cache_path(torch.cuda.get_device_name(torch.device(device)), torch.__version__, cache_dir)
    cached = None if refresh else load_cached(path)
    if cached is not None:
        return cached
    result = measure_ceilings(device)
    atomic_write_json(path, result.to_dict())
    return result
