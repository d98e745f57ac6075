"""Cost formulas: one small pure function per ATen operator family, in a registry.

Conventions (the README and ``deploykit profile --help`` state the same):

* ``macs`` counts multiply-accumulates of convolution, linear, matmul, attention and recurrent-cell matrix work
  only (the papers' "mult-adds"). This is what fvcore calls "flops" for those operators.
* ``flops`` counts every floating-point operation: **2 per MAC**, plus the bias add (1 per output element),
  plus element-wise, normalisation and pooling work per the table below. ``torch.utils.flop_counter``
  counts 2 per MAC and nothing else, so for conv/linear/matmul ours exceed it by exactly the bias adds.
* A convolution's MACs count every kernel tap, including taps that fall on zero padding (as fvcore and
  torch's counter do); a transposed convolution is counted from its input side.
* Per-channel constant folding (``gamma / sqrt(var + eps)``) is O(C) and not counted.
* Fused kernels are counted as their unfused (math) form computes, so a count never depends on the device the
  trace ran on: scaled dot-product attention (math, flash, memory-efficient, CPU flash, cuDNN) as the math
  backend's ``q·√s``, ``k·√s``, ``QKᵀ``, mask add, softmax, dropout and ``·V``; LSTM / GRU / RNN kernels
  (oneDNN ``mkldnn_rnn_layer``, cuDNN ``_cudnn_rnn``, MIOpen, the fused CUDA cells) as ATen's cell-by-cell
  decomposition.

=================================  ===================================================================
operator                           FLOPs
=================================  ===================================================================
convolution                        2 * MACs + (output elements if bias)
addmm / mm / bmm / baddbmm / mv    2 * MACs (+ output elements for the added term)
scaled dot-product attention       2 * MACs + q and k scaling + mask add + 5 per score (softmax)
                                   (+ 2 per score with dropout); MACs = B*H*L*S*(E + Ev)
LSTM / GRU / RNN (per step, row)   2 * MACs + 2 * G*H bias adds + 22 H (LSTM) / 16 H (GRU) / 2 H (RNN)
add / sub / mul / div (+ in-place) 1 per output element (add/sub with alpha != 1: 2)
relu, threshold, clamp_min/max     1 per element; other unary maths (exp, erf, sin, floor, ...) 1
hardtanh (ReLU6), clamp            2 per element (max and min); lerp, addcmul, addcdiv 2-3
leaky_relu, prelu                  2 per element; elu, celu 4; selu 5; softplus 3; mish 5
sigmoid                            4 per element (negate, exp, add 1, divide)
tanh                               1 per element (one transcendental)
hardsigmoid                        4 per element (add 3, max, min, divide by 6)
hardswish                          5 per element (hardsigmoid, then multiply)
silu                               5 per element; gelu: 5 (erf form), 9 (tanh form); glu 5 per output
batch norm, inference              2 per element (x * scale + shift, per-channel scale/shift folded)
batch norm, training               6 per element (mean 1, variance 3, scale and shift 2)
layer norm                         8 per element (statistics 4, normalise 2, affine 2)
group norm                         6 per element (statistics 4, scale and shift 2)
max pool (k window)                k - 1 comparisons per output element
avg pool (k window)                k per output element (k - 1 adds and 1 divide)
adaptive avg pool                  exact window sizes: sum over output cells of the window size
mean                               1 per input element; sum, prod, amax, amin, max, min: input - output
var / std                          4 per input element (+ 1 per output for std's root)
vector norm                        2 per input element + 1 per output element
softmax / log_softmax              5 per element (max, subtract, exp, sum, divide)
bilinear / bicubic resampling      2 * taps - 1 per output element (linear 3, bilinear 7, trilinear 15,
                                   bicubic 31); grid_sample likewise; nearest: 0
dropout (training)                 2 per element
no arithmetic                      0: cat, stack, clone, copy, pad, index, gather, scatter, roll, flip,
                                   repeat, masked_fill, where, tril/triu, embedding, pixel shuffle, nearest
                                   upsampling, fills (zeros, ones, full, scalar_tensor, arange), random
                                   draws. Traffic only: the bytes they really read and write
=================================  ===================================================================

Views (``view``, ``_unsafe_view``, ``t``, ``permute``, ``expand``, ``unsqueeze``, ``unsafe_split``,
in-place ``transpose_`` / ``as_strided_``, ...) and allocations (``empty``) cost nothing and move no data.
Operators whose result is not floating point (comparisons, integer index arithmetic) are not FLOPs; their
bytes are traffic. Any other operator is reported as *unsupported*: deploykit does not know its cost.

Every operator has a :data:`category <CATEGORIES>` (:func:`category_of`), reported per profile in
``op_categories``.

Other tools' conventions (fvcore, ``FlopCounterMode``), computed from the same trace: see
:mod:`deploykit.profile.conventions`.

The registry (:class:`OpCost`, the categories, :data:`FORMULAS`, :func:`register_formula`) and the formulas of
the multiply-accumulating operators (convolution / linear / matmul, attention, recurrent kernels) live in
:mod:`deploykit.profile.mac_formulas`; this module re-exports them, adds the other families and the lookups
(:func:`op_cost`, :func:`category_of`, :func:`read_bytes`, :func:`discarded_outputs`). Import from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from deploykit.profile.mac_formulas import (  # noqa: F401  (the registry and the MAC formulas; re-exported)
    _CATEGORY,
    ALLOCATION,
    ATTENTION,
    CATEGORIES,
    ELEMENTWISE,
    FORMULAS,
    MATMUL,
    NO_ARITHMETIC,
    NORMALIZATION,
    NOT_FLOATING,
    POOLING,
    RECURRENT,
    REDUCTION,
    RESAMPLING,
    RNN_CELL_FLOPS,
    RNN_GATES,
    RNN_MODES,
    UNSUPPORTED,
    VIEW,
    Formula,
    OpCost,
    _arg,
    _first_tensor,
    _numel,
    _overloads,
    _packets,
    aten,
    conv_macs,
    register_formula,
    rnn_cell_cost,
    sdpa_cost,
)

# --- element-wise ----------------------------------------------------------------------------------


def _per_element(flops_per_element: int) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        return OpCost(flops=flops_per_element * _numel(_first_tensor(out)))

    return formula


def _alpha_scaled(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    alpha = _arg(args, kwargs, 2, "alpha", 1)
    per = 1 if alpha == 1 else 2
    return OpCost(flops=per * _numel(_first_tensor(out)))


register_formula(aten.add, aten.add_, aten.sub, aten.sub_, aten.rsub, category=ELEMENTWISE)(_alpha_scaled)
register_formula(
    *_packets(("mul", "div", "relu", "threshold", "clamp_min", "clamp_max", "tanh", "neg", "abs", "exp", "log", "sqrt",
               "rsqrt", "reciprocal", "pow", "square", "erf", "erfc", "erfinv", "sin", "cos", "tan", "sinh", "cosh",
               "asin", "acos", "atan", "atan2", "asinh", "acosh", "atanh", "sign", "sgn", "floor", "ceil", "round",
               "trunc", "frac", "exp2", "log2", "log10", "log1p", "expm1", "remainder", "fmod", "minimum", "maximum",
               "fmin", "fmax", "hypot", "logit", "sinc", "true_divide", "xlogy"), inplace=True),
    aten.max.other, aten.min.other, aten.hardshrink, aten.softshrink,
    category=ELEMENTWISE,
)(_per_element(1))
register_formula(
    aten.hardtanh, aten.hardtanh_, aten.clamp, aten.clamp_, aten.leaky_relu, aten.leaky_relu_, aten._prelu_kernel,
    aten.addcmul, aten.addcmul_, aten.addcdiv, aten.addcdiv_, category=ELEMENTWISE,
)(_per_element(2))
register_formula(aten.softplus, aten.lerp, aten.lerp_, category=ELEMENTWISE)(_per_element(3))
register_formula(
    aten.sigmoid, aten.sigmoid_, aten.hardsigmoid, aten.hardsigmoid_, aten.elu, aten.elu_, aten.celu, aten.celu_,
    aten.log_sigmoid_forward, category=ELEMENTWISE,
)(_per_element(4))
register_formula(
    aten.hardswish, aten.hardswish_, aten.silu, aten.silu_, aten.mish, aten.mish_, aten.selu, aten.selu_, aten.glu,
    category=ELEMENTWISE,
)(_per_element(5))
register_formula(aten._softmax, aten._log_softmax, aten._safe_softmax, aten._masked_softmax, category=ELEMENTWISE)(
    _per_element(5)
)


@register_formula(aten.gelu, aten.gelu_, category=ELEMENTWISE)
def _gelu(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    approximate = _arg(args, kwargs, 1, "approximate", "none")
    return OpCost(flops=(9 if approximate == "tanh" else 5) * _numel(_first_tensor(out)))


@register_formula(aten.native_dropout, category=ELEMENTWISE)
def _dropout(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    train = _arg(args, kwargs, 2, "train", True)
    return OpCost(flops=2 * _numel(args[0]) if train in (True, None) else 0)


# --- normalisation -----------------------------------------------------------------------------------


def _batch_norm(training_index: int | None) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        training = False if training_index is None else bool(_arg(args, kwargs, training_index, "training", False))
        return OpCost(flops=(6 if training else 2) * _numel(args[0]))

    return formula


register_formula(aten.native_batch_norm, category=NORMALIZATION)(_batch_norm(5))
register_formula(aten._native_batch_norm_legit.default, aten._native_batch_norm_legit.out, category=NORMALIZATION)(
    _batch_norm(5)
)
register_formula(aten._native_batch_norm_legit.no_stats, aten._native_batch_norm_legit.no_stats_out,
                 category=NORMALIZATION)(_batch_norm(3))
register_formula(aten._native_batch_norm_legit_functional, category=NORMALIZATION)(_batch_norm(5))
register_formula(aten._native_batch_norm_legit_no_training, category=NORMALIZATION)(_batch_norm(None))
register_formula(aten.cudnn_batch_norm, aten.miopen_batch_norm, category=NORMALIZATION)(_batch_norm(5))


@register_formula(aten.native_layer_norm, category=NORMALIZATION)
def _layer_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=8 * _numel(args[0]))


@register_formula(aten.native_group_norm, category=NORMALIZATION)
def _group_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=6 * _numel(args[0]))


@register_formula(aten._fused_rms_norm, category=NORMALIZATION)
def _rms_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    # As ATen's decomposition: x^2 1, mean 1, multiply by rsqrt 1, weight 1 per element; eps add and rsqrt per row.
    x, y = args[0], _first_tensor(out)
    dims = len(_arg(args, kwargs, 1, "normalized_shape"))
    rows = math.prod(int(d) for d in x.shape[: x.dim() - dims])
    weight = _arg(args, kwargs, 2, "weight") is not None
    return OpCost(flops=(4 if weight else 3) * _numel(y) + 2 * rows)


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


register_formula(aten.max_pool1d, aten.max_pool1d_with_indices, category=POOLING)(_max_pool(1))
register_formula(aten.max_pool2d, aten.max_pool2d_with_indices, category=POOLING)(_max_pool(2))
register_formula(aten.max_pool3d, aten.max_pool3d_with_indices, category=POOLING)(_max_pool(3))
register_formula(aten.avg_pool1d, category=POOLING)(_avg_pool(1))
register_formula(aten.avg_pool2d, category=POOLING)(_avg_pool(2))
register_formula(aten.avg_pool3d, category=POOLING)(_avg_pool(3))


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


register_formula(aten._adaptive_avg_pool2d, aten._adaptive_avg_pool3d, aten.adaptive_avg_pool1d, category=POOLING)(
    _adaptive_avg
)
register_formula(aten.adaptive_max_pool2d, aten.adaptive_max_pool3d, category=POOLING)(_adaptive_max)


@register_formula(aten.mean, category=REDUCTION)
def _mean(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=_numel(args[0]))


@register_formula(aten.sum, aten.prod, aten.amax, aten.amin, aten.max.dim, aten.max.default, aten.min.dim,
                  aten.min.default, category=REDUCTION)
def _sum(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=_numel(args[0]) - _numel(_first_tensor(out)))


@register_formula(aten.var, aten.var_mean, category=REDUCTION)
def _var(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=4 * _numel(args[0]))


@register_formula(aten.std, aten.std_mean, category=REDUCTION)
def _std(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=4 * _numel(args[0]) + _numel(_first_tensor(out)))


@register_formula(aten.linalg_vector_norm, category=REDUCTION)
def _vector_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=2 * _numel(args[0]) + _numel(_first_tensor(out)))


@register_formula(aten.logsumexp, category=REDUCTION)
def _logsumexp(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    # max, subtract, exp, add per input element; log and add back the max per output element
    return OpCost(flops=4 * _numel(args[0]) + 2 * _numel(_first_tensor(out)))


# --- resampling ----------------------------------------------------------------------------------------------


def _taps(taps: int) -> Formula:
    # weighted sum of ``taps`` inputs per output element: taps multiplies + (taps - 1) adds
    return _per_element(2 * taps - 1)


register_formula(aten.upsample_linear1d, category=RESAMPLING)(_taps(2))
register_formula(aten.upsample_bilinear2d, category=RESAMPLING)(_taps(4))
register_formula(aten.upsample_trilinear3d, category=RESAMPLING)(_taps(8))
register_formula(aten.upsample_bicubic2d, category=RESAMPLING)(_taps(16))


def _grid_sampler(dims: int) -> Formula:
    def formula(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
        mode = int(_arg(args, kwargs, 2, "interpolation_mode", 0))  # 0 bilinear, 1 nearest, 2 bicubic
        taps = {0: 2**dims, 1: 0, 2: 16}[mode]
        return OpCost(flops=max(2 * taps - 1, 0) * _numel(_first_tensor(out)))

    return formula


register_formula(aten.grid_sampler_2d, category=RESAMPLING)(_grid_sampler(2))
register_formula(aten.grid_sampler_3d, category=RESAMPLING)(_grid_sampler(3))

# --- no arithmetic: data movement, fills, random draws --------------------------------------------------------

register_formula(
    aten.cat, aten.stack, aten.clone, aten.copy, aten.copy_, aten._to_copy, aten.constant_pad_nd,
    aten.zeros_like, aten.zero_, aten.fill, aten.fill_, aten.contiguous, aten.index_select, aten.gather,
    *_packets((
        "index", "_unsafe_index", "masked_fill", "masked_scatter", "masked_select", "take", "roll", "flip", "repeat",
        "tril", "triu", "where", "slice_scatter", "select_scatter", "diagonal_scatter", "as_strided_scatter",
        "embedding", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle",
        "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
        "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "reflection_pad1d", "reflection_pad2d",
        "reflection_pad3d", "replication_pad1d", "replication_pad2d", "replication_pad3d", "zeros", "ones", "full",
        "new_zeros", "new_ones", "new_full", "ones_like", "full_like", "scalar_tensor", "arange", "linspace", "eye",
        "bernoulli", "rand", "randn", "rand_like", "randn_like", "randint", "normal", "uniform", "lift_fresh_copy",
        "im2col", "col2im", "max_unpool2d", "max_unpool3d", "split_with_sizes_copy", "split_copy", "unbind_copy",
        "expand_copy", "permute_copy", "view_copy", "_reshape_copy", "alias_copy", "t_copy", "transpose_copy",
        "squeeze_copy", "unsqueeze_copy", "select_copy", "slice_copy", "nan_to_num", "_index_put_impl",
    ), inplace=True),
    aten.scatter.src, aten.scatter.value, aten.scatter_.src, aten.scatter_.value,
    category=NO_ARITHMETIC,
)(_per_element(0))


@register_formula(aten.index_put, aten.index_put_, category=NO_ARITHMETIC)
def _index_put(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    # accumulate=True adds every value into its slot
    return OpCost(flops=_numel(args[2]) if _arg(args, kwargs, 3, "accumulate", False) else 0)


@register_formula(aten.scatter_add, aten.scatter_add_, aten.index_add, aten.index_add_, category=NO_ARITHMETIC)
def _scatter_add(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> OpCost:
    return OpCost(flops=_numel(args[3]))  # one add per source element


register_formula(aten.scatter.reduce, aten.scatter.value_reduce, aten.scatter_.reduce, aten.scatter_.value_reduce,
                 category=NO_ARITHMETIC)(lambda a, k, o: OpCost(flops=_numel(a[2])))
register_formula(aten.scatter_reduce, aten.scatter_reduce_, category=NO_ARITHMETIC)(
    lambda a, k, o: OpCost(flops=_numel(a[3]))
)

#: Operators that allocate without computing or moving data.
ALLOCATIONS = frozenset(
    overload
    for op in (aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided,
               aten.resize_, aten.resize_as_, aten.set_)
    for overload in _overloads(op)
)

#: Operators that return an input's memory under a new shape although their schema does not say so, and
#: in-place operators that only change metadata (``Tag.inplace_view``: ``transpose_``, ``as_strided_``, ...).
UNSAFE_VIEWS = frozenset(
    overload
    for op in (aten._unsafe_view, aten.unsafe_split, aten.unsafe_split_with_sizes, aten.unsafe_chunk, aten.alias,
               aten.lift_fresh, aten.detach)
    for overload in _overloads(op)
)


def is_view(func: Any) -> bool:
    """Whether ``func`` only reinterprets metadata (no FLOPs, no bytes): its schema returns aliases it does not
    write, it is tagged ``inplace_view``, or it is one of :data:`UNSAFE_VIEWS`."""
    if func in UNSAFE_VIEWS or torch.Tag.inplace_view in func.tags:
        return func not in ALLOCATIONS
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def category_of(func: Any, floating: bool = True) -> str:
    """The category of one ATen overload (a key of :data:`CATEGORIES`). ``floating``: whether its result is
    floating point (an integer / boolean result is :data:`NOT_FLOATING` whatever the operator)."""
    if func in ALLOCATIONS:
        return ALLOCATION
    if is_view(func):
        return VIEW
    if not floating:
        return NOT_FLOATING
    return _CATEGORY.get(func, UNSUPPORTED)


_MAX_POOL_WITH_INDICES = frozenset(
    overload
    for op in (aten.max_pool1d_with_indices, aten.max_pool2d_with_indices, aten.max_pool3d_with_indices)
    for overload in _overloads(op)
)
_BATCH_NORM_TRAINING_ARG = {
    **{overload: 5 for op in (aten.native_batch_norm, aten._native_batch_norm_legit) for overload in _overloads(op)},
    aten._native_batch_norm_legit.no_stats: 3,
    aten._native_batch_norm_legit.no_stats_out: 3,
}
#: Fused kernels whose outputs after the first are saved for backward (log-sum-exp, RNG state, cuDNN reserve).
_FIRST_OUTPUT_ONLY = frozenset(
    overload
    for op in (aten._scaled_dot_product_flash_attention_for_cpu, aten._scaled_dot_product_flash_attention,
               aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_cudnn_attention,
               aten._scaled_dot_product_fused_attention_overrideable, aten._flash_attention_forward,
               aten._efficient_attention_forward)
    for overload in _overloads(op)
)
_RNN_SAVED = {overload: (3, 4) for op in (aten._cudnn_rnn, aten.miopen_rnn) for overload in _overloads(op)}
_RNN_SAVED.update({overload: (3,) for overload in _overloads(aten.mkldnn_rnn_layer)})


#: Operators that use these tensor arguments for their shape and type only, or overwrite them without reading
#: them (``x.new_zeros(...)``, ``zeros_like(x)``, ``x.zero_()``, ``y.copy_(x)`` reads only ``x``).
_NOT_READ: dict[Any, tuple[int, ...]] = {
    overload: (0,)
    for op in _packets(("new_zeros", "new_ones", "new_full", "new_empty", "new_empty_strided", "zeros_like",
                        "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like", "zero_",
                        "fill_", "copy_", "normal_", "uniform_", "bernoulli_", "random_", "exponential_"))
    for overload in _overloads(op)
}


#: Gathers read only the rows they copy out (and the indices), not the whole source: ``{op: source arg index}``.
_GATHERS: dict[Any, int] = {
    **{o: 0 for o in _overloads(aten.embedding)},
    **{o: 0 for op in (aten.index, aten._unsafe_index, aten.index_select, aten.gather, aten.take) for o in _overloads(op)},
}


def read_bytes(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any,
               nbytes: Callable[[torch.Tensor], int]) -> int:
    """Bytes an ATen call reads: each tensor argument once, less those it uses for their shape only or
    overwrites (:data:`_NOT_READ`); a gather (``embedding``, ``index``, ``index_select``, ``gather``) reads its
    indices and only the source elements it copies out (as many as it writes)."""
    skip = _NOT_READ.get(func, ())
    source = _GATHERS.get(func)
    if source is not None:
        skip = (source,)
    leaves = [t for i, a in enumerate(args) if i not in skip for t in (a if isinstance(a, (list, tuple)) else (a,))]
    leaves += [t for a in kwargs.values() for t in (a if isinstance(a, (list, tuple)) else (a,))]
    total = sum(nbytes(t) for t in {id(t): t for t in leaves if isinstance(t, torch.Tensor)}.values())
    if source is not None:
        total += nbytes(_first_tensor(out))
    return total


def discarded_outputs(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """Outputs an operator writes only as an artefact of eager PyTorch, which inference discards and a
    deployment engine does not produce: max pooling's int64 argmax indices, batch norm's saved
    mean / inverse std outside training, fused attention's log-sum-exp and RNG state, the RNN kernels'
    workspace. They are left out of the memory traffic."""
    if func in _MAX_POOL_WITH_INDICES:
        return (1,)
    if func in _FIRST_OUTPUT_ONLY:
        return tuple(range(1, len(func._schema.returns)))
    if func in _RNN_SAVED:
        return _RNN_SAVED[func]
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
