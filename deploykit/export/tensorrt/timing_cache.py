"""TensorRT timing caches: one file per GPU, CUDA and TensorRT version, loaded into a builder config and saved after
the build."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from deploykit._io import atomic_write_bytes


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


def attach_timing_cache(config: Any, path: Path) -> dict[str, Any]:
    """Load the cache at ``path`` (if any) into a builder config; returns its record for the manifest.

    API: ``config.create_timing_cache(bytes)`` (``b""`` = empty) + ``config.set_timing_cache(cache,
    ignore_mismatch=False)``; after the build ``config.get_timing_cache().serialize()``. 8.0+/10.x/11.x
    (Polygraphy backend/trt/config.py and loader.py). ``ignore_mismatch=False``: a cache from another device or
    version is refused, and the build starts from an empty one.
    """
    loaded = 0
    note = "created"
    old = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(old)
    except Exception:  # a truncated or foreign file: start empty rather than fail the build
        cache = None
    if cache is None:
        cache, note = config.create_timing_cache(b""), "unreadable, started empty"
    elif old:
        loaded, note = len(old), "reused"
    if not config.set_timing_cache(cache, ignore_mismatch=False) and old:
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        loaded, note = 0, "did not match this GPU/TensorRT, started empty"
    return {"path": os.fspath(path), "status": note, "loaded_bytes": loaded}


def save_timing_cache(config: Any, path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write the config's (grown) timing cache back to ``path``; returns ``record`` with ``saved_bytes``."""
    data = bytes(config.get_timing_cache().serialize())
    atomic_write_bytes(path, data)
    return {**record, "saved_bytes": len(data)}
