"""Where TensorRT timing caches live: one file per GPU, CUDA and TensorRT version."""

from __future__ import annotations

import os
import re
from pathlib import Path


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
