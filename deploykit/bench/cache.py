"""Where the bench keeps what is expensive to make: ONNX exports, TensorRT engines and timing caches, and the
``torch.compile`` (Inductor) cache, so that a second run of the same cell reuses them.

Layout under the cache root (``$DEPLOYKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deploykit``, else
``~/.cache/deploykit``)::

    onnx/<model>-<shape>-<precision>-b<batch>-<hash>/    model.onnx, manifest, bench-cache.json
    trt/<model>-<shape>-<precision>-b<batch>-<hash>/     engine, manifest, bench-cache.json
    tensorrt/timing-<gpu>-sm<cc>-cuda<v>-trt<v>.cache    TensorRT timing cache (GPU, CUDA, TensorRT specific)
    inductor/                                            TORCHINDUCTOR_CACHE_DIR (FX graph, autotuning, Triton)

The hash covers everything that changes the artifact (model, shape, classes, precision, batch, seed, torch and
deploykit versions, GPU for engines); ``bench-cache.json`` is written last, so a folder without it is an
interrupted build and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit._cache import cache_root
from deploykit._io import atomic_write_json, make_temporary
from deploykit.errors import ArtifactError, first_line

RECORD = "bench-cache.json"


def default_cache_dir() -> Path:
    """``$DEPLOYKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deploykit``, else ``~/.cache/deploykit``."""
    return cache_root()


def slug(text: str) -> str:
    """A file-name-safe lower-case version of ``text`` (``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``)."""
    s = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return s or "x"


@dataclass(frozen=True)
class BenchCache:
    """The cache folder of one sweep (see the module docstring)."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None) -> BenchCache:
        return cls(Path(root).expanduser() if root else default_cache_dir())

    @property
    def inductor_dir(self) -> Path:
        return self.root / "inductor"

    def artifact_dir(self, kind: str, label: str, key: dict[str, Any]) -> Path:
        """``<root>/<kind>/<label>-<hash of key>``: one folder per distinct artifact."""
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return self.root / kind / f"{slug(label)}-{digest}"

    def writable_dir(self, kind: str, label: str, key: dict[str, Any]) -> tuple[Path, str | None]:
        """:meth:`artifact_dir`, created; when it cannot be created or written (a read-only cache, a file in the
        way) a fresh folder under the system's temporary directory instead, with a note saying so.

        A cache that cannot be written must not fail the cell forever: the artifact is made again, not cached.
        """
        folder = self.artifact_dir(kind, label, key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            make_temporary(folder / "probe", "").unlink()
            return folder, None
        except (OSError, ArtifactError) as exc:
            reason = first_line(exc) if isinstance(exc, OSError) else str(exc)
        fresh = Path(tempfile.mkdtemp(prefix=f"deploykit-cache-{folder.name[:40]}-"))
        return fresh, f"cache folder {folder} is not writable ({reason}); used a fresh temporary folder {fresh}"

    @staticmethod
    def lookup(folder: Path) -> dict[str, Any] | None:
        """The record of a finished artifact in ``folder`` whose files still exist, else ``None`` (also for a
        corrupt record: the artifact is made again and the record rewritten)."""
        rec = folder / RECORD
        try:
            data = json.loads(rec.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8, not JSON
            return None
        if not isinstance(data, dict):
            return None
        paths = [data.get("path"), data.get("manifest_path")]
        if not all(isinstance(p, str) and Path(p).exists() for p in paths):
            return None
        return dict(data)

    @staticmethod
    def record(folder: Path, data: dict[str, Any]) -> str | None:
        """Mark the artifact in ``folder`` finished (written last, atomically); a record that cannot be written
        leaves the artifact uncached (returns why) rather than failing the cell."""
        try:
            atomic_write_json(folder / RECORD, data)
        except ArtifactError as exc:
            return f"not cached: {exc}"
        return None
