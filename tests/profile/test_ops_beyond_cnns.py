"""The profiler beyond classic CNNs: views and shape-only operators, attention (SDPA in every backend, einsum,
nn.MultiheadAttention), attribute access in ``forward``, recurrent layers on every device, integer inputs,
models that cannot be built or traced on the meta device.

Each expected number is worked out by hand in the comment above its assertion (fp32: 4 bytes per float,
int64: 8 bytes, bool: 1 byte).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo_selection import zoo_params

from deploykit.errors import InvalidInput
from deploykit.models.inputs import InputSpec, input_spec
from deploykit.profile import profile_model, profile_module
from deploykit.profile.formulas import (
    CATEGORIES,
    FORMULAS,
    RNN_CELL_FLOPS,
    category_of,
    op_cost,
    rnn_cell_cost,
    sdpa_cost,
)

aten = torch.ops.aten


def meta(module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32):  # type: ignore[no-untyped-def]
    return profile_module(module.to("meta").eval(), torch.zeros(shape, dtype=dtype, device="meta"))


def rows(p):  # type: ignore[no-untyped-def]
    return {r.name: r for r in p.layers}


def counts(p) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {k: v for k, v in p.totals().items() if k in ("params", "macs", "flops", "act_bytes", "traffic_bytes")}


# --- views and shape-only operators -------------------------------------------------------------------------------


class ViewChain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.id = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: 2x3x4
        y = self.id(x).view(2, 12).unsqueeze(0).expand(5, 2, 12)  # views
        y = y[0].t()  # select + t: views, 12x2 non-contiguous
        z = y.reshape(24)  # cannot be a view: clone + _unsafe_view
        z.unsqueeze_(0)  # in-place metadata change
        return z.as_strided((2, 12), (12, 1))  # a view


def test_views_are_not_rows_and_a_copying_reshape_is_charged_only_the_copy() -> None:
    p = meta(ViewChain(), (2, 3, 4))
    assert [r.name for r in p.layers] == ["id", "reshape"]
    r = p.layer("reshape")
    # the copy: 24 floats read (96 B) and written (96 B); _unsafe_view moves nothing
    assert r.aten_ops == ("clone", "_unsafe_view")
    assert (r.flops, r.act_bytes, r.traffic_bytes) == (0, 96, 192)
    assert p.unsupported_ops == ()
    assert p.op_categories == {
        "_unsafe_view": "view", "as_strided": "view", "clone": "no arithmetic", "expand": "view", "select": "view",
        "t": "view", "unsqueeze": "view", "unsqueeze_": "view", "view": "view",
    }


class ShapeOnly(nn.Module):
    """Swin's shape-only operators: a relative-position table gathered by index, a rolled window, a mask."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(7, 2))
        self.register_buffer("idx", torch.tensor([0, 3, 6, 1]))
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: 2x4
        x = self.lin(x)
        mask = x.new_zeros(2, 4)
        s = torch.scalar_tensor(-100.0, device=x.device)
        bias = self.table[self.idx]  # 4x2
        y = torch.roll(x, 1, dims=1)
        y = y.masked_fill(mask > 0, s)
        a, b = y.unsafe_split(2, dim=1)
        a.transpose_(0, 1)
        return torch.cat([a.t(), b], 1) + bias.t()


def test_shape_only_and_allocation_ops_have_no_arithmetic_and_their_real_bytes() -> None:
    p = meta(ShapeOnly(), (2, 4))
    assert p.unsupported_ops == ()
    got = {r.name: (r.aten_ops, r.params, r.flops, r.act_bytes, r.traffic_bytes) for r in p.layers}
    assert got == {
        # x 32 B + weight 64 B + bias 16 B read, 32 B written; 2*32 MACs + 8 bias adds
        "lin": (("t", "addmm"), 20, 72, 32, 144),
        "new_zeros": (("new_zeros",), 0, 0, 32, 32),  # writes 8 floats; x is only its template
        "scalar_tensor": (("scalar_tensor",), 0, 0, 4, 4),
        # the gather reads 4 int64 indices (32 B) and the 8 floats it copies (32 B), writes 32 B; the table's
        # 14 parameters belong to this row, which computes with them
        "getitem": (("index",), 14, 0, 32, 96),
        "roll": (("roll",), 0, 0, 32, 64),
        "gt": (("gt",), 0, 0, 8, 40),  # reads 8 floats, writes 8 bools: not floating-point work
        "masked_fill": (("masked_fill",), 0, 0, 32, 76),  # y 32 + mask 8 + scalar 4 read, 32 written
        "cat": (("cat",), 0, 0, 32, 64),
        "add": (("add",), 0, 8, 32, 96),
    }
    assert p.op_categories == {
        "add": "element-wise", "addmm": "matmul", "cat": "no arithmetic", "gt": "not floating-point",
        "index": "no arithmetic", "masked_fill": "no arithmetic", "new_zeros": "no arithmetic",
        "roll": "no arithmetic", "scalar_tensor": "no arithmetic", "t": "view", "transpose_": "view",
        "unsafe_split": "view",
    }
    assert set(p.op_categories.values()) <= set(CATEGORIES)


def test_categories_of_single_operators() -> None:
    assert category_of(aten._unsafe_view.default) == "view"
    assert category_of(aten.as_strided_.default) == "view"  # Tag.inplace_view
    assert category_of(aten.unsafe_split.Tensor) == "view"
    assert category_of(aten.empty.memory_format) == "allocation"
    assert category_of(aten.zeros.default) == "no arithmetic"
    assert category_of(aten._safe_softmax.default) == "element-wise"
    assert category_of(aten.mkldnn_rnn_layer.default) == "recurrent"
    assert category_of(aten._scaled_dot_product_flash_attention_for_cpu.default) == "attention"
    assert category_of(aten.add.Tensor, floating=False) == "not floating-point"
    assert category_of(aten.cumsum.default) == "unsupported"


# --- attention -------------------------------------------------------------------------------------------------


class AttentionBlock(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B x L x D = 2 x 5 x 16, 2 heads of 8
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        g = torch.einsum("bhld,bhmd->bhlm", o, o)
        o = torch.einsum("bhlm,bhmd->bhld", g.softmax(-1), o)
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


# (name, MACs, FLOPs, fvcore, flop-counter) by hand; B*H = 4, L = S = 5, E = Ev = 8, 100 scores
ATTENTION_ROWS = [
    # 10 rows x 16 x 48: 7680 MACs, 2*7680 + 480 bias adds
    ("qkv", 7680, 15840, 7680, 15360),
    # QK^T 4*5*5*8 = 800 + .V 800 = 1600 MACs; 3200 + q, k scaling 160 + 160 + causal mask add 100 +
    # softmax 5*100 = 4120; fvcore does not count attention; FlopCounterMode counts 2 per MAC of the two bmm
    ("scaled_dot_product_attention", 1600, 4120, 0, 3200),
    ("einsum", 800, 1600, 800, 1600),  # one bmm of 4 x (5x8 @ 8x5)
    ("softmax", 0, 500, 0, 0),
    ("einsum#2", 800, 1600, 800, 1600),
    ("reshape", 0, 0, 0, 0),  # the transposed output copied
    ("proj", 2560, 5280, 2560, 5120),  # 10 x 16 x 16, + 160 bias adds
]


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_attention_block_with_sdpa_and_einsum(device: str) -> None:
    torch.manual_seed(0)
    model = AttentionBlock().eval().to(device)
    p = profile_module(model, torch.randn(2, 5, 16, device=device))
    got = [(r.name, r.macs, r.flops, r.fvcore_flops, r.flop_counter_flops) for r in p.layers]
    assert got == ATTENTION_ROWS
    assert sdpa_cost((2, 2, 5, 8), (2, 2, 5, 8), (2, 2, 5, 8), masked=True, dropout=False).flops == 4120
    assert p.unsupported_ops == ()
    assert p.total_params == 816 + 272


def _sdpa_inputs(device: str = "meta") -> tuple[torch.Tensor, ...]:
    # B=2, H=3, L=4, S=6, E=8, Ev=5
    return (torch.zeros(2, 3, 4, 8, device=device), torch.zeros(2, 3, 6, 8, device=device),
            torch.zeros(2, 3, 6, 5, device=device))


def test_every_sdpa_backend_counts_as_the_math_backend() -> None:
    q, k, v = _sdpa_inputs()
    # scores 2*3*4*6 = 144; MACs 144*8 + 144*5 = 1872; FLOPs 3744 + q 192 + k 288 + softmax 720 = 4944
    plain = _pair(sdpa_cost(q.shape, k.shape, v.shape, masked=False, dropout=False))
    assert plain == (1872, 4944)
    # the math backend on meta, as deploykit traces it
    math_row = profile_module(_Sdpa().to("meta"), q).layers[0]
    assert (math_row.macs, math_row.flops) == plain
    calls = {
        aten._scaled_dot_product_flash_attention_for_cpu.default: ((q, k, v), {}),
        aten._scaled_dot_product_flash_attention.default: ((q, k, v), {}),
        aten._scaled_dot_product_efficient_attention.default: ((q, k, v, None, False), {}),
        aten._scaled_dot_product_cudnn_attention.default: ((q, k, v, None, False), {}),
        aten._scaled_dot_product_fused_attention_overrideable.default: ((q, k, v), {}),
        # the kernels under them take (B, L, H, E)
        aten._flash_attention_forward.default: (
            (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None, None, 4, 6, 0.0, False, False), {}),
        aten._efficient_attention_forward.default: (
            (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None, None, None, 4, 6, 0.0, 0), {}),
    }
    for op, (args, kwargs) in calls.items():
        assert _pair(op_cost(op, args, kwargs, None)) == plain, op
    # causal (mask add, 144) and dropout (div and mul, 2 per score)
    masked = op_cost(aten._scaled_dot_product_flash_attention_for_cpu.default, (q, k, v, 0.1, True), {}, None)
    assert _pair(masked) == (1872, 4944 + 144 + 288)
    biased = op_cost(aten._scaled_dot_product_efficient_attention.default, (q, k, v, torch.zeros(4, 6), False), {}, None)
    assert _pair(biased) == (1872, 4944 + 144)


def _pair(c) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    return (c.macs, c.flops)


class _Sdpa(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        k, v = torch.zeros(2, 3, 6, 8, device=q.device), torch.zeros(2, 3, 6, 5, device=q.device)
        return F.scaled_dot_product_attention(q, k, v)


def test_the_cpu_flash_kernel_counts_as_the_meta_math_backend() -> None:
    # the kernel the CPU dispatcher picks, called directly, against the meta device's decomposition
    class Flash(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            k, v = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
            return aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, is_causal=True)[0]

    class Math(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            k, v = torch.zeros(2, 3, 6, 8, device=q.device), torch.zeros(2, 3, 6, 8, device=q.device)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    fused = profile_module(Flash(), torch.randn(2, 3, 4, 8)).layers
    unfused = profile_module(Math(), torch.zeros(2, 3, 4, 8, device="meta")).layers
    # 144 scores x (8 + 8) = 2304 MACs; 4608 + q 192 + k 288 + causal mask 144 + softmax 720 = 5952
    assert [(r.macs, r.flops, r.flop_counter_flops) for r in fused] == [(r.macs, r.flops, r.flop_counter_flops)
                                                                         for r in unfused] == [(2304, 5952, 4608)]


class ReadsWeight(nn.Module):
    """Reads parameters' attributes in forward, as nn.MultiheadAttention does."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 4)
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: 3x8
        if x.dtype != self.lin.weight.dtype or self.scale.shape[0] != 4:
            raise ValueError("unexpected")
        return x @ self.lin.weight.t() * self.scale


def test_attribute_access_is_not_a_row_and_parameters_go_to_the_computing_row() -> None:
    p = meta(ReadsWeight(), (3, 8))
    # 3x8 @ 8x4 = 96 MACs; the weight (32) is read through a view and belongs to the matmul; the scale (4) to
    # the mul; lin.bias (4) is never used
    assert [(r.name, r.params, r.macs, r.flops) for r in p.layers] == [("matmul", 32, 96, 192), ("mul", 4, 0, 12)]
    assert p.unused_params == 4 and p.total_params == 40


class Mha(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_multihead_attention_has_one_row_holding_all_its_parameters(device: str) -> None:
    torch.manual_seed(0)
    p = profile_module(Mha().eval().to(device), torch.randn(2, 5, 16, device=device))
    (row,) = p.layers
    # in-projection 48x16 + 48, out-projection 16x16 + 16 = 1088 parameters
    # MACs: in-projection 10 x 16 x 48 = 7680, attention 2*2*5*5*8*2 = 1600, out-projection 2560 = 11840
    # FLOPs: 2*11840 + bias adds 480 + 160 + q, k scaling 320 + softmax 500 = 25140
    assert (row.name, row.params, row.macs, row.flops) == ("attn/multi_head_attention_forward", 1088, 11840, 25140)
    # fvcore: the two projections only; FlopCounterMode: 2 per MAC
    assert (row.fvcore_flops, row.flop_counter_flops) == (7680 + 2560, 2 * 11840)
    assert not any("get" in r.name for r in p.layers)


# --- recurrent layers ----------------------------------------------------------------------------------------------


class TokenLSTM(nn.Module):
    def __init__(self, cell: type[nn.Module] = nn.LSTM, **kw: object) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.rnn = cell(8, 16, num_layers=2, batch_first=True, **kw)
        self.dec = nn.Linear(16 * (2 if kw.get("bidirectional") else 1), 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.emb(x))
        return self.dec(y)


def test_lstm_language_model_closed_form() -> None:
    p = meta(TokenLSTM(), (3, 5), torch.long)
    r = rows(p)
    # rows = 3 x 5 = 15 per layer. Layer 0: 15*4*16*(8+16) = 23040 MACs, FLOPs 46080 + bias 2*15*64 + 22*15*16
    # = 53280; layer 1: 15*4*16*(16+16) = 30720 MACs, FLOPs 61440 + 1920 + 5280 = 68640
    assert rnn_cell_cost("lstm", 15, 8, 16, bias=True).flops == 53280
    assert (r["rnn"].macs, r["rnn"].flops) == (23040 + 30720, 53280 + 68640)
    # the embedding gathers: 15 int64 ids (120 B) and 15 rows of 8 floats (480 B) read, 480 B written
    assert (r["emb"].flops, r["emb"].traffic_bytes, r["emb"].params) == (0, 120 + 480 + 480, 400)
    # the LSTM is one kernel for traffic: zero initial states written (2 x 96 floats), then the input (120
    # floats), both states and the 3840 weights read, the output (240) and final states (192) written
    assert r["rnn"].traffic_bytes == 4 * (192 + 120 + 192 + 3840 + 240 + 192)
    # decoder 15 x 16 x 50 = 12000 MACs, 24000 + 750 bias adds
    assert (r["dec"].macs, r["dec"].flops) == (12000, 24750)
    assert p.total_params == sum(q.numel() for q in TokenLSTM().parameters()) == 5090
    # fvcore has no handle for aten::lstm; FlopCounterMode counts the meta decomposition's addmm
    assert (r["rnn"].fvcore_flops, r["rnn"].flop_counter_flops) == (0, 2 * 53760)


@pytest.mark.parametrize(
    ("kind", "cell", "kw"),
    [
        ("lstm", nn.LSTM, {}),
        ("lstm", nn.LSTM, {"bias": False, "bidirectional": True}),
        ("gru", nn.GRU, {}),
        ("gru", nn.GRU, {"bidirectional": True, "bias": False}),
        ("rnn", nn.RNN, {}),
        ("rnn", nn.RNN, {"nonlinearity": "relu"}),
    ],
)
def test_recurrent_layers_match_their_closed_form_on_meta_and_cpu(kind: str, cell: type[nn.Module], kw: dict) -> None:
    torch.manual_seed(0)
    model = TokenLSTM(cell, **kw).eval()
    bias, dirs = kw.get("bias", True), 2 if kw.get("bidirectional") else 1
    expect = [rnn_cell_cost(kind, 15, 8, 16, bias=bias), rnn_cell_cost(kind, 15, 16 * dirs, 16, bias=bias)]
    macs = dirs * sum(c.macs for c in expect)
    flops = dirs * sum(c.flops for c in expect)
    cpu = profile_module(model, torch.randint(0, 50, (3, 5)))
    on_meta = profile_module(model.to("meta"), torch.zeros(3, 5, dtype=torch.long, device="meta"))
    assert (cpu.layer("rnn").macs, cpu.layer("rnn").flops) == (macs, flops)
    assert counts(cpu) == counts(on_meta)
    assert [(r.name, r.fvcore_flops, r.flop_counter_flops) for r in cpu.layers] == [
        (r.name, r.fvcore_flops, r.flop_counter_flops) for r in on_meta.layers]
    assert cpu.unsupported_ops == on_meta.unsupported_ops == ()


def test_lstm_on_the_cpu_runs_the_onednn_kernel() -> None:
    model = TokenLSTM().eval()
    p = profile_module(model, torch.randint(0, 50, (3, 5)))
    assert p.layer("rnn").aten_ops.count("mkldnn_rnn_layer") == 2  # one per layer: the fused kernel ran
    assert p.op_categories["mkldnn_rnn_layer"] == "recurrent"


def test_lstm_with_projection_and_the_cells() -> None:
    # proj_size 4: W_hh is 64x4 and W_hr 4x16; 15 rows: 15*64*(8+4) + 15*16*4 = 11520 + 960 MACs
    assert rnn_cell_cost("lstm", 15, 8, 16, bias=True, proj=4).macs == 12480
    for module, shape in ((nn.LSTM(8, 16, proj_size=4), (5, 3, 8)), (nn.LSTMCell(8, 16), (3, 8)),
                          (nn.GRUCell(8, 16), (3, 8)), (nn.RNNCell(8, 16), (3, 8))):
        torch.manual_seed(0)
        cpu = profile_module(module.eval(), torch.randn(shape))
        assert counts(cpu) == counts(profile_module(module.to("meta"), torch.zeros(shape, device="meta")))
    # LSTMCell on 3 rows: 3*64*(8+16) = 4608 MACs; 9216 + 2*192 bias adds + 22*48
    cell = profile_module(nn.LSTMCell(8, 16).to("meta"), torch.zeros(3, 8, device="meta")).layers[0]
    assert (cell.macs, cell.flops) == (4608, 9216 + 384 + 1056)


def _flat(module: nn.RNNBase) -> list[torch.Tensor]:
    return [w.to("meta") for w in module._flat_weights]  # type: ignore[union-attr]


@pytest.mark.parametrize(("cell", "mode", "kw"), [(nn.LSTM, 2, {}), (nn.GRU, 3, {"bias": False}), (nn.RNN, 1, {}),
                                                   (nn.LSTM, 2, {"bidirectional": True, "proj_size": 4})])
def test_cudnn_and_miopen_kernels_count_as_the_meta_decomposition(cell: type[nn.RNNBase], mode: int, kw: dict) -> None:
    module = cell(8, 16, num_layers=2, **kw)
    on_meta = profile_module(module.to("meta"), torch.zeros(5, 3, 8, device="meta")).layers[0]
    x, weights = torch.zeros(5, 3, 8, device="meta"), _flat(module)
    stride = len(weights) // (2 * (2 if kw.get("bidirectional") else 1))
    bidir, proj = bool(kw.get("bidirectional")), int(kw.get("proj_size", 0))
    cudnn = op_cost(aten._cudnn_rnn.default,
                    (x, weights, stride, None, x, None, mode, 16, proj, 2, False, 0.0, False, bidir, [], None), {}, None)
    assert _pair(cudnn) == (on_meta.macs, on_meta.flops)
    if not proj:
        miopen = op_cost(aten.miopen_rnn.default,
                         (x, weights, stride, x, None, mode, 16, 2, False, 0.0, False, bidir, [], None), {}, None)
        assert _pair(miopen) == (on_meta.macs, on_meta.flops)


def test_fused_cuda_cells_count_as_lstm_cell_and_gru_cell() -> None:
    g4, g3, h = torch.zeros(3, 64, device="meta"), torch.zeros(3, 48, device="meta"), torch.zeros(3, 16, device="meta")
    b4, b3 = torch.zeros(64, device="meta"), torch.zeros(48, device="meta")
    # 48 state elements: LSTM 2 biases x 4 x 48 + 22 x 48; GRU 2 x 3 x 48 + 16 x 48
    assert FORMULAS[aten._thnn_fused_lstm_cell.default]((g4, g4, h, b4, b4), {}, None).flops == 384 + 22 * 48
    assert FORMULAS[aten._thnn_fused_gru_cell.default]((g3, g3, h, b3, b3), {}, None).flops == 288 + 16 * 48
    assert FORMULAS[aten._thnn_fused_gru_cell.default]((g3, g3, h), {}, None).flops == RNN_CELL_FLOPS["gru"] * 48


# --- integer inputs, CPU fallback -------------------------------------------------------------------------------------

USER_NETS = '''
import torch
from torch import nn


class Branchy(nn.Module):
    """A data-dependent branch: all zeros would take the free branch, real data the linear one."""

    def __init__(self):
        super().__init__()
        self.big = nn.Linear(8, 8)
        self.small = nn.Identity()

    def forward(self, x):
        if x.abs().sum() > 0:
            return self.big(x)
        return self.small(x)


class CopiesInInit(nn.Module):
    """Widths computed from tensor values in __init__, as torchvision's RegNet does."""

    def __init__(self):
        super().__init__()
        widths = (torch.arange(2) * 4 + 4).tolist()
        self.convs = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1), nn.Conv2d(widths[0], widths[1], 1))

    def forward(self, x):
        return self.convs(x)


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.rnn = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.dec = nn.Linear(16, 50)

    def forward(self, x):
        if x.max() >= 50:
            raise IndexError("index out of range in self")
        y, _ = self.rnn(self.emb(x))
        return self.dec(y)
'''


@pytest.fixture
def user_nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "dk_beyond_nets.py").write_text(textwrap.dedent(USER_NETS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "dk_beyond_nets", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield "dk_beyond_nets"
    sys.modules.pop("dk_beyond_nets", None)


def test_data_dependent_branch_is_traced_on_the_cpu_with_a_representative_input(user_nets: str) -> None:
    p = profile_model(f"{user_nets}:Branchy", input_shape="8", batch_size=3)
    # the linear branch ran (3 x 8 x 8 = 192 MACs), not the zero-input identity branch
    assert p.layer("big").macs == 192 and "small" not in {r.name for r in p.layers}
    assert p.spec["trace"]["device"] == "cpu"
    assert p.spec["trace"]["input"]["values"] == "standard normal float32 (seed 0)"
    (note,) = p.notes
    assert note.startswith(f"{user_nets}:Branchy cannot be traced on the meta device (RuntimeError: Tensor.item()")
    assert note.endswith("built and traced on the CPU with real tensors; input: standard normal float32 (seed 0)")


def test_model_that_copies_from_a_tensor_in_init_is_built_on_the_cpu_and_traced_on_meta(user_nets: str) -> None:
    p = profile_model(f"{user_nets}:CopiesInInit", input_shape="3x4x4")
    # widths 4 and 8: 3x3 conv 16*4*27 = 1728 MACs, 1x1 conv 16*8*4 = 512
    assert [(r.name, r.macs) for r in p.layers] == [("convs.0", 1728), ("convs.1", 512)]
    assert p.spec["trace"] == {"built_on": "cpu", "device": "meta", "build_reason":
                               "NotImplementedError: Cannot copy out of meta tensor; no data!",
                               "input": {"dtype": "float32", "range": None, "seed": 0,
                                         "values": "none (meta: shapes only)"}}
    assert p.notes == (f"{user_nets}:CopiesInInit cannot be built on the meta device (NotImplementedError: Cannot copy "
                       "out of meta tensor; no data!): built on the CPU with real weights, then traced on meta",)


def test_token_ids_are_drawn_in_the_embedding_range(user_nets: str) -> None:
    name = f"{user_nets}:Tokens"
    on_meta = profile_model(name, input_shape="5", batch_size=3, inputs=InputSpec("int64"))
    on_cpu = profile_model(name, input_shape="5", batch_size=3, inputs=InputSpec("int64"), device="cpu")
    assert on_cpu.spec["trace"]["input"]["values"] == "int64 uniform in [0, 50) (seed 0)"
    assert counts(on_cpu) == counts(on_meta)
    assert on_meta.layer("emb").input_shapes == ((3, 5),)
    # a range that reaches past the table: the model's own error, reported as a one-line ShapeError
    with pytest.raises(InvalidInput, match="index out of range"):
        profile_model(name, input_shape="5", inputs=InputSpec("int64", 0, 60), device="cpu")


def test_input_spec_validation() -> None:
    assert input_spec("int64", "0,30522") == InputSpec("int64", 0, 30522)
    assert InputSpec("bool").resolve(None) == InputSpec("bool", 0, 2)
    x = InputSpec("int32", 3, 7).sample((1000,))
    assert x.dtype == torch.int32 and int(x.min()) == 3 and int(x.max()) == 6
    for bad, match in ((lambda: input_spec(None, "0,5"), "integer inputs"),
                       (lambda: input_spec("int64", "5,5"), "LO < HI"),
                       (lambda: input_spec("int64", "a,b"), "two integers"),
                       (lambda: input_spec("bool", "0,3"), r"\[0, 2\)"),
                       (lambda: input_spec("int8"), "unknown input dtype"),
                       (lambda: InputSpec("int64").resolve(nn.Linear(2, 2)), "--input-range")):
        with pytest.raises(InvalidInput, match=match):
            bad()


# --- meta and CPU agree ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", zoo_params())
def test_zoo_totals_do_not_depend_on_the_trace_device(name: str) -> None:
    on_meta = profile_model(name)
    on_cpu = profile_model(name, device="cpu")
    assert on_cpu.totals() == on_meta.totals()
    assert [(r.name, r.macs, r.flops, r.traffic_bytes) for r in on_cpu.layers] == [
        (r.name, r.macs, r.flops, r.traffic_bytes) for r in on_meta.layers]
    assert on_cpu.convention_flops("fvcore") == on_meta.convention_flops("fvcore")
    assert on_cpu.convention_flops("flop-counter") == on_meta.convention_flops("flop-counter")


@pytest.mark.parametrize("make", [ViewChain, ShapeOnly, AttentionBlock, ReadsWeight, Mha],
                         ids=lambda m: m.__name__)
def test_custom_modules_totals_do_not_depend_on_the_trace_device(make: type[nn.Module]) -> None:
    shape = {ViewChain: (2, 3, 4), ShapeOnly: (2, 4), ReadsWeight: (3, 8)}.get(make, (2, 5, 16))
    torch.manual_seed(0)
    model = make().eval()
    cpu = profile_module(model, torch.randn(shape))
    on_meta = profile_module(model.to("meta"), torch.zeros(shape, device="meta"))
    assert cpu.totals() == on_meta.totals()
    assert [(r.name, r.fvcore_flops, r.flop_counter_flops) for r in cpu.layers] == [
        (r.name, r.fvcore_flops, r.flop_counter_flops) for r in on_meta.layers]


def test_new_fields_survive_the_json_round_trip_and_aggregation() -> None:
    import json

    from deploykit.profile import ModelProfile, aggregate_layers

    p = meta(AttentionBlock(), (2, 5, 16))
    p = type(p)(**{**p.__dict__, "notes": ("a note",)})
    back = ModelProfile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back.op_categories == p.op_categories and back.notes == ("a note",)
    assert back.layers == p.layers
    assert back.to_dict()["conventions"] == {"fvcore": 11840, "flop-counter": 26880}
    (merged,) = aggregate_layers(p, 0)
    assert (merged.fvcore_flops, merged.flop_counter_flops) == (11840, 26880)
