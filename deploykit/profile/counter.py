"""The per-layer counting engine: one forward pass on the ``meta`` device, observed at three levels.

* **Module hooks** open a row for every call of a leaf module (a module without children) and keep the stack
  of enclosing modules.
* A ``TorchFunctionMode`` opens a row for every torch function or tensor method called directly inside a
  non-leaf module's ``forward`` (``F.relu``, ``torch.cat``, ``Y += X``) and attributes it to that module.
* A ``TorchDispatchMode`` sees every ATen operator that runs and charges its MACs, FLOPs and memory traffic
  (formulas in :mod:`deploykit.profile.formulas`) to the open row.

On ``meta`` tensors no activation memory is allocated and no arithmetic is done, so even ``vgg19`` at batch
256 profiles in about a second. Byte counts use the requested dtype's element size for floating tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from deploykit.errors import InvalidInput
from deploykit.models.registry import create_model
from deploykit.models.shapes import fmt_shape, shape_error
from deploykit.profile.formulas import ALLOCATIONS, discarded_outputs, op_cost
from deploykit.profile.types import DTYPE_BYTES, LayerProfile, ModelProfile

_DUNDER_INPLACE = {"iadd": "add_", "isub": "sub_", "imul": "mul_", "itruediv": "div_", "idiv": "div_"}
_DUNDER_REFLECTED = {"radd": "add", "rsub": "sub", "rmul": "mul", "rtruediv": "div", "truediv": "div"}


def _function_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or type(func).__name__
    if name.startswith("__") and name.endswith("__"):
        core = name[2:-2]
        return _DUNDER_INPLACE.get(core) or _DUNDER_REFLECTED.get(core) or core
    return str(name)


def _tensors(obj: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def _storage(t: torch.Tensor) -> StorageWeakRef:
    return StorageWeakRef(t.untyped_storage())


@dataclass
class _Row:
    name: str
    module: str
    op: str
    kind: str
    inputs: list[torch.Tensor]
    params: int = 0
    macs: int = 0
    flops: int = 0
    traffic_bytes: int = 0
    aten_ops: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    computed: bool = False  # ran at least one operator that is not a view or an allocation
    scope: Any = None  # an entered context manager around the row's work (see ``row_scope``)
    label: str = ""


class _Recorder(TorchFunctionMode):
    """Collects rows. Used as a TorchFunctionMode itself; owns the dispatch mode that charges costs."""

    def __init__(self, model: nn.Module, elem_bytes: int, row_scope: Any = None) -> None:
        super().__init__()
        self.model = model
        self.row_scope = row_scope
        self.seq = 0
        #: ``row_scope`` label of every row kept -> its final row name
        self.labels: dict[str, str] = {}
        self.elem_bytes = elem_bytes
        self.paths = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
        self.leaves = {id(m) for m in model.modules() if next(m.children(), None) is None}
        self.param_ids = {id(p) for p in model.parameters()}
        self.params_used: set[int] = set()
        self.stack: list[tuple[str, nn.Module, list[tuple[int, ...]], _Row | None]] = []
        self.open: _Row | None = None
        self.rows: list[LayerProfile] = []
        self.name_counts: dict[str, int] = {}
        self.in_hook = False

    # --- helpers -------------------------------------------------------------------------------
    def nbytes(self, t: torch.Tensor) -> int:
        per = self.elem_bytes if t.is_floating_point() else t.element_size()
        return int(t.numel()) * per

    def unique_name(self, base: str) -> str:
        n = self.name_counts.get(base, 0) + 1
        self.name_counts[base] = n
        return base if n == 1 else f"{base}#{n}"

    def take_params(self, params: Iterable[torch.Tensor]) -> int:
        count = 0
        for p in params:
            if id(p) in self.param_ids and id(p) not in self.params_used:
                self.params_used.add(id(p))
                count += int(p.numel())
        return count

    def enter_scope(self, row: _Row) -> None:
        """Open ``row_scope(label)`` around the row's work (e.g. a profiler range), if one was given."""
        if self.row_scope is not None:
            self.seq += 1
            row.label = f"dk#{self.seq}"
            row.scope = self.row_scope(row.label)
            row.scope.__enter__()

    def exit_scope(self, row: _Row) -> None:
        if row.scope is not None:
            row.scope.__exit__(None, None, None)
            row.scope = None

    def close(self, row: _Row, output: Any) -> None:
        if row.label:
            self.labels[row.label] = row.name
        outs = _tensors(output)
        in_storages = {_storage(t) for t in row.inputs}
        fresh: dict[StorageWeakRef, int] = {}
        for t in outs:
            s = _storage(t)
            if s not in in_storages:
                fresh[s] = max(fresh.get(s, 0), self.nbytes(t))
        self.rows.append(
            LayerProfile(
                name=row.name,
                module=row.module,
                op=row.op,
                kind=row.kind,
                input_shapes=tuple(tuple(t.shape) for t in row.inputs),
                output_shapes=tuple(tuple(t.shape) for t in outs),
                params=row.params,
                macs=row.macs,
                flops=row.flops,
                param_bytes=row.params * self.elem_bytes,
                act_bytes=sum(fresh.values()) if row.computed or row.kind == "module" else 0,
                traffic_bytes=row.traffic_bytes,
                aten_ops=tuple(row.aten_ops),
                unsupported=tuple(dict.fromkeys(row.unsupported)),
            )
        )

    # --- module hooks ------------------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        self.in_hook = True
        try:
            path = self.paths.get(id(module), "?")
            inputs = _tensors((args, kwargs))
            row = None
            if id(module) in self.leaves and self.open is None:
                row = _Row(
                    name=self.unique_name(path or "(root)"),
                    module=path,
                    op=type(module).__name__,
                    kind="module",
                    inputs=inputs,
                    params=self.take_params(module.parameters()),
                )
                self.open = row
                self.enter_scope(row)
            self.stack.append((path, module, [tuple(t.shape) for t in inputs], row))
        finally:
            self.in_hook = False

    def post_hook(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        self.in_hook = True
        try:
            _, _, _, row = self.stack.pop()
            if row is not None:
                self.exit_scope(row)
                self.open = None
                self.close(row, output)
        finally:
            self.in_hook = False

    # --- functional calls inside non-leaf modules ---------------------------------------------------
    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.open is not None or self.in_hook or not self.stack:
            return func(*args, **kwargs)
        path = self.stack[-1][0]
        op = _function_name(func)
        inputs = _tensors((args, kwargs))
        row = _Row(name="", module=path, op=op, kind="function", inputs=inputs, params=self.take_params(inputs))
        self.open = row
        self.enter_scope(row)
        try:
            out = func(*args, **kwargs)
        finally:
            self.exit_scope(row)
            self.open = None
        if row.computed or row.params:
            row.name = self.unique_name(f"{path}/{op}" if path else op)
            self.close(row, out)
        return out

    # --- ATen level: costs -------------------------------------------------------------------------
    def charge(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        if func in ALLOCATIONS:
            return
        row = self.open
        implicit = row is None
        if row is None:  # an operator outside any recognised call: give it a row of its own
            path = self.stack[-1][0] if self.stack else ""
            op = func.overloadpacket.__name__
            row = _Row(name=self.unique_name(f"{path}/{op}" if path else op), module=path, op=op,
                       kind="function", inputs=_tensors((args, kwargs)))
        short = func.overloadpacket.__name__
        row.aten_ops.append(short)
        returns = func._schema.returns
        is_view = bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)
        if not is_view:
            row.computed = True
            cost = op_cost(func, args, kwargs, out)
            first = next(iter(_tensors(out)), None)
            if first is not None and not (first.is_floating_point() or first.is_complex()):
                pass  # integer bookkeeping (BatchNorm's num_batches_tracked += 1) is not floating-point work
            elif cost is None:
                row.unsupported.append(short)
            else:
                row.macs += cost.macs
                row.flops += cost.flops
            read = {id(t): t for t in _tensors((args, kwargs))}
            outs = out if isinstance(out, (tuple, list)) else (out,)
            skip = discarded_outputs(func, args, kwargs)
            written = [t for i, t in enumerate(outs) if isinstance(t, torch.Tensor) and i not in skip]
            row.traffic_bytes += sum(self.nbytes(t) for t in read.values()) + sum(self.nbytes(t) for t in written)
        if implicit and row.computed:
            self.close(row, out)


class _Dispatch(TorchDispatchMode):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.recorder.charge(func, args, kwargs, out)
        return out


def profile_module(
    model: nn.Module,
    x: torch.Tensor,
    *,
    name: str = "model",
    dtype: str = "fp32",
    spec: dict[str, Any] | None = None,
    row_scope: Any = None,
    labels: dict[str, str] | None = None,
    run: Callable[[nn.Module, torch.Tensor], Any] | None = None,
) -> ModelProfile:
    """Profile ``model`` on input ``x`` (usually a ``meta`` tensor). The model is run once, in its current
    mode, under ``no_grad``. See :func:`profile_model` for the names and conventions.

    ``row_scope(label)``, when given, returns a context manager entered around each row's work (e.g.
    ``torch.profiler.record_function``); ``labels`` then receives ``{label: row name}`` for the rows kept, so
    measurements taken inside the scopes can be attributed to the profile's rows.

    ``run(model, x)``, when given, replaces the plain ``model(x)`` call (still inside ``no_grad`` and the
    recording modes): the memory model uses it to run a training forward under ``enable_grad`` and keep
    its output.
    """
    if dtype not in DTYPE_BYTES:
        raise InvalidInput(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPE_BYTES)}")
    rec = _Recorder(model, DTYPE_BYTES[dtype], row_scope)
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
        handles.append(m.register_forward_hook(rec.post_hook, with_kwargs=True))
    try:
        with torch.no_grad(), rec, _Dispatch(rec):
            if run is None:
                model(x)
            else:
                run(model, x)
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError, AssertionError) as exc:
        text = str(exc)
        if x.device.type == "meta" and ("meta" in text.lower() or "data-dependent" in text.lower()):
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise InvalidInput(f"{name} cannot run on the meta device ({first}); profile it with --device cpu") from None
        where = rec.stack[-1][:3] if rec.stack else None
        raise shape_error(name, tuple(x.shape), where, exc) from None
    finally:
        for h in handles:
            h.remove()
    if labels is not None:
        labels.update(rec.labels)
    unused = sum(int(p.numel()) for p in model.parameters() if id(p) not in rec.params_used)
    module_types = {path: type(m).__name__ for path, m in model.named_modules()}
    return ModelProfile(
        model=name,
        input_shape=tuple(x.shape),
        dtype=dtype,
        layers=tuple(rec.rows),
        unused_params=unused,
        module_types=module_types,
        spec=spec or {},
    )


def profile_model(
    model: str | nn.Module,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    device: str = "meta",
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> ModelProfile:
    """Per-layer parameters, MACs, FLOPs, activation bytes and memory traffic of a model.

    Args:
        model: a registered name (``"nin"``), an import path (``"mypkg.nets:Net"``) or an ``nn.Module``
            (then ``input_shape``, per sample, is required and the module's own device is used).
        batch_size: samples per batch.
        dtype: ``fp32``, ``tf32``, ``fp16``, ``bf16`` or ``int8``: the element size used for bytes.
        device: ``meta`` (default: nothing allocated, nothing computed) or ``cpu`` for models whose forward
            needs real data.
        input_shape, num_classes, in_channels, image_size: overrides, as for ``create_model``.

    Returns:
        A :class:`ModelProfile`; ``profile.total_params`` equals ``sum(p.numel())`` of the model.

    Raises:
        ModelNotFound, InvalidInput, ShapeError: bad name, option or input shape (one-line messages).

    Conventions: ``macs`` counts conv / linear / matmul multiply-accumulates only; ``flops`` counts every
    floating-point operation (2 per MAC plus bias, element-wise, normalisation and pooling work; see
    :mod:`deploykit.profile.formulas`).

    >>> p = profile_model("resnet18")
    >>> p.total_params, p.total_macs
    (11689512, 1814073344)
    """
    if batch_size <= 0:
        raise InvalidInput("batch size must be positive")
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise InvalidInput("profiling an nn.Module needs its per-sample input_shape")
        from deploykit.models.registry import parse_shape

        shape = (batch_size, *parse_shape(input_shape))
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device(device)
        return profile_module(model, torch.zeros(shape, device=dev), name=type(model).__name__, dtype=dtype)
    module, spec = create_model(
        model, device=device, num_classes=num_classes, in_channels=in_channels,
        image_size=image_size, input_shape=input_shape,
    )
    x = torch.zeros(spec.batch_shape(batch_size), device=device)
    return profile_module(module, x, name=spec.name, dtype=dtype, spec=spec.to_dict())


__all__ = ["fmt_shape", "profile_model", "profile_module"]
