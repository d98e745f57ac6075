"""Profile an ONNX file: the same per-layer rows as the PyTorch profiler, computed from the graph.

One :class:`~deploykit.profile.types.LayerProfile` per ONNX node (``kind="onnx"``), in graph order. Shapes come
from ``onnx.shape_inference`` after the symbolic batch is set; costs follow the conventions of
:mod:`deploykit.profile.formulas` (MACs = conv / Gemm / MatMul multiply-accumulates; FLOPs = 2 per MAC + bias
adds + element-wise, normalisation and pooling work):

=======================================================  ==========================================================
ONNX node                                                FLOPs
=======================================================  ==========================================================
Conv, ConvTranspose                                      2 * MACs + (output elements if a bias input is present)
Gemm                                                     2 * MACs + (output elements if C is present); alpha/beta
                                                         scaling is not counted (as for ``addmm``)
MatMul                                                   2 * MACs (batch dims broadcast)
Einsum (1 or more operands)                              as ``torch.einsum`` computes it: a letter in one operand only
                                                         and not in the output is summed first (input - output
                                                         elements); each pairwise contraction, left to right, is
                                                         prod(letter sizes) MACs (a product without a contracted
                                                         letter: 1 FLOP per element)
LSTM, GRU, RNN                                           per direction, T*B rows: MACs = rows * G*H * (I + H); FLOPs
                                                         = 2 * MACs + 2 * G*H * rows (with B) + 22 H (LSTM; + 6 H
                                                         with peepholes) / 16 H (GRU) / 2 H (RNN) per row, as the
                                                         PyTorch profile (:func:`~deploykit.profile.formulas.rnn_cell_cost`)
Add, Sub, Mul, Div, Relu, Tanh, Neg, Abs, Exp, Log,      1 per output element
Sqrt, Reciprocal, Pow
Clip                                                     1 per element per bound given (min and max: 2)
LeakyRelu, PRelu                                         2 per element
Sigmoid, HardSigmoid, Elu                                4 per element
HardSwish, Softmax, LogSoftmax                           5 per element; Gelu 5 (erf form), 9 (``approximate=tanh``)
Max, Min, Sum (n inputs)                                 n - 1 per output element; Mean (n inputs): n
BatchNormalization                                       2 per element (inference), 6 with ``training_mode=1``
InstanceNormalization, GroupNormalization                6 per element; LayerNormalization 8
MaxPool (k window)                                       k - 1 per output element
AveragePool (k window)                                   k per output element
GlobalAveragePool, ReduceMean                            1 per input element
GlobalMaxPool, ReduceSum, ReduceMax, ReduceMin           input - output elements
Concat, Transpose, Cast, Slice, Gather*, Split, Pad,     0 (data movement: traffic, no arithmetic); Resize only
Expand, Tile, ConstantOfShape, DepthToSpace, Where, ...  with ``mode=nearest`` (interpolation is unsupported)
Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout  views: no FLOPs, no traffic, no activation bytes
Constant, Shape, Size                                    free: metadata, nothing read or written at run time
=======================================================  ==========================================================

Any other node (including nodes of a non-default domain and control flow) is listed in its row's
``unsupported``, never silently counted as zero; so is a node whose tensor shapes inference cannot resolve.

**Parameters.** Initializers are classified by the role in which a node first consumes them:

* *parameters*: weight-like inputs (Conv / ConvTranspose weight and bias, Gemm and MatMul operands, LSTM / GRU /
  RNN ``W``, ``R``, ``B`` and peepholes,
  BatchNormalization / InstanceNormalization / LayerNormalization / GroupNormalization scale and bias, PRelu slope,
  DequantizeLinear's quantized weight), and any other floating-point initializer with more than one element (a
  bias ``Add`` after a ``MatMul``) unless the node's dynamo-exporter metadata shows that the PyTorch operator it
  comes from took no parameter (``pkg.torch.onnx.fx_node`` names no ``%p_*`` argument: the window sizes an
  adaptive average pool divides by). A row's ``params`` are the parameter elements it uses first (a shared
  initializer counts once);
* *buffers*: BatchNormalization's running mean and variance (buffers in PyTorch too): read, not counted;
* *constants*: integer initializers (shapes, axes, pads, indices), LSTM / GRU / RNN initial states
  (``initial_h``, ``initial_c``: the zeros a PyTorch RNN starts from), floating-point scalars outside a weight role
  (an exporter's ``+ 3`` or ``/ 6``) and the exporter-made tensors above: not counted.

``unused_params`` counts the elements of floating-point initializers that no node consumes. An ``Identity`` of an
initializer (the TorchScript exporter's de-duplication) is followed through to the initializer.

**Agreement with the PyTorch profile.** MACs agree exactly: for every registered model,
``profile_onnx(f, batch_size=b).total_macs == profile_model(name, batch_size=b).total_macs`` (a folded BatchNorm
adds no MACs). Parameters are those the *file* holds, and the dynamo exporter's optimizer (onnxscript) changes
them depending on the weights' values:

* it folds an eval-mode BatchNorm that follows a Conv / ConvTranspose / Gemm into it: the BatchNorm's ``2 * C``
  affine parameters disappear and the node gets the bias ``<weight>_bias`` (``C`` elements) if it had none;
* it drops an all-zero Conv / ConvTranspose / Gemm bias, including a folded bias that comes out all zero (a freshly
  initialised BatchNorm) and biases a model initialises to zero (vgg, densenet, mobilenet_v3 heads);
* it de-duplicates initializers with equal contents (fresh BatchNorms of equal width share one ``ones`` tensor).

So, exactly: ``onnx params == torch params - folded BatchNorm params - dropped zero biases - de-duplicated
params - params the forward never uses + fused biases``. The first and last terms are in
``spec["initializers"]`` (``folded_batchnorm``, ``fused_bias``; ``spec["folded_batchnorms"]`` names the
BatchNorm modules, from the exporter's node metadata); :func:`reconcile_params` accounts for every parameter of
the module given the module itself. Where none of the three rewrites applies (lenet, nin, d2l-googlenet:
no BatchNorm, no zero bias) the parameter counts are equal. FLOPs and traffic of a folded Conv are the Conv's
(2 per MAC + a bias add if it has a bias): the BatchNorm's 2 FLOPs per element and its read and write are gone,
as they are in the deployed graph.

**Bytes.** Tensors count at their ONNX element type (an fp16 graph: 2 bytes per element, a 4-bit type: half a
byte); ``dtype`` overrides the size of floating-point tensors, as ``--dtype`` does for the PyTorch profile.
Traffic = every input tensor the node reads (activations, parameters, buffers) + every output it writes, except
shape-like arguments (Reshape's shape, Reduce* axes, Slice starts/ends, Pad pads, Clip bounds, ...), which are
kernel arguments, as they are Python numbers in PyTorch. ``act_bytes`` = the outputs (0 for views and free
nodes).

**Names.** When the graph comes from ``torch.onnx.export(dynamo=True)``, the node metadata
(``pkg.torch.onnx.name_scopes`` / ``class_hierarchy``) gives the PyTorch module path: a node in a leaf module is
named after it (``layer1.0.relu``, a second call ``layer1.0.relu#2``), a node called inside a non-leaf module
``<module>/<aten op>`` (``layer1.0/add``), as in the PyTorch profile. A Conv the exporter made by folding a
BatchNorm into it carries the BatchNorm's scope; its row is named after the convolution whose weight it holds
(``layer1.0.conv1``). Other graphs: the node's name (the TorchScript exporter's ``/layer1/layer1.0/conv1/Conv``
also gives a best-effort module path), or ``<op>_<index>`` for an unnamed node.
"""

from __future__ import annotations

import ast
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploykit.errors import InvalidInput
from deploykit.precision import Precision
from deploykit.profile.formulas import (
    ELEMENTWISE,
    NO_ARITHMETIC,
    NORMALIZATION,
    POOLING,
    REDUCTION,
    UNSUPPORTED,
)
from deploykit.profile.onnx_formulas import (  # noqa: F401  (moved; re-exported)
    _ARGUMENT_INPUTS,
    _BUFFER_INPUTS,
    _ONNX_CATEGORY,
    _PARAM_INPUTS,
    DATA_MOVEMENT_OPS,
    FREE_OPS,
    ONNX_FORMULAS,
    VIEW_OPS,
    OnnxFormula,
    OnnxNode,
    _avg_pool,
    _batch_norm,
    _clip,
    _conv,
    _conv_transpose,
    _einsum,
    _gelu,
    _gemm,
    _matmul,
    _max_pool,
    _numel,
    _per_element,
    _per_input_element,
    _reduce,
    _resize,
    _rnn,
    _variadic,
    _variadic_mean,
    _zero,
    einsum_cost,
    onnx_category,
    register_onnx_formula,
)
from deploykit.profile.onnx_load import (  # noqa: F401  (moved; re-exported)
    _DTYPE_OF_ELEM,
    _all_initializers,
    _bits,
    _dims,
    _external_files,
    _infer,
    _is_float,
    _load,
    _nbytes,
    _set_batch,
    _skeleton,
    _subgraphs,
    _Tensor,
    _torch_params,
    _type_name,
    classify_initializer,
)
from deploykit.profile.types import DTYPE_BYTES, LayerProfile, ModelProfile, Shape

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DATA_MOVEMENT_OPS",
    "FREE_OPS",
    "ONNX_FORMULAS",
    "VIEW_OPS",
    "OnnxNode",
    "classify_initializer",
    "profile_onnx",
    "register_onnx_formula",
]


# --- matmul family ------------------------------------------------------------------------------------


# --- element-wise ----------------------------------------------------------------------------------------


register_onnx_formula(
    "Add", "Sub", "Mul", "Div", "Relu", "Tanh", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Pow",
    category=ELEMENTWISE,
)(_per_element(1))
register_onnx_formula("LeakyRelu", "PRelu", category=ELEMENTWISE)(_per_element(2))
register_onnx_formula("Sigmoid", "HardSigmoid", "Elu", category=ELEMENTWISE)(_per_element(4))
register_onnx_formula("HardSwish", "Softmax", "LogSoftmax", category=ELEMENTWISE)(_per_element(5))


# --- normalisation ----------------------------------------------------------------------------------------


register_onnx_formula("InstanceNormalization", "GroupNormalization", category=NORMALIZATION)(_per_input_element(6))
register_onnx_formula("LayerNormalization", category=NORMALIZATION)(_per_input_element(8))


# --- pooling and reductions -----------------------------------------------------------------------------------


register_onnx_formula("GlobalAveragePool", category=POOLING)(_per_input_element(1))
register_onnx_formula("ReduceMean", category=REDUCTION)(_per_input_element(1))


# --- data movement ----------------------------------------------------------------------------------------------


register_onnx_formula(*sorted(DATA_MOVEMENT_OPS), category=NO_ARITHMETIC)(_zero)


# --- tensors: element types and sizes ------------------------------------------------------------------------------


# --- loading ---------------------------------------------------------------------------------------------------------


# --- names from the exporter's metadata ------------------------------------------------------------------------------


@dataclass
class _Scope:
    module: str
    leafable: bool  # the node runs inside ``module`` itself (name it after the module if that is a leaf)
    fx_op: str
    chain: list[tuple[str, str]] = field(default_factory=list)  # (module path, class name) outermost first


def _literal_list(text: str | None) -> list[str] | None:
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


_WEIGHT = re.compile(r"^(?P<module>.+)\.weight$")
_CALL_SUFFIX = re.compile(r"_\d+$")


def _scope(node: onnx.NodeProto) -> _Scope | None:
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = _literal_list(meta.get("pkg.torch.onnx.name_scopes"))
    if scopes:
        classes = _literal_list(meta.get("pkg.torch.onnx.class_hierarchy")) or []
        mods = scopes[:-1] or [""]
        chain = [(s, c.rsplit(".", 1)[-1]) for s, c in zip(mods, classes[: len(mods)], strict=False)]
        fx_op = classes[-1].split(".")[1] if len(classes) > len(mods) and classes[-1].count(".") >= 1 else ""
        fx_op = fx_op or _CALL_SUFFIX.sub("", scopes[-1])
        if "FuseBatchNormInto" in meta.get("pkg.onnxscript.rewriter.rule_name", "") and len(node.input) > 1:
            m = _WEIGHT.match(node.input[1])
            if m:  # the BatchNorm was folded into this Conv: name the row after the convolution
                return _Scope(m.group("module"), True, fx_op, chain[:-1])
        return _Scope(mods[-1], True, fx_op, chain)
    if node.name.startswith("/") and node.name.count("/") >= 2:
        # TorchScript exporter: "/layer1/layer1.0/conv1/Conv" -> module "layer1.0.conv1"
        path = ""
        for part in node.name.strip("/").split("/")[:-1]:
            path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
        return _Scope(path, False, "", [])
    return None


_FX_ARGS = re.compile(r"\(args = \((?P<args>.*?)\), kwargs = ")


def _folded_batchnorm(node: onnx.NodeProto, channels: int | None) -> tuple[str, int] | None:
    """``(BatchNorm module path, its affine parameter elements)`` when the dynamo exporter's optimizer folded a
    BatchNorm into this Conv / ConvTranspose / Gemm (the node then carries the BatchNorm's metadata); else None."""
    meta = {p.key: p.value for p in node.metadata_props}
    if "FuseBatchNormInto" not in meta.get("pkg.onnxscript.rewriter.rule_name", ""):
        return None
    scopes = _literal_list(meta.get("pkg.torch.onnx.name_scopes")) or []
    module = scopes[-2] if len(scopes) >= 2 else ""
    m = _FX_ARGS.search(meta.get("pkg.torch.onnx.fx_node", ""))
    args = [a.strip() for a in m.group("args").split(",")] if m else []
    # aten batch norm args: (input, weight, bias, running_mean, running_var, ...); "%p_*" are parameters, a
    # BatchNorm2d(affine=False) passes None.
    affine = sum(1 for a in args[1:3] if a.startswith("%p_"))
    return module, affine * (channels or 0)


# --- the profiler -----------------------------------------------------------------------------------------------------


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    import onnx

    out: dict[str, Any] = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _referenced_in_subgraphs(graph: onnx.GraphProto) -> set[str]:
    names: set[str] = set()
    for node in graph.node:
        for sub in _subgraphs(node):
            for n in sub.node:
                names.update(n.input)
            names |= _referenced_in_subgraphs(sub)
    return names


def _graph_dtype(model: onnx.ModelProto, values: Mapping[str, _Tensor], inputs: Sequence[str]) -> str:
    """The dtype label: the element type holding most initializer elements, else the first input's."""
    by_type: dict[int, int] = {}
    for t in model.graph.initializer:
        if _is_float(t.data_type) or _type_name(t.data_type) in ("INT8", "UINT8"):
            by_type[t.data_type] = by_type.get(t.data_type, 0) + math.prod(t.dims)
    elem = max(by_type, key=lambda k: by_type[k]) if by_type else (values[inputs[0]].elem_type if inputs else 1)
    name = _type_name(elem)
    if name not in _DTYPE_OF_ELEM:
        raise InvalidInput(
            f"the graph's tensors are {name}, which has no profile dtype; pass dtype= (one of {', '.join(DTYPE_BYTES)})"
        )
    return _DTYPE_OF_ELEM[name]


def _aliases(graph: onnx.GraphProto, init_protos: Mapping[str, Any]) -> dict[str, str]:
    """``Identity(initializer)`` (TorchScript's de-duplication) aliases the initializer itself."""
    alias: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.input:
            src = alias.get(node.input[0], node.input[0])
            if src in init_protos:
                alias[node.output[0]] = src
    return alias


class _RowNamer:
    """Row names and module paths from the exporter's metadata: a leaf module's own name, else
    ``module/op``, else the node's name; repeated names get ``#2``, ``#3``, ..."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.scopes = [_scope(n) for n in graph.node]
        self.all_modules = {s for sc in self.scopes if sc for s, _ in sc.chain}
        self.all_modules |= {sc.module for sc in self.scopes if sc}
        self.module_types = {s: c for sc in self.scopes if sc for s, c in sc.chain}
        self.counts: dict[str, int] = {}

    def _is_leaf(self, module: str) -> bool:
        return bool(module) and not any(m.startswith(module + ".") for m in self.all_modules)

    def row(self, index: int, node: onnx.NodeProto) -> tuple[str, str]:
        """``(module, unique row name)`` of node ``index``."""
        sc = self.scopes[index]
        if sc is None:
            module, base = "", node.name or f"{node.op_type}_{index}"
        elif sc.leafable and sc.fx_op:
            module = sc.module
            base = module if self._is_leaf(module) else (f"{module}/{sc.fx_op}" if module else sc.fx_op)
        else:
            module, base = sc.module, node.name or f"{node.op_type}_{index}"
        k = self.counts.get(base, 0) + 1
        self.counts[base] = k
        return module, base if k == 1 else f"{base}#{k}"


def _node_cost(
    op: str, node: onnx.NodeProto, ins: Sequence[str], outs: Sequence[str], in_t: Sequence[_Tensor | None],
    out_t: Sequence[_Tensor | None], override: int | None,
) -> tuple[int, int, int, int, list[str]]:
    """``(macs, flops, act_bytes, traffic_bytes, unsupported)`` of one node from its formula and tensor sizes."""
    unknown = any(n and (t is None or t.shape is None) for n, t in zip([*ins, *outs], [*in_t, *out_t], strict=True))
    macs = flops = act = traffic = 0
    unsupported: list[str] = []
    if op in FREE_OPS or op in VIEW_OPS:
        return macs, flops, act, traffic, unsupported
    if unknown:
        return macs, flops, act, traffic, [f"{op} (shape unknown)"]
    formula = ONNX_FORMULAS.get(op)
    info = OnnxNode(
        op_type=op,
        attrs=_attrs(node),
        inputs=tuple(t.shape if t is not None else None for t in in_t),
        outputs=tuple(t.shape if t is not None else None for t in out_t),
    )
    cost = formula(info) if formula is not None else None
    if cost is None:
        unsupported.append(op)
    else:
        macs, flops = cost.macs, cost.flops
    args = _ARGUMENT_INPUTS.get(op, frozenset())
    read = {n: t for i, (n, t) in enumerate(zip(ins, in_t, strict=True)) if n and t is not None and i not in args}
    written = [t for n, t in zip(outs, out_t, strict=True) if n and t is not None]
    act = sum(_nbytes(t, override) for t in written)
    traffic = sum(_nbytes(t, override) for t in read.values()) + act
    return macs, flops, act, traffic, unsupported


def _claim_initializers(
    op: str, node: onnx.NodeProto, ins: Sequence[str], init_protos: Mapping[str, Any], seen: set[str],
    classes: dict[str, int], override: int | None,
) -> tuple[int, int]:
    """Classify the initializers this node is the first to read (``classes`` counts elements per class);
    returns the node's ``(params, param_bytes)``."""
    params = param_bytes = 0
    for i, name in enumerate(ins):
        t = init_protos.get(name)
        if t is None or name in seen:
            continue
        seen.add(name)
        numel = math.prod(t.dims)
        kind = classify_initializer(op, i, t.data_type, numel, torch_params=_torch_params(node))
        classes[kind] += numel
        if kind == "param":
            params += numel
            param_bytes += _nbytes(_Tensor(t.data_type, tuple(t.dims)), override)
    return params, param_bytes


def _io(values: Mapping[str, _Tensor], names: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {"name": n, "shape": list(values[n].shape or ()), "dtype": _type_name(values[n].elem_type).lower()}
        for n in names
        if n in values
    ]


def _count_fold(
    node: onnx.NodeProto, ins: Sequence[str], out_t: Sequence[_Tensor | None], init_protos: Mapping[str, Any],
    folded: dict[str, int],
) -> int:
    """Record a BatchNorm the exporter folded into this Conv / Gemm in ``folded`` (module path -> affine
    parameter elements); returns the elements of the bias the fold gave a bias-less node."""
    out_shape = out_t[0].shape if out_t and out_t[0] is not None else None
    fold = _folded_batchnorm(node, out_shape[1] if out_shape is not None and len(out_shape) > 1 else None)
    if fold is None:
        return 0
    folded[fold[0]] = folded.get(fold[0], 0) + fold[1]
    # the fold gives a bias-less node the bias ``<weight>_bias`` (dropped again when it is all zero)
    if len(ins) > 2 and len(ins[1]) and ins[2] == f"{ins[1]}_bias" and ins[2] in init_protos:
        return math.prod(init_protos[ins[2]].dims)
    return 0


def profile_onnx(
    path: str | os.PathLike[str],
    *,
    batch_size: int | None = None,
    dtype: str | None = None,
) -> ModelProfile:
    """Per-node parameters, MACs, FLOPs, activation bytes and memory traffic of an ONNX file.

    Args:
        path: the ``.onnx`` file; external data (``<name>.onnx.data``) is found next to it and never loaded.
        batch_size: the size given to a symbolic batch (dimension 0 of the graph inputs); default 1, or the
            graph's own fixed batch. A fixed batch other than ``batch_size`` is an error.
        dtype: ``fp32`` | ``tf32`` | ``fp16`` | ``bf16`` | ``int8`` overrides the size of floating-point tensors;
            default: each tensor's ONNX element type, and the profile's dtype is the type holding most weights.

    Returns:
        A :class:`ModelProfile` with ``source="onnx"`` and one row (``kind="onnx"``, ``op`` = the node's op type)
        per node, so :func:`deploykit.profile.roofline.roofline` and the report tables work on it unchanged.
        ``spec`` describes the file: opset, producer, inputs and outputs, the initializer classes
        (``initializers``: parameter / buffer / constant / unused elements, plus the ``folded_batchnorm`` and
        ``fused_bias`` elements of the exporter's BatchNorm folding) and ``folded_batchnorms`` (module paths).

    Raises:
        ArtifactError: the file is missing, not ONNX, rejected by ``onnx.checker``, its external data is missing
            or truncated, or shape inference fails.
        InvalidInput: a bad ``batch_size`` / ``dtype``, or a symbolic dimension other than the batch.

    Conventions and the per-op formulas: see this module's docstring (they are those of the PyTorch profile).

    >>> p = profile_onnx("deploykit-out/resnet18.onnx")           # doctest: +SKIP
    >>> p.total_macs                                              # doctest: +SKIP
    1814073344
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidInput(f"batch size must be a positive integer, got {batch_size!r}")
    if dtype is not None:
        Precision.parse(dtype, what="dtype")
    p = Path(path)
    model, external = _load(p)
    graph = model.graph
    init_protos = {t.name: t for t in graph.initializer}
    batch = _set_batch(model, set(init_protos), batch_size)
    values = _infer(_skeleton(model), p)
    inputs = [vi.name for vi in graph.input if vi.name not in init_protos]
    label = dtype or _graph_dtype(model, values, inputs)
    override = DTYPE_BYTES[dtype] if dtype is not None else None
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    producer = f"{model.producer_name} {model.producer_version}".strip()

    alias = _aliases(graph, init_protos)
    namer = _RowNamer(graph)
    seen_inits: set[str] = set()
    classes = {"param": 0, "buffer": 0, "constant": 0}
    folded: dict[str, int] = {}  # BatchNorm module path -> affine parameter elements folded away
    fused_bias = 0
    categories: dict[str, str] = {}
    rows: list[LayerProfile] = []
    for index, node in enumerate(graph.node):
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        op = f"{domain}:{node.op_type}" if domain else node.op_type
        ins = [alias.get(n, n) for n in node.input]
        outs = list(node.output)

        params, param_bytes = _claim_initializers(op, node, ins, init_protos, seen_inits, classes, override)

        in_t = [values.get(n) if n else None for n in ins]
        out_t = [values.get(n) if n else None for n in outs]
        macs, flops, act, traffic, unsupported = _node_cost(op, node, ins, outs, in_t, out_t, override)

        cat = UNSUPPORTED if unsupported else onnx_category(op)
        if categories.get(op) != UNSUPPORTED:
            categories[op] = cat

        if op in ("Conv", "ConvTranspose", "Gemm"):
            fused_bias += _count_fold(node, ins, out_t, init_protos, folded)

        module, name = namer.row(index, node)
        rows.append(
            LayerProfile(
                name=name,
                module=module,
                op=op,
                kind="onnx",
                input_shapes=tuple(t.shape for n, t in zip(ins, in_t, strict=True) if n and t is not None and t.shape is not None),
                output_shapes=tuple(t.shape for n, t in zip(outs, out_t, strict=True) if n and t is not None and t.shape is not None),
                params=params,
                macs=macs,
                flops=flops,
                param_bytes=param_bytes,
                act_bytes=act,
                traffic_bytes=traffic,
                unsupported=tuple(unsupported),
            )
        )

    consumed = seen_inits | _referenced_in_subgraphs(graph)
    unused = sum(
        math.prod(t.dims) for name, t in init_protos.items() if name not in consumed and _is_float(t.data_type)
    )
    first = values.get(inputs[0]) if inputs else None
    input_shape: Shape = first.shape if first is not None and first.shape is not None else (batch,)

    spec = {
        "file": os.fspath(p),
        "format": "onnx",
        "opset": opset,
        "producer": producer,
        "batch_size": batch,
        "inputs": _io(values, inputs),
        "outputs": _io(values, (o.name for o in graph.output)),
        "nodes": len(graph.node),
        "initializers": {"params": classes["param"], "buffers": classes["buffer"], "constants": classes["constant"],
                         "unused": unused, "folded_batchnorm": sum(folded.values()), "fused_bias": fused_bias},
        "folded_batchnorms": sorted(folded),
        "external_data": external,
    }
    return ModelProfile(
        model=p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.stem,
        input_shape=input_shape,
        dtype=label,
        layers=tuple(rows),
        unused_params=unused,
        module_types=namer.module_types,
        spec=spec,
        source="onnx",
        op_categories=dict(sorted(categories.items())),
    )
