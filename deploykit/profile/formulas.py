"""Cost formulas: one small pure function per ATen operator family, in a registry.

Conventions (the README and ``deploykit profile --help`` state the same):

* ``macs`` counts multiply-accumulates of convolution, linear and matmul work only (the papers'
  "mult-adds"). This is what fvcore calls "flops" for those operators.
* ``flops`` counts every floating-point operation: **2 per MAC**, plus the bias add (1 per output element),
  plus element-wise, normalisation and pooling work per the table below. ``torch.utils.flop_counter``
  counts 2 per MAC and nothing else, so for conv/linear/matmul ours exceed it by exactly the bias adds.
* A convolution's MACs count every kernel tap, including taps that fall on zero padding (as fvcore and
  torch's counter do); a transposed convolution is counted from its input side.
* Per-channel constant folding (``gamma / sqrt(var + eps)``) is O(C) and not counted.

=================================  ===================================================================
operator                           FLOPs
=================================  ===================================================================
convolution                        2 * MACs + (output elements if bias)
addmm / mm / bmm / baddbmm         2 * MACs (+ output elements for the added term)
add / sub / mul / div (+ in-place) 1 per output element (add/sub with alpha != 1: 2)
relu, threshold, clamp_min/max     1 per element
hardtanh (ReLU6), clamp            2 per element (max and min)
leaky_relu                         2 per element; elu: 4
sigmoid                            4 per element (negate, exp, add 1, divide)
tanh                               1 per element (one transcendental)
hardsigmoid                        4 per element (add 3, max, min, divide by 6)
hardswish                          5 per element (hardsigmoid, then multiply)
silu                               5 per element; gelu: 5 (erf form), 9 (tanh form)
batch norm, inference              2 per element (x * scale + shift, per-channel scale/shift folded)
batch norm, training               6 per element (mean 1, variance 3, scale and shift 2)
layer norm                         8 per element (statistics 4, normalise 2, affine 2)
group norm                         6 per element (statistics 4, scale and shift 2)
max pool (k window)                k - 1 comparisons per output element
avg pool (k window)                k per output element (k - 1 adds and 1 divide)
adaptive avg pool                  exact window sizes: sum over output cells of the window size
mean                               1 per input element; sum: input - output elements
softmax / log_softmax              5 per element (max, subtract, exp, sum, divide)
dropout (training)                 2 per element
cat, stack, clone, copy, pad       0 (data movement only: traffic, no arithmetic)
=================================  ===================================================================

Views (``view``, ``t``, ``permute``, ``detach``, ...) and allocations (``empty``) cost nothing and move no
data. Any other operator is reported as *unsupported*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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

FORMULAS: dict[Any, Formula] = {}


def register_formula(*ops: Any) -> Callable[[Formula], Formula]:
    """Register ``formula`` for every overload of each ATen ``op`` packet given (``aten.relu``)."""

    def deco(fn: Formula) -> Formula:
        for op in ops:
            for overload in _overloads(op):
                if overload in FORMULAS:
                    raise ValueError(f"formula for {overload} registered twice")
                FORMULAS[overload] = fn
        return fn

    return deco


def _overloads(op: Any) -> list[Any]:
    if isinstance(op, torch._ops.OpOverloadPacket):
        return [getattr(op, name) for name in op.overloads()]
    return [op]


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


@register_formula(aten.convolution, aten._convolution)
def _conv(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    x, w, bias = args[0], args[1], _arg(args, kwargs, 2, "bias")
    transposed = bool(_arg(args, kwargs, 6, "transposed", False))
    y = _first_tensor(out)
    macs = conv_macs(x.shape, w.shape, y.shape, transposed)
    return OpCost(macs=macs, flops=2 * macs + (y.numel() if bias is not None else 0))


@register_formula(aten.mm)
def _mm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    a, b = args[0], args[1]
    macs = int(a.shape[0]) * int(a.shape[1]) * int(b.shape[1])
    return OpCost(macs=macs, flops=2 * macs)


@register_formula(aten.addmm)
def _addmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    a, b = args[1], args[2]
    macs = int(a.shape[0]) * int(a.shape[1]) * int(b.shape[1])
    return OpCost(macs=macs, flops=2 * macs + _numel(_first_tensor(out)))


@register_formula(aten.bmm)
def _bmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    a, b = args[0], args[1]
    macs = int(a.shape[0]) * int(a.shape[1]) * int(a.shape[2]) * int(b.shape[2])
    return OpCost(macs=macs, flops=2 * macs)


@register_formula(aten.baddbmm)
def _baddbmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    a, b = args[1], args[2]
    macs = int(a.shape[0]) * int(a.shape[1]) * int(a.shape[2]) * int(b.shape[2])
    return OpCost(macs=macs, flops=2 * macs + _numel(_first_tensor(out)))


# --- element-wise ----------------------------------------------------------------------------------


def _per_element(flops_per_element: int) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        return OpCost(flops=flops_per_element * _numel(_first_tensor(out)))

    return formula


def _alpha_scaled(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    alpha = _arg(args, kwargs, 2, "alpha", 1)
    per = 1 if alpha == 1 else 2
    return OpCost(flops=per * _numel(_first_tensor(out)))


register_formula(aten.add, aten.add_, aten.sub, aten.sub_, aten.rsub)(_alpha_scaled)
register_formula(
    aten.mul, aten.mul_, aten.div, aten.div_,
    aten.relu, aten.relu_, aten.threshold, aten.threshold_, aten.clamp_min, aten.clamp_min_,
    aten.clamp_max, aten.clamp_max_, aten.tanh, aten.tanh_, aten.neg, aten.abs, aten.exp, aten.log,
    aten.sqrt, aten.rsqrt, aten.reciprocal, aten.pow, aten.square,
)(_per_element(1))
register_formula(aten.hardtanh, aten.hardtanh_, aten.clamp, aten.clamp_, aten.leaky_relu, aten.leaky_relu_)(
    _per_element(2)
)
register_formula(aten.sigmoid, aten.sigmoid_, aten.hardsigmoid, aten.hardsigmoid_, aten.elu, aten.elu_)(_per_element(4))
register_formula(aten.hardswish, aten.hardswish_, aten.silu, aten.silu_)(_per_element(5))
register_formula(aten._softmax, aten._log_softmax)(_per_element(5))


@register_formula(aten.gelu, aten.gelu_)
def _gelu(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    approximate = _arg(args, kwargs, 1, "approximate", "none")
    return OpCost(flops=(9 if approximate == "tanh" else 5) * _numel(_first_tensor(out)))


@register_formula(aten.native_dropout)
def _dropout(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    train = _arg(args, kwargs, 2, "train", True)
    return OpCost(flops=2 * _numel(args[0]) if train in (True, None) else 0)


# --- normalisation -----------------------------------------------------------------------------------


def _batch_norm(training_index: int | None) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        training = False if training_index is None else bool(_arg(args, kwargs, training_index, "training", False))
        return OpCost(flops=(6 if training else 2) * _numel(args[0]))

    return formula


register_formula(aten.native_batch_norm, aten._native_batch_norm_legit)(_batch_norm(5))
register_formula(aten._native_batch_norm_legit_functional)(_batch_norm(5))
register_formula(aten._native_batch_norm_legit_no_training)(_batch_norm(None))
register_formula(aten.cudnn_batch_norm, aten.miopen_batch_norm)(_batch_norm(5))


@register_formula(aten.native_layer_norm)
def _layer_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=8 * _numel(args[0]))


@register_formula(aten.native_group_norm)
def _group_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=6 * _numel(args[0]))


# --- pooling and reductions ----------------------------------------------------------------------------


def _window(kernel: Any, dims: int) -> int:
    ks = [int(k) for k in kernel] if isinstance(kernel, (list, tuple)) else [int(kernel)]
    if len(ks) == 1:
        ks = ks * dims
    return math.prod(ks)


def _max_pool(dims: int) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        k = _window(_arg(args, kwargs, 1, "kernel_size"), dims)
        return OpCost(flops=(k - 1) * _numel(_first_tensor(out)))

    return formula


def _avg_pool(dims: int) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        k = _window(_arg(args, kwargs, 1, "kernel_size"), dims)
        return OpCost(flops=k * _numel(_first_tensor(out)))

    return formula


register_formula(aten.max_pool1d, aten.max_pool1d_with_indices)(_max_pool(1))
register_formula(aten.max_pool2d, aten.max_pool2d_with_indices)(_max_pool(2))
register_formula(aten.max_pool3d, aten.max_pool3d_with_indices)(_max_pool(3))
register_formula(aten.avg_pool1d)(_avg_pool(1))
register_formula(aten.avg_pool2d)(_avg_pool(2))
register_formula(aten.avg_pool3d)(_avg_pool(3))


def adaptive_window_total(in_size: int, out_size: int) -> int:
    """Sum of PyTorch's adaptive-pooling window lengths along one dimension.

    Output cell ``i`` pools input ``[floor(i*I/O), ceil((i+1)*I/O))``, as in ATen's ``start_index`` /
    ``end_index``.
    """
    return sum(-(-((i + 1) * in_size) // out_size) - (i * in_size) // out_size for i in range(out_size))


def _adaptive_avg(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    x, y = args[0], _first_tensor(out)
    n_spatial = len(_arg(args, kwargs, 1, "output_size"))
    total = math.prod(int(d) for d in x.shape[: x.dim() - n_spatial])  # one window set per (N, C) plane
    for i in range(1, n_spatial + 1):
        total *= adaptive_window_total(int(x.shape[-i]), int(y.shape[-i]))
    return OpCost(flops=total)


def _adaptive_max(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    avg = _adaptive_avg(args, kwargs, out)
    return OpCost(flops=avg.flops - _numel(_first_tensor(out)))


register_formula(aten._adaptive_avg_pool2d, aten._adaptive_avg_pool3d, aten.adaptive_avg_pool1d)(_adaptive_avg)
register_formula(aten.adaptive_max_pool2d, aten.adaptive_max_pool3d)(_adaptive_max)


@register_formula(aten.mean)
def _mean(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=_numel(args[0]))


@register_formula(aten.sum)
def _sum(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=_numel(args[0]) - _numel(_first_tensor(out)))


# --- data movement --------------------------------------------------------------------------------------

register_formula(
    aten.cat, aten.stack, aten.clone, aten.copy, aten.copy_, aten._to_copy, aten.constant_pad_nd,
    aten.zeros_like, aten.zero_, aten.fill_, aten.contiguous, aten.index_select, aten.gather,
)(_per_element(0))

#: Operators that allocate without computing or moving data.
ALLOCATIONS = frozenset(
    overload
    for op in (aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided)
    for overload in _overloads(op)
)

_MAX_POOL_WITH_INDICES = frozenset(
    overload
    for op in (aten.max_pool1d_with_indices, aten.max_pool2d_with_indices, aten.max_pool3d_with_indices)
    for overload in _overloads(op)
)
_BATCH_NORM_TRAINING_ARG = {
    overload: 5 for op in (aten.native_batch_norm, aten._native_batch_norm_legit) for overload in _overloads(op)
}


def discarded_outputs(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """Outputs an operator writes only as an artefact of eager PyTorch, which inference discards and a
    deployment engine does not produce: max pooling's int64 argmax indices, and batch norm's saved
    mean / inverse std outside training. They are left out of the memory traffic."""
    if func in _MAX_POOL_WITH_INDICES:
        return (1,)
    index = _BATCH_NORM_TRAINING_ARG.get(func)
    if index is not None and not _arg(args, kwargs, index, "training", False):
        return (1, 2)
    if func in FORMULAS and func.overloadpacket is aten._native_batch_norm_legit_no_training:
        return (1, 2)
    return ()


def op_cost(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost | None:
    """The cost of one ATen call, or ``None`` when no formula is registered for ``func``."""
    formula = FORMULAS.get(func)
    if formula is None:
        return None
    return formula(args, kwargs, out)
