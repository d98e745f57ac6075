"""Other tools' FLOP conventions, computed from the same trace as deploykit's own counts.

``deploykit profile --convention fvcore | flop-counter`` reports a model's total as these tools count it, next
to deploykit's MACs and FLOPs, so that a number from a paper or another tool can be reconciled with ours:

* ``flop-counter``: ``torch.utils.flop_counter.FlopCounterMode`` on the meta device. A dispatch mode like
  deploykit's, it counts 2 per MAC of the ATen operators in its registry (``mm``, ``addmm``, ``bmm``,
  ``baddbmm``, ``_scaled_mm``, the convolutions, the CUDA fused-attention kernels) and nothing else: no bias
  adds, no element-wise work, no normalisation, 0 for ``mv`` and ``dot``. On the meta device attention and
  recurrent layers run as ``bmm`` / ``addmm``; on the CPU they dispatch to kernels FlopCounterMode has no
  formula for (``_scaled_dot_product_flash_attention_for_cpu``, ``mkldnn_rnn_layer``), which it counts as 0.
  deploykit reports the meta-device number, whatever device its own trace ran on.
  :func:`flop_counter_flops` applies these rules to one ATen call.
* ``fvcore``: ``fvcore.nn.FlopCountAnalysis``. It counts one "flop" per MAC of ``_convolution``, ``addmm``,
  ``mm``, ``bmm``, ``matmul``, ``linear`` and ``einsum`` (``np.einsum_path``'s optimised count / 2), plus
  estimates for batch norm (eval: 1 or 2 per element; training: 4 or 5), layer / group / instance norm (4 or 5
  per element), nearest / bilinear upsampling (1 / 4 per output element), ``grid_sampler`` (4) and
  ``adaptive_avg_pool2d`` (1 per input element). Anything else is 0: ``baddbmm``, softmax, element-wise work,
  ``scaled_dot_product_attention`` (in any backend) and the RNN operators. fvcore traces the model with
  ``torch.jit`` and sees the ATen operator called from Python (``aten::linear``, ``aten::einsum``); deploykit's
  trace sees what they dispatch to, so the rules are applied at two levels: :data:`FVCORE_FUNCTIONS` for the
  Python-level calls whose count depends on their arguments (``einsum``, ``matmul``, ``adaptive_avg_pool2d``,
  ``instance_norm``, ``scaled_dot_product_attention``), :func:`fvcore_flops` for the dispatched operators
  otherwise. Scaled dot-product attention called from inside another function
  (``F.multi_head_attention_forward``) is recognised on the meta device by its ``_safe_softmax``: the two
  ``bmm`` around it are not counted (:class:`FvcoreSdpaFilter`).

Both are checked against the real tools on the whole model zoo in the test suite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from deploykit.profile.formulas import conv_macs, op_cost

aten = torch.ops.aten

#: ``--convention`` values; ``deploykit`` is this package's own MACs and FLOPs.
CONVENTIONS = ("deploykit", "fvcore", "flop-counter")


def _overloads(*packets: Any) -> frozenset[Any]:
    return frozenset(getattr(p, name) for p in packets for name in p.overloads())


def _numel(x: Any) -> int:
    return int(x.numel()) if isinstance(x, torch.Tensor) else 0


def _first(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return next((o for o in out if isinstance(o, torch.Tensor)), None)
    return None


def _mm_macs(a: torch.Tensor, out: Any) -> int:
    y = _first(out)
    return (_numel(y) if y is not None else 0) * int(a.shape[-1])


_CONV = _overloads(aten.convolution, aten._convolution)
_CONV_TORCH = _CONV | _overloads(aten.cudnn_convolution, aten.convolution_overrideable, aten._slow_conv2d_forward)
_MM = _overloads(aten.mm, aten.bmm)
_ADDMM = _overloads(aten.addmm, aten.baddbmm)
_SDPA_TORCH = _overloads(aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention,
                         aten._scaled_dot_product_cudnn_attention)
_SDPA_FORWARD_TORCH = _overloads(aten._flash_attention_forward, aten._efficient_attention_forward)
#: Kernels only real devices dispatch, which the meta device runs as bmm / addmm (FlopCounterMode counts those).
_FUSED = _overloads(aten._scaled_dot_product_flash_attention_for_cpu, aten._scaled_dot_product_fused_attention_overrideable,
                    aten.mkldnn_rnn_layer, aten._cudnn_rnn, aten.miopen_rnn)


def _conv(args: Sequence[Any], out: Any) -> int:
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    y = _first(out)
    return conv_macs(x.shape, w.shape, y.shape if y is not None else (), transposed)


def flop_counter_flops(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    """What ``FlopCounterMode`` counts for one ATen call of a meta-device trace: 2 per MAC of the operators it
    knows, else 0. A fused attention or recurrent kernel (which only a real device dispatches) counts what
    FlopCounterMode counts for the ``bmm`` / ``addmm`` of its meta-device decomposition: 2 per MAC."""
    if func in _FUSED:
        cost = op_cost(func, args, kwargs, out)
        return 2 * cost.macs if cost is not None else 0
    if func in _MM:
        return 2 * _mm_macs(args[0], out)
    if func in _ADDMM:
        return 2 * _mm_macs(args[1], out)
    if func in _CONV_TORCH:
        if func.overloadpacket is aten._slow_conv2d_forward:  # (input, weight, kernel_size, bias, stride, padding)
            return 2 * conv_macs(args[0].shape, args[1].shape, _first(out).shape, False)  # type: ignore[union-attr]
        return 2 * _conv(args, out)
    if func in _SDPA_TORCH or func in _SDPA_FORWARD_TORCH:
        q, k, v = args[0].shape, args[1].shape, args[2].shape
        if func in _SDPA_FORWARD_TORCH:  # (B, L, H, E)
            b, sq, h, d = q
            sk, dv = k[1], v[-1]
        else:
            b, h, sq, d = q
            sk, dv = k[-2], v[-1]
        return 2 * b * h * sq * sk * d + 2 * b * h * sq * sk * dv
    if func.overloadpacket is aten._scaled_mm:
        return 2 * _mm_macs(args[0], out)
    return 0


# --- fvcore -------------------------------------------------------------------------------------------------------

_BN_TRAINING = {
    **{o: 5 for o in _overloads(aten.native_batch_norm, aten._native_batch_norm_legit, aten.cudnn_batch_norm,
                                aten.miopen_batch_norm, aten._native_batch_norm_legit_functional)},
    aten._native_batch_norm_legit.no_stats: 3,
    aten._native_batch_norm_legit.no_stats_out: 3,
}
_BN_EVAL = _overloads(aten._native_batch_norm_legit_no_training)
_LAYER_NORM = _overloads(aten.native_layer_norm)
_GROUP_NORM = _overloads(aten.native_group_norm)
_UPSAMPLE_NEAREST = _overloads(aten.upsample_nearest2d)
_UPSAMPLE_BILINEAR = _overloads(aten.upsample_bilinear2d)
_GRID_SAMPLER = _overloads(aten.grid_sampler_2d)
_ADAPTIVE_AVG_2D = _overloads(aten._adaptive_avg_pool2d)


def fvcore_flops(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    """What fvcore counts for one dispatched ATen call made outside the calls of :data:`FVCORE_FUNCTIONS`."""
    if func in _CONV:
        return _conv(args, out)
    if func.overloadpacket in (aten.mm, aten.bmm):
        return _mm_macs(args[0], out)
    if func.overloadpacket is aten.addmm:
        return _mm_macs(args[1], out)
    if func in _BN_TRAINING or func in _BN_EVAL:
        index = _BN_TRAINING.get(func)
        training = bool(args[index]) if index is not None and len(args) > index else bool(kwargs.get("training"))
        affine = len(args) > 1 and args[1] is not None
        return _numel(args[0]) * ((5 if affine else 4) if training else (2 if affine else 1))
    if func in _LAYER_NORM or func in _GROUP_NORM:
        weight = args[2] if func in _LAYER_NORM else args[1]
        return _numel(args[0]) * (5 if weight is not None else 4)
    if func in _UPSAMPLE_NEAREST:
        return _numel(_first(out))
    if func in _UPSAMPLE_BILINEAR or func in _GRID_SAMPLER:
        return 4 * _numel(_first(out))
    if func in _ADAPTIVE_AVG_2D:
        return _numel(args[0])
    return 0


def fvcore_einsum(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """fvcore's count of ``torch.einsum(equation, *operands)``: its two special cases, else numpy's optimal
    contraction path's FLOP count / 2."""
    import numpy as np

    eq = equation.replace(" ", "")
    order = dict.fromkeys(c for c in eq if c.isalpha())
    eq = eq.translate({ord(c): 97 + i for i, c in enumerate(order)})
    if eq == "abc,abd->acd":
        n, c, t = shapes[0]
        return int(n * c * t * shapes[-1][-1])
    if eq == "abc,adc->adb":
        n, t, g = shapes[0]
        return int(n * t * g * shapes[-1][1])
    arrays = [np.broadcast_to(np.zeros((), dtype=np.float32), tuple(int(d) for d in s)) for s in shapes]
    report = np.einsum_path(eq, *arrays, optimize="optimal")[1]
    for line in report.split("\n"):
        if "optimized flop" in line.lower():
            return math.floor(float(line.split(":")[-1]) / 2)
    return 0


def _fv_einsum(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    operands = args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    return fvcore_einsum(str(args[0]), [tuple(t.shape) for t in operands if isinstance(t, torch.Tensor)])


def _fv_matmul(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    a, b = args[0], args[1]
    return math.prod(int(d) for d in a.shape) * (int(b.shape[-1]) if b.dim() >= 2 else 1)


def _fv_instance_norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    weight = args[3] if len(args) > 3 else kwargs.get("weight")
    return _numel(args[0]) * (5 if weight is not None else 4)


def _fv_adaptive_avg_pool2d(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    return _numel(args[0])


#: Python-level calls (by the name deploykit's trace gives them) that fvcore counts as a whole, with the
#: ATen operators they dispatch to counting nothing more.
FVCORE_FUNCTIONS: dict[str, Callable[[Sequence[Any], dict[str, Any], Any], int]] = {
    "einsum": _fv_einsum,
    "matmul": _fv_matmul,
    "adaptive_avg_pool2d": _fv_adaptive_avg_pool2d,
    "instance_norm": _fv_instance_norm,
    "scaled_dot_product_attention": lambda args, kwargs, out: 0,
    # recurrent layers: fvcore's trace sees aten::lstm / aten::gru / ... and has no handle for them
    **dict.fromkeys(("lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"),
                    lambda args, kwargs, out: 0),
}

_SAFE_SOFTMAX = _overloads(aten._safe_softmax)


class FvcoreSdpaFilter:
    """Within one Python-level call, drop fvcore's count of the two ``bmm`` of a math-backend scaled dot-product
    attention (the ``bmm`` before ``_safe_softmax``, which only that backend calls, and the ``bmm`` after it).

    ``charge(func, count)`` returns what to add now and a correction for the previously charged ``bmm``.
    """

    def __init__(self) -> None:
        self.last_bmm: tuple[Any, int] | None = None
        self.skip_next_bmm = False

    def charge(self, func: Any, count: int, row: Any) -> tuple[int, tuple[Any, int] | None]:
        if func in _SAFE_SOFTMAX:
            undo, self.last_bmm, self.skip_next_bmm = self.last_bmm, None, True
            return 0, undo
        if func.overloadpacket is aten.bmm:
            if self.skip_next_bmm:
                self.skip_next_bmm = False
                return 0, None
            self.last_bmm = (row, count)
        return count, None
