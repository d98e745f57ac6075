"""``profile_onnx``: closed-form costs on hand-built graphs, clear errors, and agreement with the PyTorch profile.

Hand-built graphs are fp32 unless stated: 4 bytes per element. Every expected number is worked out by hand in the
test, from the conventions of :mod:`deploykit.profile.formulas`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from deploykit.errors import ArtifactError, InvalidInput
from deploykit.export.onnx import export_module
from deploykit.models import ModelSpec, create_model
from deploykit.profile import PRESETS, ModelProfile, profile_model, roofline
from deploykit.profile.onnx_graph import profile_onnx
from deploykit.profile.onnx_reconcile import reconcile_params
from deploykit.report.profile_tables import profile_markdown

F = TensorProto.FLOAT


def _init(name: str, shape: Sequence[int], value: float | None = None) -> TensorProto:
    rng = np.random.default_rng(0)
    arr = np.full(shape, value, np.float32) if value is not None else rng.standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(arr, name)


def _save(
    tmp_path: Path,
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    inits: Sequence[TensorProto] = (),
    name: str = "g",
    opset: int = 17,
) -> Path:
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _vi(name: str, shape: Sequence[int | str] | None, elem: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _out(name: str, rank: int) -> onnx.ValueInfoProto:
    """A graph output of known rank and unknown sizes (``onnx.checker`` wants a shape on graph outputs)."""
    return _vi(name, [f"{name}_{i}" for i in range(rank)])


# --- closed forms ---------------------------------------------------------------------------------------------------


def test_grouped_strided_padded_conv(tmp_path: Path) -> None:
    # x (1, 4, 8, 8), 6 filters of 2 input channels (group 2), 3x3, stride 2, pad 1 -> y (1, 6, 4, 4)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, strides=[2, 2], pads=[1, 1, 1, 1],
                            kernel_shape=[3, 3], name="conv")
    path = _save(tmp_path, [conv], [_vi("x", [1, 4, 8, 8])], [_out("y", 4)],
                 [_init("w", [6, 2, 3, 3]), _init("b", [6])])
    p = profile_onnx(path)
    (r,) = p.layers
    assert (r.name, r.op, r.kind) == ("conv", "Conv", "onnx")
    assert r.input_shapes == ((1, 4, 8, 8), (6, 2, 3, 3), (6,)) and r.output_shapes == ((1, 6, 4, 4),)
    assert r.macs == 96 * 2 * 9 == 1728  # 96 outputs, each 2 channels x 9 taps
    assert r.flops == 2 * 1728 + 96  # 2 per MAC + the bias add
    assert r.params == 6 * 2 * 9 + 6 == 114 and r.param_bytes == 456
    assert r.act_bytes == 96 * 4
    assert r.traffic_bytes == (256 + 108 + 6 + 96) * 4  # x, w, b read; y written
    assert p.source == "onnx" and p.dtype == "fp32" and p.input_shape == (1, 4, 8, 8)
    assert p.total_params == 114 and p.unused_params == 0


def test_conv_without_bias_and_dilation(tmp_path: Path) -> None:
    # 1-D conv, dilation 2: x (2, 3, 10), w (4, 3, 3) -> effective kernel 5, y (2, 4, 6)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], dilations=[2])
    path = _save(tmp_path, [conv], [_vi("x", [2, 3, 10])], [_out("y", 3)], [_init("w", [4, 3, 3])])
    (r,) = profile_onnx(path).layers
    assert r.output_shapes == ((2, 4, 6),)
    assert r.macs == 48 * 9 and r.flops == 2 * 48 * 9
    assert r.name == "Conv_0"  # an unnamed node: <op>_<index>


def test_gemm_and_matmul(tmp_path: Path) -> None:
    gemm = helper.make_node("Gemm", ["x", "w", "c"], ["h"], transB=1, name="fc")
    gemm_t = helper.make_node("Gemm", ["ht", "w2"], ["z"], transA=1, name="fc_t")  # A^T: (5, 3)^T @ (5, 2)
    mm = helper.make_node("MatMul", ["a", "m"], ["o"], name="mm")  # batch dims: (2, 3, 4, 5) @ (5, 6)
    bmm = helper.make_node("MatMul", ["p", "q"], ["r"], name="bmm")  # broadcast: (2, 1, 4, 5) @ (3, 5, 6)
    path = _save(
        tmp_path,
        [gemm, gemm_t, mm, bmm],
        [_vi("x", [3, 5]), _vi("ht", [5, 3]), _vi("a", [2, 3, 4, 5]), _vi("p", [2, 1, 4, 5]), _vi("q", [3, 5, 6])],
        [_out("h", 2), _out("z", 2), _out("o", 4), _out("r", 4)],
        [_init("w", [4, 5]), _init("c", [4]), _init("w2", [5, 2]), _init("m", [5, 6])],
    )
    p = profile_onnx(path)
    fc, fc_t, mm_r, bmm_r = p.layers
    assert fc.output_shapes == ((3, 4),) and fc.macs == 12 * 5 and fc.flops == 2 * 60 + 12 and fc.params == 24
    assert fc_t.output_shapes == ((3, 2),) and fc_t.macs == 6 * 5 and fc_t.flops == 60 and fc_t.params == 10
    assert mm_r.output_shapes == ((2, 3, 4, 6),) and mm_r.macs == 144 * 5 and mm_r.params == 30
    assert bmm_r.output_shapes == ((2, 3, 4, 6),) and bmm_r.macs == 144 * 5 and bmm_r.params == 0
    assert bmm_r.traffic_bytes == (40 + 90 + 144) * 4
    assert p.total_macs == 60 + 30 + 720 + 720 and p.total_params == 24 + 10 + 30


def test_pool_add_concat_relu_and_views(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[3, 3], name="pool"),  # (1,2,2,2)
        helper.make_node("AveragePool", ["x"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], name="avg"),  # (1,2,3,3)
        helper.make_node("Add", ["x", "s"], ["a"], name="add"),  # (1,2,6,6) + (1,2,1,1) broadcast
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Concat", ["r", "x"], ["c"], axis=1, name="cat"),  # (1,4,6,6)
        helper.make_node("Flatten", ["c"], ["f"], axis=1, name="flat"),  # a view
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),  # (1,4,1,1)
    ]
    path = _save(tmp_path, nodes, [_vi("x", [1, 2, 6, 6])],
                 [_out("p", 4), _out("ap", 4), _out("f", 2), _out("g", 4)], [_init("s", [1, 2, 1, 1])])
    p = profile_onnx(path)
    rows = {r.name: r for r in p.layers}
    assert rows["pool"].output_shapes == ((1, 2, 2, 2),) and rows["pool"].flops == 8 * 8  # 8 outputs, 9 - 1 each
    assert rows["pool"].traffic_bytes == (72 + 8) * 4 and rows["pool"].macs == 0
    assert rows["avg"].flops == 18 * 4  # 18 outputs, 3 adds + 1 divide each
    assert rows["add"].flops == 72 and rows["add"].params == 2  # a 2-element float initializer: a parameter
    assert rows["add"].traffic_bytes == (72 + 2 + 72) * 4
    assert rows["relu"].flops == 72 and rows["relu"].act_bytes == 72 * 4
    assert rows["cat"].flops == 0 and rows["cat"].act_bytes == 144 * 4 and rows["cat"].traffic_bytes == 2 * 144 * 4
    assert rows["flat"].output_shapes == ((1, 144),)
    assert (rows["flat"].flops, rows["flat"].act_bytes, rows["flat"].traffic_bytes) == (0, 0, 0)
    assert rows["gap"].flops == 144  # 1 per input element
    assert p.unsupported_ops == () and p.total_macs == 0


def test_symbolic_batch_dtype_override_and_roofline(tmp_path: Path) -> None:
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1], name="conv")
    path = _save(tmp_path, [conv], [_vi("x", ["N", 3, 4, 4])], [_vi("y", ["N", 8, 4, 4])], [_init("w", [8, 3, 1, 1])])
    one = profile_onnx(path)
    three = profile_onnx(path, batch_size=3)
    assert one.input_shape == (1, 3, 4, 4) and three.input_shape == (3, 3, 4, 4)
    assert one.total_macs == 16 * 8 * 3 and three.total_macs == 3 * one.total_macs
    half = profile_onnx(path, batch_size=3, dtype="fp16")
    assert half.dtype == "fp16" and half.total_traffic_bytes * 2 == three.total_traffic_bytes
    assert half.total_param_bytes == 24 * 2
    roof = roofline(three, PRESETS["a100"])
    # 2 x 1,152 MACs = 2,304 FLOPs over (3x3x16 in + 24 weights + 3x8x16 out) x 4 B = 2,208 B: 1.04 FLOP/B, far
    # below the A100 80GB fp32 ridge (19.5 TFLOP/s / 2,039 GB/s = 9.6 FLOP/B): memory-bound, time = bytes / bandwidth
    assert three.total_flops == 2304 and three.total_traffic_bytes == 2208
    assert len(roof.layers) == 1 and roof.layers[0].bound == "memory"
    assert roof.layers[0].time_s == pytest.approx(2208 / 2039e9)
    assert "conv" in profile_markdown(three, roof)
    assert ModelProfile.from_dict(three.to_dict()) == three


def test_unknown_op_is_unsupported_never_zero(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Resize", ["r", "", "scales"], ["u"], mode="linear", name="up"),
    ]
    path = _save(tmp_path, nodes, [_vi("x", [1, 1, 2, 2])], [_out("u", 4)],
                 [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    p = profile_onnx(path)
    assert p.layer("up").unsupported == ("Resize",) and p.unsupported_ops == ("Resize",)
    assert p.layer("up").output_shapes == ((1, 1, 4, 4),)


def test_batchnorm_params_and_buffers(tmp_path: Path) -> None:
    bn = helper.make_node("BatchNormalization", ["x", "g", "b", "mean", "var"], ["y"], name="bn")
    inits = [_init("g", [3]), _init("b", [3]), _init("mean", [3], 0.5), _init("var", [3], 2.0)]
    p = profile_onnx(_save(tmp_path, [bn], [_vi("x", [2, 3, 4, 4])], [_out("y", 4)], inits))
    (r,) = p.layers
    assert r.params == 6 and r.flops == 2 * 96  # inference: x * scale + shift
    assert p.spec["initializers"]["buffers"] == 6
    assert r.traffic_bytes == (96 + 12 + 96) * 4  # running stats are read too


# --- errors -----------------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        profile_onnx(tmp_path / "nope.onnx")


@pytest.mark.parametrize("content", [b"", b"definitely not a protobuf \xff\xfe\x00\x01" * 10, b"\x08\x07"])
def test_not_an_onnx_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=r"bad\.onnx"):
        profile_onnx(path)


def test_truncated_file(tmp_path: Path) -> None:
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])
    path = _save(tmp_path, [conv], [_vi("x", [1, 3, 4, 4])], [_out("y", 4)], [_init("w", [8, 3, 1, 1])])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError):
        profile_onnx(path)


def test_unknown_rank_input(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_vi("x", None)], [_out("y", 2)])
    with pytest.raises(InvalidInput, match="no declared tensor shape"):
        profile_onnx(path)


def test_symbolic_spatial_dim_and_bad_arguments(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, 3, "H", 4])], [_out("y", 4)])
    with pytest.raises(InvalidInput, match="dimension 2 is symbolic"):
        profile_onnx(path)
    fixed = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2, 3])], [_out("y", 2)], name="f")
    with pytest.raises(InvalidInput, match="fixed batch of 2"):
        profile_onnx(fixed, batch_size=4)
    with pytest.raises(InvalidInput, match="unknown dtype"):
        profile_onnx(fixed, dtype="fp64")
    with pytest.raises(InvalidInput, match="batch size"):
        profile_onnx(fixed, batch_size=0)


def test_shape_inference_failure_is_an_artifact_error(tmp_path: Path) -> None:
    # (2, 3) + (4,) does not broadcast: the checker passes, shape inference fails.
    add = helper.make_node("Add", ["x", "b"], ["y"])
    path = _save(tmp_path, [add], [_vi("x", [2, 3])], [_out("y", 2)], [_init("b", [4])])
    with pytest.raises(ArtifactError, match="shape inference failed"):
        profile_onnx(path)


# --- agreement with the PyTorch profile on exported models --------------------------------------------------------------


@pytest.mark.parametrize("name", ["lenet", "mnist1d-cnn"])
def test_registered_model_agrees_with_pytorch_profile(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module, spec = create_model(name, device="cpu")
    art = export_module(module, spec, out_dir=tmp_path, dynamic_batch=True, validate=False, device="cpu")
    for batch in (1, 4):
        po = profile_onnx(art.path, batch_size=batch)
        pt = profile_model(name, batch_size=batch)
        assert (po.total_params, po.total_macs) == (pt.total_params, pt.total_macs)
        # no BatchNorm, no all-zero bias: every FLOP convention and every byte agrees too
        assert po.total_flops == pt.total_flops
        assert po.total_traffic_bytes == pt.total_traffic_bytes
        assert po.unsupported_ops == ()
    # convolution and linear rows carry the module's name and cost
    for row in profile_model(name).layers:
        if row.macs:
            assert profile_onnx(art.path).layer(row.name).macs == row.macs


class _ConvBnNet(nn.Module):
    """Conv(bias=False) + BatchNorm (folded by the exporter), a Conv with an all-zero bias (dropped) and a
    Linear: the three ways the exported file's parameters differ from the module's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.zero = nn.Conv2d(8, 4, 1)
        assert self.zero.bias is not None
        nn.init.zeros_(self.zero.bias)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.zero(torch.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("trained_stats", [False, True])
def test_folded_batchnorm_and_dropped_bias_are_accounted_for(tmp_path: Path, trained_stats: bool) -> None:
    torch.manual_seed(0)
    net = _ConvBnNet()
    if trained_stats:  # a trained BatchNorm folds to a non-zero bias, which the file keeps
        assert net.bn.running_mean is not None and net.bn.running_var is not None
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    spec = ModelSpec(name="convbn", family="test", source="test", input_shape=(3, 8, 8), num_classes=5)
    art = export_module(net, spec, out_dir=tmp_path, validate=False, device="cpu", exporter="dynamo")
    po = profile_onnx(art.path)
    pt = profile_model(net, input_shape=(3, 8, 8))
    assert po.total_macs == pt.total_macs == 8 * 64 * 27 + 4 * 64 * 8 + 5 * 4
    rec = reconcile_params(net, art.path)
    fused = 8 if trained_stats else 0
    assert rec.folded_batchnorm == 16 and po.spec["folded_batchnorms"] == ["bn"]
    assert rec.zero_bias_dropped == 4 and rec.deduplicated == 0 and rec.not_exported == 0
    assert rec.onnx_only == fused == po.spec["initializers"]["fused_bias"]
    assert rec.torch_params == pt.total_params == 216 + 16 + 36 + 25
    assert po.total_params == rec.onnx_params == pt.total_params - 16 - 4 + fused
    assert po.layer("conv").params == 216 + fused  # the folded row is named after the convolution
