"""Loading an ONNX file for profiling: external weights (checked to stay inside the model's folder), the batch set, a weight-free skeleton for shape inference, tensor element types and sizes."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploykit._io import inside
from deploykit.errors import ArtifactError, InvalidInput, first_line
from deploykit.profile.onnx_formulas import _ARGUMENT_INPUTS, _BUFFER_INPUTS, _PARAM_INPUTS, _numel
from deploykit.profile.types import Shape

if TYPE_CHECKING:
    import onnx


_DTYPE_OF_ELEM = {"FLOAT": "fp32", "FLOAT16": "fp16", "BFLOAT16": "bf16", "INT8": "int8", "UINT8": "int8"}

def _type_name(elem_type: int) -> str:
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"type{elem_type}"

def _is_float(elem_type: int) -> bool:
    name = _type_name(elem_type)
    return name.startswith("FLOAT") or name in ("DOUBLE", "BFLOAT16")

def _bits(elem_type: int) -> int:
    name = _type_name(elem_type)
    if (name.endswith("4") and ("INT" in name or "FLOAT4" in name)) or name == "FLOAT4E2M1":
        return 4
    if name.startswith("FLOAT8"):
        return 8
    import numpy as np
    import onnx

    try:
        return int(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize) * 8
    except (KeyError, TypeError, ValueError):
        return 8 * 8  # strings and unknown types: a pointer each (never in a CNN)

@dataclass
class _Tensor:
    elem_type: int
    shape: Shape | None

def _nbytes(t: _Tensor, override: int | None) -> int:
    n = _numel(t.shape)
    if override is not None and _is_float(t.elem_type):
        return n * override
    return -(-n * _bits(t.elem_type) // 8)

def classify_initializer(
    op_type: str, index: int, elem_type: int, numel: int, *, torch_params: bool | None = None
) -> str:
    """``"param"``, ``"buffer"`` or ``"constant"``: what an initializer is when ``op_type`` consumes it as input
    ``index`` (see the module docstring for the rules). ``torch_params``: whether the PyTorch operator the node
    comes from took a parameter (from the dynamo exporter's metadata; ``None``: unknown)."""
    if index in _BUFFER_INPUTS.get(op_type, ()):
        return "buffer"
    if index in _PARAM_INPUTS.get(op_type, ()):
        return "param"
    if op_type in _PARAM_INPUTS or index in _ARGUMENT_INPUTS.get(op_type, ()) or torch_params is False:
        return "constant"
    return "param" if _is_float(elem_type) and numel > 1 else "constant"

def _torch_params(node: onnx.NodeProto) -> bool | None:
    """Whether the PyTorch operator ``node`` was exported from took a parameter (``%p_*`` in the dynamo exporter's
    ``pkg.torch.onnx.fx_node``); ``None`` without that metadata."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.fx_node":
            return "%p_" in prop.value
    return None

def _external_files(model: onnx.ModelProto, base: Path) -> list[str]:
    """Check that every external-data tensor's file exists and is long enough; return the files' names."""
    import onnx

    files: dict[str, int] = {}
    for t in _all_initializers(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        target = inside(base, loc) if loc else None
        if loc and target is None:  # checked before anything is read: no size of /etc/passwd in a message
            raise ArtifactError(
                f"external data location {loc[:100]!r} of tensor {t.name[:100]!r} points outside the model's folder "
                f"{base}; refused"
            )
        if target is None or not target.is_file():
            raise ArtifactError(
                f"external data of tensor {t.name!r} is missing: {base / loc if loc else '(no location)'} "
                "(keep the .onnx file next to its data file)"
            )
        size = files.setdefault(loc, target.stat().st_size)
        end = int(info.get("offset", 0)) + int(info.get("length", 0))
        if end > size:
            raise ArtifactError(
                f"external data file {base / loc} is truncated: tensor {t.name!r} needs bytes up to {end}, "
                f"the file has {size}"
            )
    return sorted(files)

def _all_initializers(graph: onnx.GraphProto) -> Iterable[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for sub in _subgraphs(node):
            yield from _all_initializers(sub)

def _subgraphs(node: onnx.NodeProto) -> Iterable[onnx.GraphProto]:
    for a in node.attribute:
        if a.HasField("g"):
            yield a.g
        yield from a.graphs

def _load(path: Path) -> tuple[onnx.ModelProto, list[str]]:
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise ArtifactError(f"ONNX file not found: {path}")
    try:
        # Weights stay on disk: only their shapes and types are needed.
        model = onnx.load(os.fspath(path), load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise ArtifactError(f"{path} is not an ONNX model (cannot parse it: {first_line(exc)})") from None
    external = _external_files(model, path.parent)
    inits = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:  # before the checker, whose message would not name the input
        if vi.name not in inits and _dims(vi) is None:
            raise InvalidInput(
                f"graph input {vi.name!r} has no declared tensor shape (unknown rank); cannot profile it"
            )
    try:
        onnx.checker.check_model(os.fspath(path))
    except (onnx.checker.ValidationError, ValueError, RuntimeError, OSError) as exc:
        raise ArtifactError(f"{path} is not a valid ONNX model: {first_line(exc)}") from None
    for t in model.graph.initializer:  # shape-like constants are needed by shape inference's data propagation
        if t.data_location == onnx.TensorProto.EXTERNAL and math.prod(t.dims) <= 64:
            onnx.external_data_helper.load_external_data_for_tensor(t, os.fspath(path.parent))
            t.data_location = onnx.TensorProto.DEFAULT
            del t.external_data[:]
    return model, external

def _dims(vi: onnx.ValueInfoProto) -> list[Any] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in vi.type.tensor_type.shape.dim]

def _set_batch(model: onnx.ModelProto, inits: set[str], batch_size: int | None) -> int:
    """Fix dimension 0 of every graph input to the batch; returns the batch. Any other symbolic dim: InvalidInput."""
    batch = batch_size
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = _dims(vi)
        assert dims is not None  # _load rejected graph inputs without a declared shape
        for i, d in enumerate(dims):
            if isinstance(d, int) and i == 0:
                if batch_size is not None and d != batch_size:
                    raise InvalidInput(
                        f"graph input {vi.name!r} has a fixed batch of {d}, not {batch_size}: profile it at batch {d} "
                        "or export with a dynamic batch"
                    )
                batch = d if batch is None else batch
            elif not isinstance(d, int) and i > 0:
                raise InvalidInput(
                    f"graph input {vi.name!r} dimension {i} is symbolic ({d or 'unnamed'}); only the batch "
                    "(dimension 0) can be set: export the model with a fixed input size"
                )
    batch = batch or 1
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims_proto = vi.type.tensor_type.shape.dim
        if dims_proto and not dims_proto[0].HasField("dim_value"):
            dims_proto[0].dim_value = batch
    return batch

def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph without its weights: they become typed graph inputs, so inference never copies them. Small
    initializers (shapes, axes, Resize scales) stay: shape inference propagates their values."""
    import onnx

    sk = onnx.ModelProto(ir_version=model.ir_version)
    sk.opset_import.extend(model.opset_import)
    sk.functions.extend(model.functions)
    g = sk.graph
    g.name = model.graph.name
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    declared = {vi.name for vi in g.input}
    for t in model.graph.initializer:
        if math.prod(t.dims) > 64 or t.data_location == onnx.TensorProto.EXTERNAL:
            if t.name not in declared:
                g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            g.initializer.append(t)
    for vi in g.output:  # the exporter's symbolic output shapes would win over the fixed batch
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
    return sk

def _infer(model: onnx.ModelProto, path: Path) -> dict[str, _Tensor]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: ONNX shape inference failed: {first_line(exc)}") from None
    values: dict[str, _Tensor] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if not vi.type.HasField("tensor_type"):
            continue
        dims = _dims(vi)
        shape = tuple(dims) if dims is not None and all(isinstance(d, int) for d in dims) else None
        prev = values.get(vi.name)
        if prev is None or prev.shape is None:
            values[vi.name] = _Tensor(vi.type.tensor_type.elem_type, shape)
    for t in inferred.graph.initializer:
        values[t.name] = _Tensor(t.data_type, tuple(int(d) for d in t.dims))
    return values
