"""What an engine build needs to know about its source ONNX file, read with ``onnx`` (no TensorRT)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploykit.backends.tensorrt.manifest import sha256_file
from deploykit.errors import ArtifactError, DeploykitError, InvalidInput

_ONNX_DTYPES = {
    "FLOAT": "float32",
    "FLOAT16": "float16",
    "BFLOAT16": "bfloat16",
    "DOUBLE": "float64",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FLOAT8E4M3FN": "float8_e4m3fn",
}

_FLOAT_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}

_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})

@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, dims (``int`` or a symbolic name for a dynamic dim), dtype name."""

    name: str
    dims: tuple[int | str, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dims": list(self.dims), "dtype": self.dtype}

@dataclass(frozen=True)
class OnnxInfo:
    """What ``build_engine`` needs to know about the source ONNX file, read with ``onnx`` (no TensorRT).

    ``precision`` is the dtype that holds most of the float weights (``"fp32"``, ``"fp16"``, ``"bf16"``);
    ``has_qdq`` says whether the graph is explicitly quantized (QuantizeLinear/DequantizeLinear nodes).
    ``model`` is the registered model name from the ONNX manifest, when there is one.
    """

    path: Path
    sha256: str
    external_data: tuple[tuple[str, str], ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    precision: str
    has_qdq: bool
    model: str | None = None
    manifest: dict[str, Any] | None = field(default=None, compare=False)
    manifest_path: Path | None = None

    @property
    def graph_tag(self) -> str:
        """``"int8"`` for a Q/DQ graph, else its float precision: what an engine built as-is computes in."""
        return "int8" if self.has_qdq else self.precision

def _dims_of(value_info: Any) -> tuple[int | str, ...]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return tuple(dims)

def _dtype_name(elem_type: int) -> str:
    import onnx

    name = onnx.TensorProto.DataType.Name(elem_type)
    return _ONNX_DTYPES.get(name, name.lower())

def _onnx_artifact_parts(onnx_like: Any) -> tuple[Path, dict[str, Any] | None, Path | None]:
    """Accept an ``OnnxArtifact`` (``path``, ``manifest_path``, ``manifest``) or a path to a ``.onnx`` file."""
    if hasattr(onnx_like, "path"):
        path = Path(onnx_like.path)
        manifest = getattr(onnx_like, "manifest", None)
        mpath = getattr(onnx_like, "manifest_path", None)
        return path, (dict(manifest) if manifest else None), (Path(mpath) if mpath else None)
    if not isinstance(onnx_like, (str, os.PathLike)):
        raise InvalidInput(f"expected an OnnxArtifact or a path to a .onnx file, got {type(onnx_like).__name__}")
    path = Path(onnx_like)
    # The ONNX exporter (deploykit.export.onnx, written concurrently) reads its own manifest; use it when present.
    try:
        from deploykit.export.onnx import load_onnx_artifact
    except ImportError:
        return path, None, None
    try:
        art = load_onnx_artifact(path)
    except (DeploykitError, OSError, ValueError, KeyError):
        return path, None, None  # a bare ONNX file without a deploykit manifest is fine
    return Path(art.path), dict(art.manifest), Path(art.manifest_path)

def inspect_onnx(onnx_like: Any) -> OnnxInfo:
    """Read the graph inputs/outputs, weight precision and Q/DQ presence of an ONNX file (or ``OnnxArtifact``).

    Only the graph is loaded (external weights are hashed, not read into memory). A missing or unreadable file
    raises :class:`ArtifactError`.
    """
    import onnx

    path, manifest, manifest_path = _onnx_artifact_parts(onnx_like)
    if not path.is_file():
        raise ArtifactError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for a corrupt file
        raise ArtifactError(f"cannot read ONNX file {path}: {type(exc).__name__}: {exc}") from None
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    inputs = tuple(
        TensorSpec(vi.name, _dims_of(vi), _dtype_name(vi.type.tensor_type.elem_type))
        for vi in graph.input
        if vi.name not in init_names
    )
    outputs = tuple(TensorSpec(vi.name, _dims_of(vi), _dtype_name(vi.type.tensor_type.elem_type)) for vi in graph.output)
    if not inputs:
        raise ArtifactError(f"ONNX file {path} has no graph inputs")

    # Precision: which float dtype holds most weight elements (Cast-wrapped fp16 graphs keep fp32 I/O).
    elements: dict[str, int] = {}
    external: dict[str, str] = {}
    for t in graph.initializer:
        dtype = _dtype_name(t.data_type)
        if dtype in _FLOAT_PRECISION:
            elements[dtype] = elements.get(dtype, 0) + math.prod(t.dims)
        for entry in t.external_data:
            if entry.key == "location" and entry.value not in external:
                from deploykit._io import inside

                ext = inside(path.parent, entry.value)
                if ext is None:
                    raise ArtifactError(
                        f"ONNX file {path} refers to external weights {entry.value[:100]!r} outside its folder; refused"
                    )
                if not ext.is_file():
                    raise ArtifactError(f"ONNX file {path} refers to external weights {ext}, which is missing")
                external[entry.value] = sha256_file(ext)
    if elements:
        precision = _FLOAT_PRECISION[max(elements, key=lambda k: elements[k])]
    else:
        float_inputs = [s.dtype for s in inputs if s.dtype in _FLOAT_PRECISION]
        precision = _FLOAT_PRECISION[float_inputs[0]] if float_inputs else "fp32"
    has_qdq = any(n.op_type in _QDQ_OPS for n in graph.node)

    model_name = None
    if manifest:
        m = manifest.get("model")
        model_name = m.get("name") if isinstance(m, Mapping) else m
    return OnnxInfo(
        path=path,
        sha256=sha256_file(path),
        external_data=tuple(sorted(external.items())),
        inputs=inputs,
        outputs=outputs,
        precision=precision,
        has_qdq=has_qdq,
        model=str(model_name) if model_name else None,
        manifest=manifest,
        manifest_path=manifest_path,
    )
