"""The manifest written next to every engine, and the engine + manifest pair written as one artifact.

Reading a manifest and checking it against this machine is run-time work and lives in
:mod:`deploykit.backends.tensorrt.manifest`; this module only writes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploykit._io import commit_pair, make_temporary, write_temporary
from deploykit.backends.tensorrt.executor import EngineExecutor, ProfileShape
from deploykit.backends.tensorrt.manifest import (
    MANIFEST_SCHEMA,
    MANIFEST_VERSION,
    EngineArtifact,
    engine_manifest_path,
)
from deploykit.backends.tensorrt.runtime import GpuInfo
from deploykit.export.tensorrt.onnx_info import OnnxInfo
from deploykit.export.tensorrt.precision import PrecisionPlan


def _io(executor: EngineExecutor) -> dict[str, list[dict[str, Any]]]:
    def rec(t: Any) -> dict[str, Any]:
        return {"name": t.name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}

    return {"inputs": [rec(t) for t in executor.inputs], "outputs": [rec(t) for t in executor.outputs]}


def engine_manifest(
    *,
    engine_path: Path,
    plan_bytes: bytes,
    info: OnnxInfo,
    plan: PrecisionPlan,
    gpu: GpuInfo,
    shapes: Mapping[str, ProfileShape],
    executor: EngineExecutor,
    build: Mapping[str, Any],
    precision: Mapping[str, Any],
    layer_info: Mapping[str, Any],
    validation: Mapping[str, Any],
    tf32: bool,
) -> dict[str, Any]:
    """The manifest of a built engine: what it was built from, with what, for which GPU, and how it validated.

    ``build`` holds ``build_time_s``, ``tensorrt_version`` and ``builder`` (workspace, optimization level, timing
    cache, warnings); ``precision`` the observed precision figures and the calibration record.
    """
    from deploykit._env import environment

    return {
        "schema": MANIFEST_SCHEMA,
        "schema_version": MANIFEST_VERSION,
        "engine_file": engine_path.name,
        "engine_bytes": len(plan_bytes),
        "engine_sha256": hashlib.sha256(plan_bytes).hexdigest(),
        "model": info.model,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_time_s": build["build_time_s"],
        "source_onnx": {
            "path": os.fspath(info.path),
            "sha256": info.sha256,
            "external_data": [{"file": f, "sha256": h} for f, h in info.external_data],
            "manifest": os.fspath(info.manifest_path) if info.manifest_path else None,
            "graph_precision": info.precision,
            "qdq": info.has_qdq,
        },
        "tensorrt": {
            "version": build["tensorrt_version"],
            "major": plan.tensorrt_version[0],
            "minor": plan.tensorrt_version[1],
        },
        "gpu": gpu.to_dict(),
        "precision": {**plan.to_dict(), "tf32": tf32, **precision},
        # What an fp32 layer of this engine computes in: IEEE fp32 (TF32 flag cleared, deploykit's choice) or TF32.
        "fp32_math": "tf32" if tf32 else "ieee",
        "profile": {n: s.to_dict() for n, s in shapes.items()},
        "io": _io(executor),
        "builder": dict(build["builder"]),
        "layers": {"schema": layer_info["schema"], "num_layers": layer_info["num_layers"]},
        "validation": dict(validation),
        "environment": environment(str(executor.device)),
    }


def write_engine(engine_path: Path, plan_bytes: bytes, manifest: dict[str, Any]) -> EngineArtifact:
    """Write the engine and its manifest as one pair: every crash point leaves the old pair or the new one."""
    manifest_path = engine_manifest_path(engine_path)
    tmp = make_temporary(engine_path)
    try:
        write_temporary(tmp, plan_bytes, engine_path)
        commit_pair(tmp, engine_path, manifest_path, manifest, sha_key="engine_sha256", size_key="engine_bytes")
    finally:
        tmp.unlink(missing_ok=True)
    return EngineArtifact(path=engine_path, manifest_path=manifest_path, manifest=manifest)
