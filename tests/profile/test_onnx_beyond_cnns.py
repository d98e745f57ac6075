"""ONNX profiles of recurrent layers and einsum, and parameter reconciliation by content: hand-built graphs with
closed forms, and exports that must agree with the PyTorch profile exactly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from deploykit.export.onnx import export_module
from deploykit.models import ModelSpec
from deploykit.models.inputs import InputSpec
from deploykit.profile import profile_model, profile_module
from deploykit.profile.formulas import rnn_cell_cost
from deploykit.profile.onnx_graph import einsum_cost, profile_onnx
from deploykit.profile.onnx_reconcile import reconcile_params

F32 = TensorProto.FLOAT


def _init(name: str, shape: Sequence[int], zeros: bool = False) -> TensorProto:
    arr = np.zeros(shape, np.float32) if zeros else np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(arr, name)


def _save(tmp_path: Path, node: onnx.NodeProto, x: Sequence[int], inits: Sequence[TensorProto], out_rank: int) -> Path:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", F32, list(x))],
        [helper.make_tensor_value_info("y", F32, [f"d{i}" for i in range(out_rank)])], initializer=list(inits),
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_lstm_node_closed_form_and_its_zero_initial_state_is_not_a_parameter(tmp_path: Path) -> None:
    # X: T=5, B=3, I=8; hidden 16; W 1x64x8, R 1x64x16, B 1x128, initial_h 1x3x16 zeros
    node = helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0"], ["y"], hidden_size=16)
    path = _save(tmp_path, node, (5, 3, 8), [_init("W", (1, 64, 8)), _init("R", (1, 64, 16)), _init("B", (1, 128)),
                                             _init("h0", (1, 3, 16), zeros=True)], out_rank=4)
    p = profile_onnx(path)
    (row,) = p.layers
    # 15 rows x 64 x (8 + 16) = 23040 MACs; 46080 + bias adds 2*15*64 + 22*15*16 = 53280 (the PyTorch layer's)
    assert (row.macs, row.flops) == (23040, 53280) == (rnn_cell_cost("lstm", 15, 8, 16, bias=True).macs, 53280)
    assert row.params == 512 + 1024 + 128 and p.unsupported_ops == ()
    assert p.spec["initializers"]["constants"] == 48  # initial_h
    assert p.op_categories == {"LSTM": "recurrent"}


def test_bidirectional_batch_first_gru_and_rnn_nodes(tmp_path: Path) -> None:
    # GRU, layout=1 (X: B=3, T=5, I=8), 2 directions, no bias: per direction 15*48*24 = 17280 MACs and
    # 34560 + 16*15*16 = 38400 FLOPs
    gru = helper.make_node("GRU", ["x", "W", "R"], ["y"], hidden_size=16, direction="bidirectional", layout=1,
                           linear_before_reset=1)
    p = profile_onnx(_save(tmp_path, gru, (3, 5, 8), [_init("W", (2, 48, 8)), _init("R", (2, 48, 16))], 4))
    assert (p.total_macs, p.total_flops, p.total_params) == (2 * 17280, 2 * 38400, 2 * (384 + 768))
    # RNN with bias: 15*16*24 = 5760 MACs; 11520 + 2*15*16 + 2*15*16 = 12480
    rnn = helper.make_node("RNN", ["x", "W", "R", "B"], ["y"], hidden_size=16)
    p = profile_onnx(_save(tmp_path, rnn, (5, 3, 8), [_init("W", (1, 16, 8)), _init("R", (1, 16, 16)),
                                                     _init("B", (1, 32))], 4))
    assert (p.total_macs, p.total_flops) == (5760, 12480)


@pytest.mark.parametrize(
    ("equation", "shapes", "macs", "flops"),
    [
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 120, 240),  # one bmm
        ("bij,bjk->bk", [(2, 3, 4), (2, 4, 5)], 40, 80 + 16),  # i summed first (24 -> 8), then 2*4*5
        ("i,j->ij", [(3,), (4,)], 0, 12),  # an outer product: one multiply per element
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], 24 + 40, 128),  # left to right: (2x3 @ 3x4) @ 4x5
        ("...ij,...jk->...ik", [(7, 2, 3), (7, 3, 4)], 168, 336),
        ("ij->", [(2, 3)], 0, 5),
        ("ii->i", [(3, 3)], 0, 0),  # a diagonal: a view
    ],
)
def test_einsum_cost_is_what_torch_einsum_dispatches(equation: str, shapes: list, macs: int, flops: int) -> None:
    cost = einsum_cost(equation, shapes)
    assert cost is not None and (cost.macs, cost.flops) == (macs, flops)

    class Einsum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rest = [torch.zeros(s, device=x.device) for s in shapes[1:]]
            return torch.einsum(equation, x, *rest)

    p = profile_module(Einsum(), torch.zeros(shapes[0], device="meta"))
    assert (p.total_macs, p.total_flops) == (macs, flops)


class TokenLstm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.rnn = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.dec = nn.Linear(16, 50)
        self.unused = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.emb(x))
        return self.dec(y)


def test_exported_lstm_language_model_agrees_with_the_pytorch_profile(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = TokenLstm().eval()
    spec = ModelSpec(name="tokens", family="test", source="test", input_shape=(5,), num_classes=50)
    # token ids: export and validation draw ids in [0, 50) (normal floats would not index the table)
    art = export_module(net, spec, out_dir=tmp_path, device="cpu", exporter="dynamo", inputs=InputSpec("int64"))
    assert art.manifest["validation"]["passed"] is True
    assert art.manifest["inputs"][0]["dtype"] == "int64"
    po = profile_onnx(art.path)
    pt = profile_model(net, input_shape=(5,), inputs=InputSpec("int64"))
    # the LSTM nodes carry the layers' MACs and FLOPs; their zero initial states are constants
    assert (po.total_macs, po.total_flops) == (pt.total_macs, pt.total_flops) == (21920, 48890)
    assert po.unsupported_ops == () and {r.op for r in po.layers if r.macs} == {"LSTM", "MatMul"}
    rec = reconcile_params(net, art.path)
    # emb.weight 400 and dec.bias 50 under their names; both LSTM layers (gate blocks reordered into W and R, the
    # two biases concatenated into B) 3840 and dec.weight (transposed for MatMul) 800 found by content; only the
    # never-called Linear (6 + 2) is not exported
    assert (rec.stored, rec.repacked, rec.not_exported, rec.onnx_only) == (450, 3840 + 800, 8, 0)
    assert rec.torch_params == pt.total_params == 5098
    assert rec.onnx_params == po.total_params == 5090


def test_reconciliation_claims_each_value_once(tmp_path: Path) -> None:
    # two Linear layers with identical weights, both exported transposed: each claims its own copy; a third
    # parameter with the same values but nothing left to claim is not exported
    class Twins(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 4, bias=False)
            self.ghost = nn.Parameter(torch.zeros(4, 4))
            with torch.no_grad():
                self.b.weight.copy_(self.a.weight.flip(0))  # the same values in another order
                self.ghost.copy_(self.a.weight)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    torch.manual_seed(0)
    net = Twins().eval()
    spec = ModelSpec(name="twins", family="test", source="test", input_shape=(3, 4), num_classes=4)
    art = export_module(net, spec, out_dir=tmp_path, validate=False, device="cpu", exporter="dynamo")
    rec = reconcile_params(net, art.path)
    assert rec.stored + rec.repacked + rec.deduplicated == 32 and rec.not_exported == 16
    assert rec.onnx_params == profile_onnx(art.path).total_params
