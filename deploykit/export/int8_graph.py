"""What an INT8 graph is: :func:`qdq_summary` (which Conv / Gemm / MatMul nodes a Q/DQ graph quantized, its
zero points) and :func:`ort_int8_kernels` (which kernels ONNX Runtime really runs in int8). Re-exported by
:mod:`deploykit.export.int8`, which makes the graphs.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["QUANTIZABLE_OPS", "ort_int8_kernels", "qdq_summary"]

#: Operators that carry the arithmetic and are expected to run in int8; each is listed as quantized or float.
QUANTIZABLE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def qdq_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a Q/DQ graph quantized: every Conv / ConvTranspose / Gemm / MatMul node as ``quantized`` (its data
    and weight inputs both come from a DequantizeLinear of int8) or ``float`` with the reason; Q/DQ counts; the
    zero points (all must be int8 zeros for TensorRT); whether the weights are quantized per channel."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(os.fspath(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    ops = Counter(n.op_type for n in graph.node)
    zero_points: list[tuple[str, int, bool]] = []  # (node, dtype, all zero)
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits:
            zp = inits[n.input[2]]
            zero_points.append((n.name, zp.data_type, bool(np.all(numpy_helper.to_array(zp) == 0))))
    quantized: list[dict[str, Any]] = []
    float_nodes: list[dict[str, Any]] = []
    per_channel = True
    for n in graph.node:
        if n.op_type not in QUANTIZABLE_OPS:
            continue
        srcs = [producers.get(i) for i in n.input[:2]]
        dq = [s is not None and s.op_type == "DequantizeLinear" for s in srcs]
        if all(dq):
            weight_dq = srcs[1]
            assert weight_dq is not None
            scale = inits.get(weight_dq.input[1])
            channels = int(np.prod(scale.dims)) if scale is not None and scale.dims else 1
            per_channel &= channels > 1 or weight_dq.input[0] not in inits
            quantized.append({"name": n.name, "op": n.op_type, "weight_scales": channels})
        else:
            which = [w for w, ok in zip(("data", "weight"), dq, strict=False) if not ok]
            float_nodes.append({
                "name": n.name, "op": n.op_type,
                "reason": f"{' and '.join(which)} input not quantized by ONNX Runtime's QDQ quantizer "
                          "(excluded, unsupported pattern, or a non-constant weight)",
            })
    bad_zp = [name for name, dtype, zero in zero_points if not zero or dtype != onnx.TensorProto.INT8]
    return {
        "quantized_ops": dict(Counter(q["op"] for q in quantized)),
        "float_ops": dict(Counter(f["op"] for f in float_nodes)),
        "quantized_nodes": quantized,
        "float_nodes": float_nodes,
        "quantize_linear": ops.get("QuantizeLinear", 0),
        "dequantize_linear": ops.get("DequantizeLinear", 0),
        "other_ops": {k: v for k, v in sorted(ops.items())
                      if k not in ("QuantizeLinear", "DequantizeLinear", *QUANTIZABLE_OPS)},
        "zero_points": len(zero_points),
        "zero_points_int8_zero": not bad_zp,
        "nonzero_or_non_int8_zero_points": bad_zp[:20],
        "weights_per_channel": per_channel and bool(quantized),
        "tensorrt_compatible": not bad_zp and bool(quantized),
    }


#: ONNX Runtime's fused int8 kernels (what its CPU provider turns DequantizeLinear -> op -> QuantizeLinear into).
_ORT_INT8_KERNELS = ("QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QLinearAdd",
                     "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat",
                     "QLinearSigmoid", "QLinearLeakyRelu", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")


def ort_int8_kernels(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Which nodes ONNX Runtime really runs in int8 on ``device``: the op types of the graph after its
    optimisations (Q/DQ pairs fused into ``QLinearConv``, ``QGemm``...), split into int8 kernels, float
    compute kernels (Conv / Gemm / MatMul left in fp32), and the rest (with the remaining Q/DQ nodes)."""
    import onnx

    from deploykit.backends.ort import make_session

    with tempfile.TemporaryDirectory(prefix="deploykit-ortopt-") as tmp:
        opt = Path(tmp) / "optimized.onnx"
        make_session(path, torch.device(device), optimized_model_path=opt)
        ops = Counter(n.op_type for n in onnx.load(os.fspath(opt), load_external_data=False).graph.node)
    int8 = {k: v for k, v in sorted(ops.items()) if k in _ORT_INT8_KERNELS}
    float_compute = {k: v for k, v in sorted(ops.items()) if k in QUANTIZABLE_OPS or k == "FusedConv"}
    rest = {k: v for k, v in sorted(ops.items()) if k not in int8 and k not in float_compute}
    return {"device": str(device), "int8_kernels": int8, "float_compute_kernels": float_compute, "other": rest}
