"""Matching an ONNX file's initializers with a PyTorch module's parameters by content (transposed, repacked or split weights claimed once)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit.profile.onnx_graph import profile_onnx
from deploykit.profile.onnx_load import _is_float, _load, _torch_params, classify_initializer


@dataclass(frozen=True)
class ParamReconciliation:
    """Where each parameter element of a PyTorch module went in its ONNX export (see :func:`reconcile_params`).

    ``torch_params == stored + repacked + folded_batchnorm + zero_bias_dropped + deduplicated + not_exported`` and
    ``onnx_params == stored + repacked + onnx_only`` hold by construction; the point is that ``onnx_params``
    equals ``profile_onnx(path).total_params``, and ``not_exported`` only the parameters the forward never uses.

    Attributes:
        torch_params: ``sum(p.numel() for p in module.parameters())``.
        stored: elements of parameters found in the file under their own name, with their own shape.
        repacked: elements of parameters stored in another layout: transposed (a Linear's weight as a MatMul
            operand), reordered or split and concatenated (an LSTM's gate blocks in ``W``, ``R``, and both biases in
            ``B``). Found by content: every value of the parameter, with its multiplicity, is in one initializer
            (claimed once, so two parameters cannot both match the same elements).
        folded_batchnorm: elements of BatchNorm weights / biases folded into the preceding Conv / Gemm.
        zero_bias_dropped: elements of all-zero ``Conv*d`` / ``ConvTranspose*d`` / ``Linear`` biases missing from
            the file (the exporter's optimizer removes all-zero Conv / Gemm biases).
        deduplicated: elements of parameters stored under another name, as an initializer with equal values.
        not_exported: elements of parameters the file holds in none of these ways (unused by the forward).
        onnx_only: elements of initializers that :func:`profile_onnx` counts as parameters, named after no
            parameter or buffer of the module and holding no repacked parameter (biases created by BatchNorm
            folding, exporter-made tensors).
    """

    torch_params: int
    stored: int
    folded_batchnorm: int
    zero_bias_dropped: int
    deduplicated: int
    not_exported: int
    onnx_only: int
    repacked: int = 0

    @property
    def onnx_params(self) -> int:
        return self.stored + self.repacked + self.onnx_only

#: Module classes whose bias the exporter emits as a Conv / ConvTranspose / Gemm bias input (dropped when all zero).
_BIASED = frozenset({"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear"})

class _ValuePool:
    """An initializer's values as a multiset of bit patterns, from which parameters claim their elements."""

    def __init__(self, array: Any) -> None:
        import numpy as np

        self.dtype = array.dtype
        self.values, self.counts = np.unique(_bit_patterns(array), return_counts=True)
        self.claimed = 0

    def claim(self, array: Any) -> bool:
        """Take ``array``'s values (cast to this initializer's type) if all of them, counted with multiplicity,
        are still unclaimed here."""
        import numpy as np

        want, n = np.unique(_bit_patterns(array.astype(self.dtype)), return_counts=True)
        idx = np.searchsorted(self.values, want)
        if (idx >= len(self.values)).any():
            return False
        if not (self.values[idx] == want).all() or not (self.counts[idx] >= n).all():
            return False
        self.counts[idx] -= n
        self.claimed += int(n.sum())
        return True

def _bit_patterns(array: Any) -> Any:
    """Exact bit patterns (so -0.0 and 0.0, or two NaNs, are told apart as stored)."""
    import numpy as np

    flat = np.ascontiguousarray(array).reshape(-1)
    return flat.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[flat.dtype.itemsize])

def reconcile_params(module: Any, path: str | os.PathLike[str]) -> ParamReconciliation:
    """Account for every parameter of ``module`` (an ``nn.Module`` with real weights) in its ONNX export ``path``.

    The dynamo exporter's optimizer changes what the file holds, depending on the weights' *values*: it folds
    eval-mode BatchNorms into the Conv / Gemm before them, drops all-zero Conv / Gemm biases (a freshly
    initialised BatchNorm folds to a zero bias; vgg, densenet and mobilenet initialise biases to zero) and
    de-duplicates initializers with equal contents. The exporter also stores some weights in another layout
    (a Linear on a 3-D input as a transposed MatMul operand, an LSTM's weights gate-reordered and its two biases
    concatenated). This names each parameter's fate, using the names the exporter keeps
    (``layer1.0.conv1.weight``) and the values in the file.

    >>> r = reconcile_params(model, "out/resnet18.onnx")          # doctest: +SKIP
    >>> r.onnx_params == profile_onnx("out/resnet18.onnx").total_params   # doctest: +SKIP
    True
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    p = Path(path)
    model, _ = _load(p)
    folded = set(profile_onnx(p).spec.get("folded_batchnorms", ()))
    onnx.external_data_helper.load_external_data_for_model(model, os.fspath(p.parent))
    inits = {t.name: t for t in model.graph.initializer if _is_float(t.data_type)}
    by_shape: dict[tuple[int, ...], list[Any]] = {}
    for t in inits.values():
        by_shape.setdefault(tuple(int(d) for d in t.dims), []).append(t)
    values: dict[str, Any] = {}

    def value(t: Any) -> Any:
        if t.name not in values:
            values[t.name] = numpy_helper.to_array(t)
        return values[t.name]

    def owner_type(path: str) -> str:
        try:
            return type(module.get_submodule(path)).__name__
        except AttributeError:
            return ""

    names = {name for name, _ in module.named_parameters()} | {name for name, _ in module.named_buffers()}
    params = list(module.named_parameters())
    stored_names = {name for name, q in params
                    if name in inits and tuple(int(d) for d in inits[name].dims) == tuple(q.shape)}
    pools: dict[str, _ValuePool] = {}

    def repacked_into(array: Any) -> str | None:
        """The initializer (not stored under a parameter's own name) that holds all of ``array``'s values."""
        for name, t in inits.items():
            if name in stored_names or math.prod(t.dims) < array.size:
                continue
            if name not in pools:
                pools[name] = _ValuePool(value(t))
            if pools[name].claim(array):
                return name
        return None

    counts = dict.fromkeys(("stored", "repacked", "folded_batchnorm", "zero_bias_dropped", "deduplicated",
                            "not_exported"), 0)
    for name, param in params:
        numel, shape = int(param.numel()), tuple(int(d) for d in param.shape)
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        if name in stored_names:
            kind = "stored"
        elif owner in folded and name.rsplit(".", 1)[-1] in ("weight", "bias"):
            kind = "folded_batchnorm"
        else:
            array = param.detach().float().cpu().numpy()
            if name.endswith(".bias") and owner_type(owner) in _BIASED and not array.any():
                kind = "zero_bias_dropped"
            elif any(np.array_equal(value(c).astype(np.float32), array) for c in by_shape.get(shape, ())):
                kind = "deduplicated"
            elif repacked_into(array) is not None:
                kind = "repacked"
            else:
                kind = "not_exported"
        counts[kind] += numel
    onnx_only, seen = 0, set()
    for node in model.graph.node:  # initializers named after nothing in the module, in a parameter role
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        for i, name in enumerate(node.input):
            t = inits.get(name)
            if t is None or name in names or name in seen:
                continue
            seen.add(name)
            n = math.prod(t.dims)
            if classify_initializer(op, i, t.data_type, n, torch_params=_torch_params(node)) == "param":
                onnx_only += n - (pools[name].claimed if name in pools else 0)
    return ParamReconciliation(torch_params=sum(int(q.numel()) for q in module.parameters()), onnx_only=onnx_only,
                               **counts)
