"""Closed-form checks of every cost formula and of the row mechanics of the profiler.

Each expected number is worked out by hand in the comment above its assertion.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deploykit.errors import InvalidInput, ShapeError
from deploykit.profile import profile_module
from deploykit.profile.formulas import adaptive_window_total, conv_macs


def prof(module: nn.Module, shape: tuple[int, ...], dtype: str = "fp32", train: bool = False):  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        m = module
    m = m.to("meta").train(train)
    return profile_module(m, torch.zeros(shape, device="meta"), dtype=dtype)


def only(p):  # type: ignore[no-untyped-def]
    assert len(p.layers) == 1, [r.name for r in p.layers]
    return p.layers[0]


def test_conv_groups_dilation_stride() -> None:
    # out = floor((15 + 2*1 - 2*(3-1) - 1) / 2) + 1 = 7; MACs = 1*16*7*7 * (8/4) * 3*3 = 14112
    # FLOPs = 2*14112 + bias adds 16*7*7 = 29008; params = 16*2*9 + 16 = 304
    r = only(prof(nn.Conv2d(8, 16, 3, stride=2, padding=1, dilation=2, groups=4), (1, 8, 15, 15)))
    assert r.output_shapes == ((1, 16, 7, 7),)
    assert (r.macs, r.flops, r.params) == (14112, 29008, 304)
    # traffic: input 8*15*15*4 = 7200, weight+bias 304*4 = 1216, output 784*4 = 3136
    assert r.traffic_bytes == 7200 + 1216 + 3136
    assert r.act_bytes == 3136
    assert r.param_bytes == 1216


def test_depthwise_conv_without_bias() -> None:
    # MACs = 2*32*10*10 * 1 * 9 = 57600, FLOPs = 115200
    r = only(prof(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), (2, 32, 10, 10)))
    assert (r.macs, r.flops, r.params) == (57600, 115200, 288)


def test_conv_transpose_counts_from_input() -> None:
    # every input element (1*4*5*5 = 100) scatters through C_out/groups * k*k = 6*9 MACs = 5400
    r = only(prof(nn.ConvTranspose2d(4, 6, 3, stride=2, bias=False), (1, 4, 5, 5)))
    assert r.output_shapes == ((1, 6, 11, 11),)
    assert r.macs == 5400 == conv_macs((1, 4, 5, 5), (4, 6, 3, 3), (1, 6, 11, 11), True)
    assert r.flops == 10800


def test_conv1d() -> None:
    # out length = (40 + 2 - 5)//2 + 1 = 19; MACs = 25*19*1*5 = 2375; FLOPs = 4750 + 25*19 = 5225
    r = only(prof(nn.Conv1d(1, 25, 5, stride=2, padding=1), (1, 1, 40)))
    assert (r.macs, r.flops) == (2375, 5225)


def test_linear_2d_and_3d() -> None:
    # 4x100 @ 100x30: MACs 12000, FLOPs 24000 + bias 4*30 = 24120
    r = only(prof(nn.Linear(100, 30), (4, 100)))
    assert (r.macs, r.flops, r.params) == (12000, 24120, 3030)
    # 2x5x100: 10 rows -> MACs 30000, FLOPs 60000 + 300
    r = only(prof(nn.Linear(100, 30), (2, 5, 100)))
    assert (r.macs, r.flops) == (30000, 60300)
    assert r.output_shapes == ((2, 5, 30),)


def test_pools() -> None:
    # max 3x3/2 on 9x9 -> 4x4: 4 planes * 16 outputs * (9 - 1) comparisons = 512
    r = only(prof(nn.MaxPool2d(3, 2), (1, 4, 9, 9)))
    assert (r.flops, r.macs) == (512, 0)
    # traffic excludes eager PyTorch's int64 argmax indices: in 324*4 + out 64*4
    assert r.traffic_bytes == 324 * 4 + 64 * 4
    # avg 2x2 on 8x8 -> 4x4: 3 planes * 16 * 4 = 192
    assert only(prof(nn.AvgPool2d(2), (1, 3, 8, 8))).flops == 192
    # adaptive 7 -> 3: windows [0,3) [2,5) [4,7) = 9 per axis; 2 planes * 9 * 9 = 162
    assert adaptive_window_total(7, 3) == 9
    assert only(prof(nn.AdaptiveAvgPool2d(3), (1, 2, 7, 7))).flops == 162
    # adaptive to 1x1 runs as mean: one FLOP per input element = 2*49
    assert only(prof(nn.AdaptiveAvgPool2d(1), (1, 2, 7, 7))).flops == 98


def test_batch_norm_inference_and_training() -> None:
    # inference: 2 per element, 2*3*4*4 = 96 elements; traffic in 384 + 4 vectors of 3 floats (48) + out 384
    r = only(prof(nn.BatchNorm2d(3), (2, 3, 4, 4)))
    assert (r.flops, r.params, r.traffic_bytes) == (192, 6, 384 + 48 + 384)
    assert only(prof(nn.BatchNorm2d(3), (2, 3, 4, 4), train=True)).flops == 6 * 96


@pytest.mark.parametrize(
    ("module", "per_element"),
    [(nn.ReLU(), 1), (nn.Sigmoid(), 4), (nn.Tanh(), 1), (nn.Hardswish(), 5), (nn.Hardsigmoid(), 4),
     (nn.ReLU6(), 2), (nn.SiLU(), 5), (nn.GELU(), 5), (nn.GELU(approximate="tanh"), 9), (nn.LeakyReLU(), 2)],
)
def test_activation_formulas(module: nn.Module, per_element: int) -> None:
    r = only(prof(module, (2, 3, 5)))
    assert r.flops == per_element * 30
    assert r.traffic_bytes == 2 * 30 * 4


def test_inplace_relu_allocates_nothing_but_moves_data() -> None:
    r = only(prof(nn.ReLU(inplace=True), (1, 10)))
    assert (r.act_bytes, r.traffic_bytes, r.flops) == (0, 80, 10)


def test_layer_norm_and_softmax() -> None:
    assert only(prof(nn.LayerNorm(8), (2, 8))).flops == 8 * 16
    assert only(prof(nn.Softmax(dim=1), (2, 8))).flops == 5 * 16


class Block(nn.Module):
    """The book's functional style: F.relu, torch.cat and Y += X inside a non-leaf forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y += x
        z = torch.cat((F.relu(y), x), dim=1)
        z = self.act(z)
        z = self.act(z)
        return torch.flatten(z, 1) + 1.0


def test_functional_rows_are_attributed_and_named() -> None:
    p = prof(nn.Sequential(Block()), (1, 4, 2, 2))
    names = [r.name for r in p.layers]
    # the flatten view is not a row; the second call of the shared ReLU is "#2"
    assert names == ["0.conv", "0/add_", "0/relu", "0/cat", "0.act", "0.act#2", "0/add"]
    add_, relu, cat = p.layer("0/add_"), p.layer("0/relu"), p.layer("0/cat")
    assert (add_.kind, add_.module, add_.op) == ("function", "0", "add_")
    # in-place add: 16 FLOPs, reads 2x16 floats, writes 16, allocates nothing
    assert (add_.flops, add_.traffic_bytes, add_.act_bytes) == (16, 3 * 64, 0)
    assert (relu.flops, relu.act_bytes) == (16, 64)
    # cat: no arithmetic; reads 2x16, writes 32 floats
    assert (cat.flops, cat.traffic_bytes, cat.act_bytes, cat.output_shapes) == (0, 256, 128, ((1, 8, 2, 2),))
    assert p.layer("0/add").output_shapes == ((1, 32),)


class UsesParameterDirectly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(6, 3))
        self.unused = nn.Linear(5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


def test_direct_parameters_and_unused_parameters() -> None:
    p = prof(UsesParameterDirectly(), (4, 6))
    row = only(p)
    # 4x6 @ 6x3: MACs 72; the parameter belongs to the matmul row
    assert (row.name, row.macs, row.flops, row.params) == ("matmul", 72, 144, 18)
    assert p.unused_params == 30
    assert p.total_params == 48 == sum(q.numel() for q in UsesParameterDirectly().parameters())


class Unsupported(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=1)


def test_unsupported_operator_is_reported_not_zero() -> None:
    p = prof(nn.Sequential(Unsupported()), (2, 5))
    assert p.unsupported_ops == ("cumsum",)
    assert p.layers[0].unsupported == ("cumsum",)
    # data movement is still known
    assert p.layers[0].traffic_bytes == 2 * 10 * 4


def test_dtype_changes_bytes_not_counts() -> None:
    a = only(prof(nn.Conv2d(3, 8, 3), (1, 3, 8, 8), dtype="fp32"))
    b = only(prof(nn.Conv2d(3, 8, 3), (1, 3, 8, 8), dtype="fp16"))
    c = only(prof(nn.Conv2d(3, 8, 3), (1, 3, 8, 8), dtype="int8"))
    assert (a.macs, a.flops) == (b.macs, b.flops)
    assert a.traffic_bytes == 2 * b.traffic_bytes == 4 * c.traffic_bytes
    assert a.param_bytes == 2 * b.param_bytes == 4 * c.param_bytes


def test_views_and_dropout_allocate_nothing() -> None:
    p = prof(nn.Sequential(nn.Flatten(), nn.Dropout(0.5)), (2, 3, 4))
    assert [(r.op, r.act_bytes, r.traffic_bytes, r.flops) for r in p.layers] == [("Flatten", 0, 0, 0), ("Dropout", 0, 0, 0)]


def test_bad_dtype_and_shape_errors() -> None:
    with pytest.raises(InvalidInput, match="unknown dtype"):
        prof(nn.ReLU(), (1, 2), dtype="fp64")
    with pytest.raises(ShapeError, match=r"layer 1 \(Linear\) got input 2x8"):
        prof(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), (2, 2, 4))
