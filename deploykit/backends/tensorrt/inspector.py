"""Parsing the engine inspector's JSON (``IEngineInspector.get_engine_information``) from TensorRT 10.x and 11.x."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from deploykit.errors import ArtifactError

#: Layer types that only move data; they do not count when checking which precision the engine computes in.
_DATA_MOVEMENT_LAYERS = frozenset({"Reformat", "NoOp", "Shuffle", "Constant", "Cast"})

def dtype_from_format(text: str) -> str | None:
    """The data type named in an inspector ``Format/Datatype`` (10.x) or ``DataType`` (11.x) string.

    ``"Row major linear FP16 format"`` -> ``"fp16"``, ``"Half"`` -> ``"fp16"``, ``"Float"`` -> ``"fp32"``,
    ``"Thirty-two wide channel vectorized row major Int8 format."`` -> ``"int8"``; ``None`` when unknown
    (e.g. ``"N/A due to dynamic shapes"`` when no execution context with input shapes was set).
    """
    t = str(text).lower()
    for needles, name in (
        (("bf16", "bfloat"), "bf16"),
        (("fp16", "half", "float16"), "fp16"),
        (("fp8", "e4m3"), "fp8"),
        (("uint8",), "uint8"),  # before int8: "uint8" contains "int8"
        (("int8",), "int8"),
        (("int32",), "int32"),
        (("int64",), "int64"),
        (("bool",), "bool"),
        (("fp32", "float"), "fp32"),
    ):
        if any(n in t for n in needles):
            return name
    return None

_ONNX_LAYER_RE = re.compile(r"\[ONNX Layer: ([^\]]+)\]")

def _tensor_entry(t: Any) -> dict[str, Any]:
    if not isinstance(t, Mapping):
        return {"name": str(t), "dims": None, "dtype": None, "format": None}
    fmt = t.get("Format/Datatype", t.get("Format"))
    dtype_text = t.get("DataType", fmt)  # 11.x splits DataType from Format; 10.x has "Format/Datatype"
    return {
        "name": t.get("Name"),
        "dims": list(t["Dimensions"]) if isinstance(t.get("Dimensions"), list) else t.get("Dimensions"),
        "dtype": dtype_from_format(dtype_text) if dtype_text is not None else None,
        "format": fmt,
    }

def parse_engine_information(info: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse ``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` from 10.x or 11.x.

    10.x lists I/O names under ``"Bindings"`` and each tensor's ``"Format/Datatype"``; 11.x lists objects under
    ``"I/O Tensors"`` and splits ``"DataType"`` from ``"Format"`` (10.x->11.x migration guide, "Migrating
    IEngineInspector Usage"). Returns ``schema`` (``"10.x"``, ``"11.x"`` or ``"unknown"``), ``layers`` (name,
    type, inputs/outputs with dims and dtype, tactic, ONNX nodes it fuses, precision), ``io_tensors`` and
    ``precision_counts`` (compute layers per output dtype; data-movement layers excluded).
    """
    if isinstance(info, str):
        try:
            data = json.loads(info)
        except ValueError as exc:
            raise ArtifactError(f"engine inspector output is not JSON: {exc}") from None
    else:
        data = dict(info)
    if not isinstance(data, Mapping):
        raise ArtifactError("engine inspector output is not a JSON object")
    if "I/O Tensors" in data:
        schema = "11.x"
        io = [
            {
                "name": t.get("Name"),
                "mode": t.get("IOMode"),
                "dtype": dtype_from_format(t.get("DataType", "")) if t.get("DataType") else None,
                "dims": t.get("Dimensions"),
                "profiles": t.get("ProfileInfo"),
            }
            for t in data["I/O Tensors"]
            if isinstance(t, Mapping)
        ]
    elif "Bindings" in data:
        schema = "10.x"
        io = [{"name": str(n), "mode": None, "dtype": None, "dims": None, "profiles": None} for n in data["Bindings"]]
    else:
        schema, io = "unknown", []

    layers: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    touching: dict[str, int] = {}
    compute_layers = 0
    for raw in data.get("Layers", []) or []:
        if not isinstance(raw, Mapping):  # LAYER_NAMES_ONLY verbosity: plain names
            layers.append({"name": str(raw), "type": None, "inputs": [], "outputs": [], "tactic": None,
                           "onnx_nodes": [], "precision": None})
            continue
        inputs = [_tensor_entry(t) for t in raw.get("Inputs", []) or []]
        outputs = [_tensor_entry(t) for t in raw.get("Outputs", []) or []]
        ltype = raw.get("LayerType")
        precision = next((t["dtype"] for t in outputs if t["dtype"]), None) or next(
            (t["dtype"] for t in inputs if t["dtype"]), None
        )
        meta = str(raw.get("Metadata", "") or "")
        onnx_nodes = _ONNX_LAYER_RE.findall(meta) or _ONNX_LAYER_RE.findall(str(raw.get("Name", "")))
        layers.append(
            {
                "name": raw.get("Name"),
                "type": ltype,
                "inputs": inputs,
                "outputs": outputs,
                "tactic": raw.get("TacticName") or raw.get("TacticValue"),
                "onnx_nodes": onnx_nodes,
                "precision": precision,
            }
        )
        if ltype in _DATA_MOVEMENT_LAYERS:
            continue
        compute_layers += 1
        if precision:
            counts[precision] = counts.get(precision, 0) + 1
        for d in {t["dtype"] for t in inputs + outputs if t["dtype"]}:
            touching[d] = touching.get(d, 0) + 1
    return {
        "schema": schema,
        "layers": layers,
        "io_tensors": io,
        "num_layers": len(layers),
        "compute_layers": compute_layers,
        "precision_counts": dict(sorted(counts.items())),
        "layers_touching": dict(sorted(touching.items())),
    }
