"""The manifest next to every engine deploykit builds: where it lives, reading it, and whether the engine can run here.

An engine (plan) is valid only for the TensorRT version and GPU it was built on; the manifest records both, and
:func:`load_engine_manifest` refuses an engine built elsewhere before TensorRT ever deserializes it (an engine is
executable code: TensorRT 11.x migration guide, "Engine Deserialization and the Trust Boundary").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit._io import read_manifest
from deploykit._io import sha256_file as sha256_file  # the engine pair is hashed like the ONNX one
from deploykit.backends.tensorrt import runtime as _rt
from deploykit.backends.tensorrt.runtime import import_tensorrt
from deploykit.errors import ArtifactError

MANIFEST_SCHEMA = "deploykit.tensorrt-engine"

MANIFEST_VERSION = 1

ENGINE_SUFFIX = ".engine"

def engine_manifest_path(engine_path: str | os.PathLike[str]) -> Path:
    """The manifest that sits next to an engine: ``resnet18-fp16.engine`` -> ``resnet18-fp16.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")

@dataclass(frozen=True)
class EngineArtifact:
    """A built TensorRT engine on disk and its manifest (also written as JSON next to it)."""

    path: Path
    manifest_path: Path
    manifest: dict[str, Any]

def check_engine_compatibility(
    manifest: Mapping[str, Any], *, tensorrt_version: str, gpu_name: str, compute_capability: str
) -> None:
    """Raise :class:`ArtifactError` naming both sides when an engine was built for another GPU or TensorRT.

    Engines (plans) are valid only for the exact TensorRT version (major.minor.patch.build) and GPU they were
    built on, unless built version/hardware compatible (TensorRT "Support Policies": semantic versioning does
    not extend to serialized objects). A different GPU model with the same compute capability is refused too:
    tactics are timed and chosen for one GPU.
    """
    built_trt = str(manifest.get("tensorrt", {}).get("version", "?"))
    gpu = manifest.get("gpu", {}) or {}
    built_gpu, built_cc = str(gpu.get("name", "?")), str(gpu.get("compute_capability", "?"))
    problems = []
    if built_trt != str(tensorrt_version):
        problems.append(f"it was built with TensorRT {built_trt} and this machine has TensorRT {tensorrt_version}")
    if built_gpu != gpu_name or built_cc != compute_capability:
        problems.append(
            f"it was built on {built_gpu} (compute capability {built_cc}) and this GPU is {gpu_name} "
            f"(compute capability {compute_capability})"
        )
    if problems:
        name = manifest.get("engine_file", "the engine")
        raise ArtifactError(
            f"{name} cannot run here: {'; '.join(problems)}. TensorRT engines are specific to one GPU and one "
            "TensorRT version: rebuild it on this machine (deploykit export MODEL --format trt)"
        )

def load_engine_manifest(path: str | os.PathLike[str], *, check: bool = True, device: str = "cuda") -> dict[str, Any]:
    """Read the manifest of an engine (give the ``.engine`` or its ``.engine.json``) and verify it.

    Checks the schema, that the engine file exists with the recorded size and sha256, and (``check=True``)
    that this machine's TensorRT version and GPU are the ones it was built for (:class:`ArtifactError` naming
    both otherwise; :class:`BackendUnavailable` when TensorRT or CUDA is missing).
    """
    p = Path(path)
    if p.suffix == ".json":
        manifest_path = p
        engine_path = p.with_name(p.name[: -len(".json")])
    else:
        engine_path, manifest_path = p, engine_manifest_path(p)
    if not manifest_path.is_file():
        raise ArtifactError(
            f"no manifest {manifest_path} next to {engine_path}: deploykit runs engines it built (the manifest "
            "records the GPU and TensorRT version an engine is valid for)"
        )
    manifest = read_manifest(manifest_path, MANIFEST_SCHEMA, MANIFEST_VERSION, "TensorRT engine")
    if not engine_path.is_file():
        raise ArtifactError(f"engine file {engine_path} (named by {manifest_path}) is missing")
    from deploykit._io import check_pair, folder_lock

    with folder_lock(engine_path.parent, shared=True):  # not while a build swaps the pair in
        matched = check_pair(engine_path, manifest, sha_key="engine_sha256", size_key="engine_bytes")
    if matched is None:
        raise ArtifactError(f"engine file {engine_path} does not match its manifest (size or sha256 differ): rebuild it")
    manifest = matched
    if check:
        trt = import_tensorrt()
        gpu = _rt.current_gpu(device)
        check_engine_compatibility(
            manifest, tensorrt_version=str(trt.__version__), gpu_name=gpu.name, compute_capability=gpu.compute_capability
        )
    return manifest
