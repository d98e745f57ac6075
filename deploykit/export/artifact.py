"""An exported ONNX file and its manifest as one artifact: the names, committing the pair, reading it back.

:func:`publish_graph` commits a validated graph with its manifest (every crash point leaves the old pair or the
new one); :func:`load_onnx_artifact` reads a pair and refuses one that does not belong together, was modified
after export or failed validation. The exporter is :mod:`deploykit.export.onnx`, which re-exports these names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit._io import check_pair, commit_pair, folder_lock, read_manifest
from deploykit.errors import ArtifactError, ValidationError

__all__ = [
    "MANIFEST_SCHEMA",
    "MANIFEST_VERSION",
    "OnnxArtifact",
    "load_onnx_artifact",
    "manifest_path_for",
    "publish_graph",
]

MANIFEST_SCHEMA = "deploykit.onnx-manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class OnnxArtifact:
    """A validated ONNX file on disk, its manifest's path and the manifest's content."""

    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


def manifest_path_for(path: str | os.PathLike[str]) -> Path:
    """``out/resnet18.onnx`` -> ``out/resnet18.onnx.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def publish_graph(tmp: Path, final: Path, failed: Path, manifest: dict[str, Any], *, failure: str | None) -> None:
    """Commit the validated graph ``tmp`` and its manifest as one pair under ``final`` (every crash point leaves
    the old pair or the new one) and remove an earlier ``failed`` pair; or, when ``failure`` says why the
    validation failed, commit them as ``failed`` (kept for inspection, ``final`` untouched) and raise
    :class:`ValidationError` with that message."""
    if failure is not None:
        manifest["file"] = failed.name
        commit_pair(tmp, failed, manifest_path_for(failed), manifest, sha_key="sha256", size_key="bytes")
        raise ValidationError(failure)
    commit_pair(tmp, final, manifest_path_for(final), manifest, sha_key="sha256", size_key="bytes")
    with folder_lock(final.parent):
        for stale in (failed, manifest_path_for(failed)):
            stale.unlink(missing_ok=True)


def load_onnx_artifact(path: str | os.PathLike[str]) -> OnnxArtifact:
    """Read the ONNX file at ``path`` with its manifest (``<path>.json``) and check they belong together.

    Raises :class:`ArtifactError` when either file is missing, the manifest is unreadable or of an unknown
    schema, the file's sha256 differs from the manifest's (modified or replaced after export), or the manifest
    records a failed validation.
    """
    p = Path(path)
    if p.suffix == ".json" and p.name.endswith(".onnx.json"):
        p = p.with_name(p.name[: -len(".json")])
    mpath = manifest_path_for(p)
    with folder_lock(p.parent, shared=True):  # not while an export swaps the pair in
        return _load_onnx_artifact(p, mpath)


def _load_onnx_artifact(p: Path, mpath: Path) -> OnnxArtifact:
    if not p.is_file():
        raise ArtifactError(f"ONNX file not found: {p}")
    if not mpath.is_file():
        raise ArtifactError(f"{p} has no manifest ({mpath} is missing); re-export it with `deploykit export`")
    manifest = read_manifest(mpath, MANIFEST_SCHEMA, MANIFEST_VERSION, "ONNX")
    if manifest.get("file") != p.name:
        raise ArtifactError(f"{mpath} describes {manifest.get('file')!r}, not {p.name!r}")
    matched = check_pair(p, manifest, sha_key="sha256", size_key="bytes")
    if matched is None:
        raise ArtifactError(
            f"{p} does not match its manifest (sha256 differs): it was modified or replaced after export"
        )
    manifest = matched
    validation = manifest.get("validation") or {}
    if validation.get("passed") is False:
        raise ArtifactError(f"{p} failed validation when it was exported; see {mpath}")
    return OnnxArtifact(p, mpath, manifest)
