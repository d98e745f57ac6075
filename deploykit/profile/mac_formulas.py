"""The formula registry and the formulas of the operators that multiply-accumulate.

Here: :class:`OpCost`, the operator categories (:data:`CATEGORIES`), the table :data:`FORMULAS` and
:func:`register_formula`, the argument helpers, and the formulas of convolution / linear / matmul, scaled
dot-product attention (every backend) and the LSTM / GRU / RNN kernels. The element-wise, normalisation,
pooling, reduction, resampling and no-arithmetic formulas, and the lookups (:func:`~deploykit.profile.formulas.op_cost`,
:func:`~deploykit.profile.formulas.category_of`, ...), are in :mod:`deploykit.profile.formulas`, which
re-exports everything public here and states the conventions. Import from there: importing only this module
leaves :data:`FORMULAS` without the other families.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

aten = torch.ops.aten


@dataclass(frozen=True)
class OpCost:
    """What one ATen call costs: multiply-accumulates and floating-point operations."""

    macs: int = 0
    flops: int = 0


#: ``formula(args, kwargs, out) -> OpCost`` where args/kwargs are the ATen call's (meta) arguments.
Formula = Callable[[Sequence[Any], dict[str, Any], Any], OpCost]

# --- categories -------------------------------------------------------------------------------------------
MATMUL = "matmul"
ATTENTION = "attention"
RECURRENT = "recurrent"
ELEMENTWISE = "element-wise"
NORMALIZATION = "normalization"
POOLING = "pooling"
REDUCTION = "reduction"
RESAMPLING = "resampling"
NO_ARITHMETIC = "no arithmetic"
VIEW = "view"
ALLOCATION = "allocation"
NOT_FLOATING = "not floating-point"
UNSUPPORTED = "unsupported"

#: What each category means, in the words the README and ``--help`` use.
CATEGORIES: dict[str, str] = {
    MATMUL: "convolution / linear / matmul: MACs",
    ATTENTION: "scaled dot-product attention (any backend): MACs + softmax",
    RECURRENT: "LSTM / GRU / RNN kernels (any backend): MACs + gate arithmetic",
    ELEMENTWISE: "element-wise arithmetic and activations",
    NORMALIZATION: "batch / layer / group / RMS normalisation",
    POOLING: "max / average / adaptive pooling",
    REDUCTION: "sums, means, extrema, variances, norms",
    RESAMPLING: "interpolating upsampling and grid sampling",
    NO_ARITHMETIC: "0 FLOPs, real bytes: copies, fills, gathers, scatters, padding, masking",
    VIEW: "metadata only: no FLOPs, no bytes",
    ALLOCATION: "allocates without writing: no FLOPs, no bytes",
    NOT_FLOATING: "result is not floating point (comparisons, integer indices): bytes only",
    UNSUPPORTED: "deploykit does not know this operator's cost: its FLOPs are missing from the totals",
}

FORMULAS: dict[Any, Formula] = {}
_CATEGORY: dict[Any, str] = {}


def register_formula(*ops: Any, category: str) -> Callable[[Formula], Formula]:
    """Register ``formula`` for every overload of each ATen ``op`` packet (``aten.relu``) or overload
    (``aten.max.dim``) given, under ``category`` (a key of :data:`CATEGORIES`)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")

    def deco(fn: Formula) -> Formula:
        for op in ops:
            for overload in _overloads(op):
                if overload in FORMULAS:
                    raise ValueError(f"formula for {overload} registered twice")
                FORMULAS[overload] = fn
                _CATEGORY[overload] = category
        return fn

    return deco


def _overloads(op: Any) -> list[Any]:
    if isinstance(op, torch._ops.OpOverloadPacket):
        return [getattr(op, name) for name in op.overloads()]
    return [op]


def _packets(names: Iterable[str], inplace: bool = False) -> list[Any]:
    """The ATen packets called ``names`` (and their ``name_`` in-place forms when ``inplace``) that exist."""
    out = []
    for name in names:
        for n in (name, name + "_") if inplace else (name,):
            if hasattr(aten, n):
                out.append(getattr(aten, n))
    return out


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _numel(x: Any) -> int:
    return int(x.numel()) if isinstance(x, torch.Tensor) else 0


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    for o in out:
        if isinstance(o, torch.Tensor):
            return o
    raise TypeError("operator returned no tensor")


# --- matmul family -------------------------------------------------------------------------------


def conv_macs(input_shape: Sequence[int], weight_shape: Sequence[int], output_shape: Sequence[int], transposed: bool) -> int:
    """MACs of a (grouped, strided, dilated, transposed) convolution from the three shapes.

    Forward: every output element takes ``C_in / groups * prod(kernel)`` MACs; the weight's dim 1 already is
    ``C_in / groups``. Transposed: every *input* element is scattered through ``C_out / groups * prod(kernel)``
    MACs, and the weight's dim 1 is ``C_out / groups``.
    """
    per = int(weight_shape[1]) * math.prod(int(k) for k in weight_shape[2:])
    if transposed:
        return math.prod(int(d) for d in input_shape) * per
    return math.prod(int(d) for d in output_shape) * per


@register_formula(aten.convolution, aten._convolution, category=MATMUL)
def _conv(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    x, w, bias = args[0], args[1], _arg(args, kwargs, 2, "bias")
    transposed = bool(_arg(args, kwargs, 6, "transposed", False))
    y = _first_tensor(out)
    macs = conv_macs(x.shape, w.shape, y.shape, transposed)
    return OpCost(macs=macs, flops=2 * macs + (y.numel() if bias is not None else 0))


def _matmul_macs(a: torch.Tensor, b: torch.Tensor, out: Any) -> int:
    """Every output element is one ``K``-long dot product (mm, bmm, mv, dot)."""
    return max(_numel(_first_tensor(out)), 1) * int(a.shape[-1])


@register_formula(aten.mm, aten.bmm, aten.mv, aten.dot, aten.vdot, category=MATMUL)
def _mm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    macs = _matmul_macs(args[0], args[1], out)
    return OpCost(macs=macs, flops=2 * macs)


@register_formula(aten.addmm, aten.baddbmm, aten.addmv, category=MATMUL)
def _addmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    macs = _matmul_macs(args[1], args[2], out)
    return OpCost(macs=macs, flops=2 * macs + _numel(_first_tensor(out)))


@register_formula(aten.addbmm, category=MATMUL)
def _addbmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    a, b = args[1], args[2]  # (B, n, k) @ (B, k, m) summed over B, added to (n, m)
    macs = int(a.shape[0]) * int(a.shape[1]) * int(a.shape[2]) * int(b.shape[2])
    y = _numel(_first_tensor(out))
    return OpCost(macs=macs, flops=2 * macs + y)


@register_formula(aten._addmm_activation, category=MATMUL)
def _addmm_activation(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    y = _numel(_first_tensor(out))
    act = 9 if kwargs.get("use_gelu", False) else 1  # the GELU epilogue is the tanh form
    macs = _matmul_macs(args[1], args[2], out)
    return OpCost(macs=macs, flops=2 * macs + y + act * y)


# --- attention ------------------------------------------------------------------------------------------------


def sdpa_cost(
    query_shape: Sequence[int],
    key_shape: Sequence[int],
    value_shape: Sequence[int],
    *,
    masked: bool,
    dropout: bool,
) -> OpCost:
    """Scaled dot-product attention as the math backend computes it (any leading batch / head dims).

    With ``q: (..., L, E)``, ``k: (..., S, E)``, ``v: (..., S, Ev)`` and ``BH`` = the product of ``q``'s
    leading dims (key/value heads broadcast to the query's under grouped-query attention):
    MACs = ``BH·L·S·E`` (``QKᵀ``) + ``BH·L·S·Ev`` (``·V``); FLOPs = 2 * MACs + ``BH·L·E`` (``q·√scale``) +
    ``BH·S·E`` (``k·√scale``) + ``BH·L·S`` (mask add, with an attention mask or ``is_causal``) + 5 ``BH·L·S``
    (softmax) + 2 ``BH·L·S`` (dropout, when ``dropout_p > 0``).
    """
    *lead, L, E = (int(d) for d in query_shape)
    S, Ev = int(key_shape[-2]), int(value_shape[-1])
    bh = math.prod(lead)
    scores = bh * L * S
    macs = scores * E + scores * Ev
    flops = 2 * macs + bh * L * E + bh * S * E + 5 * scores
    flops += scores if masked else 0
    flops += 2 * scores if dropout else 0
    return OpCost(macs=macs, flops=flops)


def _sdpa(mask_index: int | None, mask_name: str, dropout_index: int, causal_index: int) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        q, k, v = args[0], args[1], args[2]
        mask = _arg(args, kwargs, mask_index, mask_name) if mask_index is not None else kwargs.get(mask_name)
        causal = bool(_arg(args, kwargs, causal_index, "is_causal", False))
        dropout = float(_arg(args, kwargs, dropout_index, "dropout_p", 0.0) or 0.0) > 0
        return sdpa_cost(q.shape, k.shape, v.shape, masked=mask is not None or causal, dropout=dropout)

    return formula


# (attention mask index or None for keyword-only, its name, dropout_p index, is_causal index)
register_formula(aten._scaled_dot_product_flash_attention_for_cpu, category=ATTENTION)(_sdpa(None, "attn_mask", 3, 4))
register_formula(aten._scaled_dot_product_flash_attention, category=ATTENTION)(_sdpa(None, "attn_mask", 3, 4))
register_formula(aten._scaled_dot_product_efficient_attention, category=ATTENTION)(_sdpa(3, "attn_bias", 5, 6))
register_formula(aten._scaled_dot_product_cudnn_attention, category=ATTENTION)(_sdpa(3, "attn_bias", 5, 6))
register_formula(aten._scaled_dot_product_fused_attention_overrideable, category=ATTENTION)(_sdpa(3, "attn_bias", 4, 5))


def _heads_first(shape: Sequence[int]) -> tuple[int, ...]:
    return (*shape[:-3], shape[-2], shape[-3], shape[-1])


@register_formula(aten._flash_attention_forward, category=ATTENTION)
def _flash_forward(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    # (q, k, v, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal, ...), tensors (B, L, H, E)
    q, k, v = args[0], args[1], args[2]
    dropout = float(_arg(args, kwargs, 7, "dropout_p", 0.0) or 0.0) > 0
    causal = bool(_arg(args, kwargs, 8, "is_causal", False))
    return sdpa_cost(_heads_first(q.shape), _heads_first(k.shape), _heads_first(v.shape), masked=causal,
                     dropout=dropout)


@register_formula(aten._efficient_attention_forward, category=ATTENTION)
def _efficient_forward(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    # (q, k, v, bias, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p, custom_mask_type, ...)
    q, k, v = args[0], args[1], args[2]
    masked = _arg(args, kwargs, 3, "bias") is not None or int(_arg(args, kwargs, 9, "custom_mask_type", 0)) != 0
    dropout = float(_arg(args, kwargs, 8, "dropout_p", 0.0) or 0.0) > 0
    return sdpa_cost(_heads_first(q.shape), _heads_first(k.shape), _heads_first(v.shape), masked=masked,
                     dropout=dropout)

# --- recurrent layers ----------------------------------------------------------------------------------------

#: cuDNN / oneDNN / MIOpen mode numbers (``RNN_RELU``, ``RNN_TANH``, ``LSTM``, ``GRU``) -> cell kind.
RNN_MODES = {0: "rnn", 1: "rnn", 2: "lstm", 3: "gru"}
#: Gates per cell kind (rows of ``W_ih`` per hidden unit).
RNN_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
#: Element-wise FLOPs per hidden unit per step, biases excluded: LSTM add gates 4, sigmoid x3 12, tanh x2 2,
#: c = f*c + i*g 3, h = o*tanh(c) 1; GRU r and z gate adds 2, sigmoid x2 8, r*h 1, + 1, tanh 1, (h - n) 1,
#: * z 1, + n 1; RNN gate add 1, tanh or relu 1. As ATen's ``lstm_cell`` / ``gru_cell`` / ``rnn_*_cell``.
RNN_CELL_FLOPS = {"lstm": 22, "gru": 16, "rnn": 2}


def rnn_cell_cost(kind: str, rows: int, input_size: int, hidden: int, *, bias: bool, proj: int = 0) -> OpCost:
    """One direction of one recurrent layer over ``rows`` = time steps x batch rows (or the sum of a packed
    sequence's batch sizes): the ``W_ih`` and ``W_hh`` matmuls (``W_hr`` with an LSTM projection), the bias
    adds and the gate arithmetic of :data:`RNN_CELL_FLOPS`."""
    g = RNN_GATES[kind]
    h_state = proj or hidden
    macs = rows * g * hidden * (input_size + h_state) + rows * hidden * proj
    flops = 2 * macs + (2 * rows * g * hidden if bias else 0) + rows * hidden * RNN_CELL_FLOPS[kind]
    return OpCost(macs=macs, flops=flops)


def _rows(x: torch.Tensor) -> int:
    return int(x.numel()) // int(x.shape[-1])


@register_formula(aten.mkldnn_rnn_layer, category=RECURRENT)
def _mkldnn_rnn_layer(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    # one layer, one direction: (input, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, batch_sizes, mode, hidden_size,
    # num_layers, has_biases, ...); unused bias slots hold placeholders, so has_biases decides.
    x, w_ih = args[0], args[1]
    hidden = int(_arg(args, kwargs, 10, "hidden_size"))
    kind = RNN_MODES[int(_arg(args, kwargs, 9, "mode"))]
    batch_sizes = _arg(args, kwargs, 8, "batch_sizes") or ()
    rows = sum(int(b) for b in batch_sizes) if len(batch_sizes) else _rows(x)
    return rnn_cell_cost(kind, rows, int(w_ih.shape[1]), hidden, bias=bool(_arg(args, kwargs, 12, "has_biases")))


def _fused_rnn(weight_index: int, mode_index: int, hidden_index: int, proj_index: int | None, layers_index: int,
               bidir_index: int, batch_sizes_index: int) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        x, weights = args[0], list(args[weight_index])
        stride = int(args[weight_index + 1])
        kind = RNN_MODES[int(args[mode_index])]
        hidden = int(args[hidden_index])
        proj = int(args[proj_index]) if proj_index is not None else 0
        layers, dirs = int(args[layers_index]), 2 if args[bidir_index] else 1
        batch_sizes = args[batch_sizes_index] or ()
        rows = sum(int(b) for b in batch_sizes) if len(batch_sizes) else _rows(x)
        bias = stride >= 4
        total = OpCost()
        for k in range(layers * dirs):
            w_ih = weights[k * stride]
            c = rnn_cell_cost(kind, rows, int(w_ih.shape[1]), hidden, bias=bias, proj=proj)
            total = OpCost(total.macs + c.macs, total.flops + c.flops)
        return total

    return formula


# _cudnn_rnn(input, weight[], weight_stride0, weight_buf, hx, cx, mode, hidden_size, proj_size, num_layers,
#            batch_first, dropout, train, bidirectional, batch_sizes, dropout_state)
register_formula(aten._cudnn_rnn, category=RECURRENT)(_fused_rnn(1, 6, 7, 8, 9, 13, 14))
# miopen_rnn(input, weight[], weight_stride0, hx, cx, mode, hidden_size, num_layers, batch_first, dropout, train,
#            bidirectional, batch_sizes, dropout_state)
register_formula(aten.miopen_rnn, category=RECURRENT)(_fused_rnn(1, 5, 6, None, 7, 11, 12))


def _fused_cell(kind: str) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        # (input_gates, hidden_gates, cx / hx, input_bias, hidden_bias): the matmuls ran before, as mm.
        state = _numel(args[2])
        biases = sum(1 for i, n in ((3, "input_bias"), (4, "hidden_bias")) if _arg(args, kwargs, i, n) is not None)
        return OpCost(flops=biases * RNN_GATES[kind] * state + RNN_CELL_FLOPS[kind] * state)

    return formula


register_formula(aten._thnn_fused_lstm_cell, category=RECURRENT)(_fused_cell("lstm"))
register_formula(aten._thnn_fused_gru_cell, category=RECURRENT)(_fused_cell("gru"))
