"""deploykit.precision: one Precision type, parsed once, with every fact the layers below need."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from deploykit.errors import InvalidInput
from deploykit.precision import Precision, Tolerance


def test_members_are_their_names() -> None:
    p = Precision.parse(" FP16 ")
    assert p is Precision.FP16
    assert p == "fp16" and str(p) == "fp16" and f"{p}" == "fp16" and repr(p) == "'fp16'"
    assert {"fp16": 1}[p] == 1
    assert json.loads(json.dumps({"p": p})) == {"p": "fp16"}


@pytest.mark.parametrize(
    ("name", "nbytes", "tdtype", "ndtype", "odtype", "trt", "peak", "graph"),
    [
        ("fp32", 4, torch.float32, np.float32, onnx.TensorProto.FLOAT, "FLOAT", "fp32", "fp32"),
        ("tf32", 4, torch.float32, np.float32, onnx.TensorProto.FLOAT, "FLOAT", "tf32", "fp32"),
        ("fp16", 2, torch.float16, np.float16, onnx.TensorProto.FLOAT16, "HALF", "fp16", "fp16"),
        ("bf16", 2, torch.bfloat16, None, onnx.TensorProto.BFLOAT16, "BF16", "bf16", "fp32"),
        ("int8", 1, torch.int8, np.int8, onnx.TensorProto.INT8, "INT8", "int8", "fp32"),
    ],
)
def test_facts(name, nbytes, tdtype, ndtype, odtype, trt, peak, graph) -> None:
    p = Precision(name)
    assert p.element_bytes == nbytes == torch.empty(0, dtype=tdtype).element_size()
    assert p.torch_dtype == tdtype
    assert p.onnx_dtype == odtype
    assert (p.tensorrt_name, p.peak_key, p.onnx_graph) == (trt, peak, graph)
    if ndtype is None:
        with pytest.raises(InvalidInput, match="numpy has no bf16"):
            p.numpy_dtype  # noqa: B018
    else:
        assert p.numpy_dtype == np.dtype(ndtype)


def test_tolerances_get_looser_with_fewer_mantissa_bits() -> None:
    rtol = [Precision(n).tolerance.rtol for n in ("fp32", "fp16", "bf16", "int8")]
    assert rtol == sorted(rtol) and rtol[0] == 1e-4 and rtol[1] == 1e-2
    assert Precision.TF32.tolerance.rtol == Precision.FP16.tolerance.rtol
    assert Tolerance(atol=0.0, rtol=0.01).allowed(3.0) == pytest.approx(0.03)


def test_parse_errors_name_the_choices() -> None:
    with pytest.raises(InvalidInput, match=r"unknown dtype 'fp8'; choose from fp32, tf32, fp16, bf16, int8"):
        Precision.parse("fp8", what="dtype")
    with pytest.raises(InvalidInput, match=r"unknown precision 'int8'; choose from fp32, fp16"):
        Precision.parse("int8", allowed=("fp32", "fp16"))
    assert Precision.parse_list("fp16,fp32,fp16") == (Precision.FP16, Precision.FP32)
    with pytest.raises(InvalidInput, match="give at least one precision"):
        Precision.parse_list(" , ")
