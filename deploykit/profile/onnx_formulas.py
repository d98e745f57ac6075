"""Cost formulas of ONNX operators, one small function per op family in a registry (``register_onnx_formula``), and the op categories; used by :func:`deploykit.profile.onnx_graph.profile_onnx`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deploykit.profile.formulas import (
    ELEMENTWISE,
    MATMUL,
    NORMALIZATION,
    POOLING,
    RECURRENT,
    REDUCTION,
    RESAMPLING,
    UNSUPPORTED,
    VIEW,
    OpCost,
    conv_macs,
    rnn_cell_cost,
)
from deploykit.profile.types import Shape


@dataclass(frozen=True)
class OnnxNode:
    """What a cost formula sees of one node: its op type, attributes and fully resolved shapes.

    ``inputs`` has ``None`` for an optional input left empty (``""``); trailing absent inputs are not listed.
    """

    op_type: str
    attrs: Mapping[str, Any]
    inputs: tuple[Shape | None, ...]
    outputs: tuple[Shape | None, ...]

    def has_input(self, index: int) -> bool:
        return len(self.inputs) > index and self.inputs[index] is not None

    def input(self, index: int) -> Shape:
        s = self.inputs[index]
        if s is None:
            raise ValueError(f"{self.op_type} input {index} is absent")
        return s

    def output(self, index: int = 0) -> Shape:
        s = self.outputs[index]
        if s is None:
            raise ValueError(f"{self.op_type} output {index} is absent")
        return s

#: ``formula(node) -> OpCost``, or ``None`` when this configuration of the node has no formula.
OnnxFormula = Callable[[OnnxNode], "OpCost | None"]

ONNX_FORMULAS: dict[str, OnnxFormula] = {}

_ONNX_CATEGORY: dict[str, str] = {}

#: Nodes that only relabel their input (ONNX Runtime gives them no kernel work): no FLOPs, traffic or activation.
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})

#: Nodes evaluated from metadata or stored in the graph: nothing is read or written at run time.
FREE_OPS = frozenset({"Constant", "Shape", "Size"})

#: Nodes that copy data without arithmetic: traffic and activation bytes, 0 FLOPs.
DATA_MOVEMENT_OPS = frozenset({
    "Concat", "Transpose", "Cast", "CastLike", "Slice", "Gather", "GatherElements", "GatherND", "Split", "Pad",
    "Expand", "Tile", "ConstantOfShape", "DepthToSpace", "SpaceToDepth", "ScatterND", "ScatterElements", "Where",
})

#: Input slots that are kernel arguments (shapes, axes, bounds), not data: not counted as traffic.
_ARGUMENT_INPUTS: Mapping[str, frozenset[int]] = {
    **{op: frozenset({1}) for op in ("Reshape", "Expand", "Tile", "Squeeze", "Unsqueeze", "Split", "TopK")},
    **{op: frozenset({1}) for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd")},
    "Slice": frozenset({1, 2, 3, 4}),
    "Pad": frozenset({1, 2, 3}),
    "Resize": frozenset({1, 2, 3}),
    "Upsample": frozenset({1}),
    "Clip": frozenset({1, 2}),
    **{op: frozenset({4}) for op in ("LSTM", "GRU", "RNN")},  # sequence_lens
    "ConstantOfShape": frozenset({0}),
}

#: Input slots that hold a layer's weights.
_PARAM_INPUTS: Mapping[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}),
    "ConvTranspose": frozenset({1, 2}),
    "Gemm": frozenset({0, 1, 2}),
    "MatMul": frozenset({0, 1}),
    "BatchNormalization": frozenset({1, 2}),
    "InstanceNormalization": frozenset({1, 2}),
    "LayerNormalization": frozenset({1, 2}),
    "GroupNormalization": frozenset({1, 2}),
    "PRelu": frozenset({1}),
    "DequantizeLinear": frozenset({0}),
    # W, R, B (and LSTM's peepholes P); initial_h / initial_c are not weights
    "LSTM": frozenset({1, 2, 3, 7}),
    "GRU": frozenset({1, 2, 3}),
    "RNN": frozenset({1, 2, 3}),
}

#: Input slots that hold running statistics (PyTorch buffers).
_BUFFER_INPUTS: Mapping[str, frozenset[int]] = {"BatchNormalization": frozenset({3, 4})}

def register_onnx_formula(*op_types: str, category: str) -> Callable[[OnnxFormula], OnnxFormula]:
    """Register ``formula`` for each ONNX ``op_type`` (default domain) under ``category`` (a key of
    :data:`deploykit.profile.formulas.CATEGORIES`)."""

    def deco(fn: OnnxFormula) -> OnnxFormula:
        for op in op_types:
            if op in ONNX_FORMULAS or op in VIEW_OPS or op in FREE_OPS:
                raise ValueError(f"ONNX formula for {op} registered twice")
            ONNX_FORMULAS[op] = fn
            _ONNX_CATEGORY[op] = category
        return fn

    return deco

def onnx_category(op: str) -> str:
    """The category of an ONNX op type (``"view"`` for relabelling and metadata nodes, ``"unsupported"`` for one
    without a formula)."""
    if op in VIEW_OPS or op in FREE_OPS:
        return VIEW
    return _ONNX_CATEGORY.get(op, UNSUPPORTED)

def _numel(shape: Shape | None) -> int:
    return math.prod(shape) if shape is not None else 0

@register_onnx_formula("Conv", category=MATMUL)
def _conv(n: OnnxNode) -> OpCost:
    y = n.output()
    macs = conv_macs(n.input(0), n.input(1), y, transposed=False)
    return OpCost(macs=macs, flops=2 * macs + (_numel(y) if n.has_input(2) else 0))

@register_onnx_formula("ConvTranspose", category=MATMUL)
def _conv_transpose(n: OnnxNode) -> OpCost:
    y = n.output()
    macs = conv_macs(n.input(0), n.input(1), y, transposed=True)
    return OpCost(macs=macs, flops=2 * macs + (_numel(y) if n.has_input(2) else 0))

@register_onnx_formula("Gemm", category=MATMUL)
def _gemm(n: OnnxNode) -> OpCost:
    a, y = n.input(0), n.output()
    k = a[0] if n.attrs.get("transA", 0) else a[1]
    macs = _numel(y) * k
    return OpCost(macs=macs, flops=2 * macs + (_numel(y) if n.has_input(2) else 0))

@register_onnx_formula("MatMul", category=MATMUL)
def _matmul(n: OnnxNode) -> OpCost:
    # Every output element is one K-long dot product, whatever the broadcasting of the batch dimensions.
    macs = _numel(n.output()) * n.input(0)[-1]
    return OpCost(macs=macs, flops=2 * macs)

@register_onnx_formula("LSTM", "GRU", "RNN", category=RECURRENT)
def _rnn(n: OnnxNode) -> OpCost:
    x, w = n.input(0), n.input(1)
    dirs, _, in_size = w
    kind = n.op_type.lower()
    hidden = int(n.attrs.get("hidden_size") or n.input(2)[-1])
    steps, batch = (x[1], x[0]) if n.attrs.get("layout", 0) else (x[0], x[1])
    rows = steps * batch
    one = rnn_cell_cost(kind, rows, in_size, hidden, bias=n.has_input(3))
    peepholes = 6 * rows * hidden if kind == "lstm" and n.has_input(7) else 0
    return OpCost(macs=dirs * one.macs, flops=dirs * (one.flops + peepholes))

def einsum_cost(equation: str, shapes: Sequence[Shape]) -> OpCost | None:
    """``torch.einsum``'s work for ``equation`` on operands of ``shapes``, as the PyTorch profile counts it (see the
    table above); ``None`` for an equation it cannot parse."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes) or not arrow:
        return None
    sizes: dict[str, int] = {}
    letters: list[str] = []
    for term, shape in zip(terms, shapes, strict=True):
        if "..." in term:  # broadcast dims, aligned from the right: the last one is chr(0x100)
            head, _, tail = term.partition("...")
            k = len(shape) - len(head) - len(tail)
            term = head + "".join(chr(0x100 + k - 1 - i) for i in range(k)) + tail
        if len(term) != len(shape):
            return None
        for c, d in zip(term, shape, strict=True):
            sizes[c] = max(sizes.get(c, 1), int(d))
        letters.append(term)
    if "..." in out:
        ell = sorted({c for t in letters for c in t if ord(c) >= 0x100}, reverse=True)
        out = out.replace("...", "".join(ell))
    macs = flops = 0
    ops = [set(t) for t in letters]
    for i, t in enumerate(ops):  # letters nothing else needs are summed out first
        others = set(out).union(*(o for j, o in enumerate(ops) if j != i))
        alone = t - others
        if alone:
            before = math.prod(sizes[c] for c in t)
            ops[i] = t - alone
            flops += before - math.prod(sizes[c] for c in ops[i])
    cur = ops[0]
    for j in range(1, len(ops)):
        needed = set(out).union(*ops[j + 1:])
        both = cur | ops[j]
        contracted = (cur & ops[j]) - needed
        work = math.prod(sizes[c] for c in both)
        if contracted:
            macs += work
        else:
            flops += work
        cur = both - contracted
    return OpCost(macs=macs, flops=2 * macs + flops)

@register_onnx_formula("Einsum", category=MATMUL)
def _einsum(n: OnnxNode) -> OpCost | None:
    return einsum_cost(str(n.attrs.get("equation", "")), [n.input(i) for i in range(len(n.inputs))])

def _per_element(flops_per_element: int) -> OnnxFormula:
    def formula(n: OnnxNode) -> OpCost:
        return OpCost(flops=flops_per_element * _numel(n.output()))

    return formula

@register_onnx_formula("Gelu", category=ELEMENTWISE)
def _gelu(n: OnnxNode) -> OpCost:
    return OpCost(flops=(9 if n.attrs.get("approximate", "none") == "tanh" else 5) * _numel(n.output()))

@register_onnx_formula("Clip", category=ELEMENTWISE)
def _clip(n: OnnxNode) -> OpCost:
    # opset >= 11: bounds are inputs 1 and 2; before: attributes min / max
    bounds = sum(1 for i in (1, 2) if n.has_input(i)) + sum(1 for a in ("min", "max") if a in n.attrs)
    return OpCost(flops=bounds * _numel(n.output()))

@register_onnx_formula("Max", "Min", "Sum", category=ELEMENTWISE)
def _variadic(n: OnnxNode) -> OpCost:
    return OpCost(flops=(len(n.inputs) - 1) * _numel(n.output()))

@register_onnx_formula("Mean", category=ELEMENTWISE)
def _variadic_mean(n: OnnxNode) -> OpCost:
    return OpCost(flops=len(n.inputs) * _numel(n.output()))

@register_onnx_formula("BatchNormalization", category=NORMALIZATION)
def _batch_norm(n: OnnxNode) -> OpCost:
    return OpCost(flops=(6 if n.attrs.get("training_mode", 0) else 2) * _numel(n.input(0)))

def _per_input_element(flops_per_element: int) -> OnnxFormula:
    def formula(n: OnnxNode) -> OpCost:
        return OpCost(flops=flops_per_element * _numel(n.input(0)))

    return formula

@register_onnx_formula("MaxPool", category=POOLING)
def _max_pool(n: OnnxNode) -> OpCost:
    return OpCost(flops=(math.prod(n.attrs["kernel_shape"]) - 1) * _numel(n.output()))

@register_onnx_formula("AveragePool", category=POOLING)
def _avg_pool(n: OnnxNode) -> OpCost:
    return OpCost(flops=math.prod(n.attrs["kernel_shape"]) * _numel(n.output()))

@register_onnx_formula("GlobalMaxPool", "ReduceSum", "ReduceMax", "ReduceMin", category=REDUCTION)
def _reduce(n: OnnxNode) -> OpCost:
    return OpCost(flops=_numel(n.input(0)) - _numel(n.output()))

def _zero(n: OnnxNode) -> OpCost:
    return OpCost()

@register_onnx_formula("Resize", category=RESAMPLING)
def _resize(n: OnnxNode) -> OpCost | None:
    return OpCost() if n.attrs.get("mode", "nearest") == "nearest" else None
