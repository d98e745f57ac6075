"""The per-layer counting engine: one forward pass on the ``meta`` device, observed at three levels.

* **Module hooks** open a row for every call of a leaf module (a module without children) and keep the stack
  of enclosing modules.
* A ``TorchFunctionMode`` opens a row for every torch function or tensor method called directly inside a
  non-leaf module's ``forward`` (``F.relu``, ``torch.cat``, ``Y += X``) and attributes it to that module. A call
  that only reads metadata or makes a view (``.dtype``, ``.weight.shape``, ``x.view(...)``) is not a row.
* A ``TorchDispatchMode`` sees every ATen operator that runs and charges its MACs, FLOPs and memory traffic
  (formulas in :mod:`deploykit.profile.formulas`) to the open row, with fvcore's and ``FlopCounterMode``'s
  counts of the same call (:mod:`deploykit.profile.conventions`).

A parameter belongs to the first row that computes with it (a leaf module's own parameters to its row; one used
functionally, or through a view of it, to the function row that reads it). On ``meta`` tensors no activation
memory is allocated and no arithmetic is done, so even ``vgg19`` at batch 256 profiles in about a second. Byte
counts use the requested dtype's element size for floating tensors.

:func:`profile_model` builds and traces on ``meta``; a model that cannot be built there (a ``copy_`` from a
tensor in ``__init__``) is built on the CPU and moved to ``meta``; one whose forward needs values (a
data-dependent branch, ``.item()``) is traced on the CPU with a representative input
(:class:`~deploykit.models.inputs.InputSpec`). The profile's ``notes`` say so in one line each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from deploykit.errors import BuildError, InvalidInput, ShapeError, first_line
from deploykit.models.inputs import InputSpec
from deploykit.models.registry import create_model
from deploykit.models.shapes import fmt_shape, shape_error
from deploykit.precision import Precision
from deploykit.profile import conventions as conv
from deploykit.profile.formulas import (
    ALLOCATION,
    NO_ARITHMETIC,
    NOT_FLOATING,
    UNSUPPORTED,
    VIEW,
    category_of,
    discarded_outputs,
    op_cost,
    read_bytes,
)
from deploykit.profile.types import LayerProfile, ModelProfile


class MetaDeviceError(InvalidInput):
    """The forward pass cannot run on the ``meta`` device: it needs tensor values (``.item()``, a data-dependent
    branch) or an operator without a meta kernel. ``reason`` is PyTorch's one-line message."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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
    fvcore_flops: int = 0
    flop_counter_flops: int = 0
    traffic_bytes: int = 0
    aten_ops: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    computed: bool = False  # ran at least one operator that is not a view or an allocation
    scope: Any = None  # an entered context manager around the row's work (see ``row_scope``)
    label: str = ""


#: When one operator falls in several categories over a trace (``add`` on floats and on integer counters), the
#: most informative wins: unsupported first, then a cost formula's category, then the rest.
_CATEGORY_RANK = {UNSUPPORTED: 0, NO_ARITHMETIC: 2, NOT_FLOATING: 3, VIEW: 4, ALLOCATION: 5}

#: Recurrent layers (``nn.LSTM`` / ``GRU`` / ``RNN`` and their cells call these). Their memory traffic is that of
#: one kernel reading the input, the initial state and the weights and writing the output and the final state,
#: whatever they dispatch to: oneDNN and cuDNN run one kernel per layer, ATen's own loop (on meta) one per gate
#: and time step, and the CPU loop precomputes the input projection; the per-step bytes would depend on the device.
RECURRENT_CALLS = frozenset({"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
                             "rnn_relu_cell"})

#: Python-level calls that are attribute access, not computation (``tensor.dtype`` goes through
#: ``__torch_function__`` as ``__get__``).
_ATTRIBUTE_ACCESS = frozenset({"__get__", "__set__", "__delete__"})


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
        #: storage -> parameters in it, so a view of a parameter (``w.t()``) finds its owner
        self.param_storages: dict[StorageWeakRef, list[nn.Parameter]] = {}
        for p in model.parameters():
            self.param_storages.setdefault(_storage(p), []).append(p)
        self.params_used: set[int] = set()
        self.stack: list[tuple[str, nn.Module, list[tuple[int, ...]], _Row | None]] = []
        self.open: _Row | None = None
        self.rows: list[LayerProfile] = []
        self.name_counts: dict[str, int] = {}
        self.in_hook = False
        #: the Python-level call in progress (fvcore counts some of them as a whole)
        self.call: str | None = None
        self.sdpa_filter = conv.FvcoreSdpaFilter()
        #: ATen operator (short name) -> category, over the whole trace
        self.categories: dict[str, str] = {}

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

    def take_params_read(self, tensors: Iterable[torch.Tensor]) -> int:
        """Parameters read by a function row: the tensors themselves, or views of them (same storage)."""
        found = []
        for t in tensors:
            if id(t) in self.param_ids:
                found.append(t)
            else:
                found.extend(self.param_storages.get(_storage(t), ()))
        return self.take_params(found)

    def note_category(self, short: str, category: str) -> None:
        old = self.categories.get(short)
        if old is None or _CATEGORY_RANK.get(category, 1) < _CATEGORY_RANK.get(old, 1):
            self.categories[short] = category

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
                fvcore_flops=row.fvcore_flops,
                flop_counter_flops=row.flop_counter_flops,
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

    # --- Python-level calls: rows for functional calls inside non-leaf modules ---------------------------------
    @contextmanager
    def calling(self, op: str) -> Iterator[None]:
        """Mark ``op`` as the Python-level call in progress (the context fvcore's rules and the recurrent layers'
        traffic need)."""
        self.call, self.sdpa_filter = op, conv.FvcoreSdpaFilter()
        try:
            yield
        finally:
            self.call = None

    def whole_call(self, row: _Row | None, op: str, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        """What a call is charged as a whole: fvcore's count of the calls it counts so (``einsum``, ``matmul``,
        ...), and the traffic of a recurrent layer, read and written once."""
        if row is None:
            return
        rule = conv.FVCORE_FUNCTIONS.get(op)
        if rule is not None:
            row.fvcore_flops += rule(args, kwargs, out)
        if op in RECURRENT_CALLS:
            read = {id(t): t for t in _tensors((args, kwargs))}
            row.traffic_bytes += sum(self.nbytes(t) for t in read.values()) + sum(self.nbytes(t) for t in _tensors(out))

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in _ATTRIBUTE_ACCESS or self.in_hook or not self.stack:
            return func(*args, **kwargs)
        op = _function_name(func)
        if self.open is not None:  # inside a leaf module (or a function row): its row takes the cost
            with self.calling(op):
                out = func(*args, **kwargs)
            self.whole_call(self.open, op, args, kwargs, out)
            return out
        path = self.stack[-1][0]
        inputs = _tensors((args, kwargs))
        row = _Row(name="", module=path, op=op, kind="function", inputs=inputs)
        self.open = row
        self.enter_scope(row)
        try:
            with self.calling(op):
                out = func(*args, **kwargs)
        finally:
            self.exit_scope(row)
            self.open = None
        if row.computed:
            row.params = self.take_params_read(inputs)
            self.whole_call(row, op, args, kwargs, out)
            row.name = self.unique_name(f"{path}/{op}" if path else op)
            self.close(row, out)
        return out

    # --- ATen level: costs -------------------------------------------------------------------------
    def charge(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        short = func.overloadpacket.__name__
        first = next(iter(_tensors(out)), None)
        floating = first is not None and (first.is_floating_point() or first.is_complex())
        category = category_of(func, floating)
        self.note_category(short, category)
        if category == ALLOCATION:
            return
        row = self.open
        implicit = row is None
        if row is None:  # an operator outside any recognised call: give it a row of its own
            path = self.stack[-1][0] if self.stack else ""
            row = _Row(name=self.unique_name(f"{path}/{short}" if path else short), module=path, op=short,
                       kind="function", inputs=_tensors((args, kwargs)))
        row.aten_ops.append(short)
        if category == VIEW:
            return
        row.computed = True
        if category == UNSUPPORTED:
            row.unsupported.append(short)
        elif category != NOT_FLOATING:  # integer bookkeeping (num_batches_tracked += 1) is not FLOPs
            cost = op_cost(func, args, kwargs, out)
            if cost is not None:
                row.macs += cost.macs
                row.flops += cost.flops
        row.flop_counter_flops += conv.flop_counter_flops(func, args, kwargs, out)
        if self.call is None or self.call not in conv.FVCORE_FUNCTIONS:
            fv, undo = self.sdpa_filter.charge(func, conv.fvcore_flops(func, args, kwargs, out), row)
            row.fvcore_flops += fv
            if undo is not None:
                undo[0].fvcore_flops -= undo[1]
        if self.call in RECURRENT_CALLS:
            return  # charged once for the whole layer (see whole_call)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        skip = discarded_outputs(func, args, kwargs)
        written = [t for i, t in enumerate(outs) if isinstance(t, torch.Tensor) and i not in skip]
        row.traffic_bytes += read_bytes(func, args, kwargs, out, self.nbytes)
        row.traffic_bytes += sum(self.nbytes(t) for t in written)
        if implicit:
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


@contextmanager
def _unfused_attention(real_device: bool) -> Iterator[None]:
    """Trace attention as the meta device runs it, on every device: ``nn.MultiheadAttention`` /
    ``nn.TransformerEncoderLayer``'s fused inference fast path off (it exists only on real devices, and would
    hide the projections' rows and parameters), and scaled dot-product attention in its math backend (the
    fused backends' counts are the same, see :func:`~deploykit.profile.formulas.sdpa_cost`, but they do not
    write the attention matrix, so the traffic would depend on the trace device)."""
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        if real_device:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.MATH]):
                yield
        else:
            yield
    finally:
        mha.set_fastpath_enabled(before)


def _needs_values(exc: BaseException) -> bool:
    """Whether a failure on the meta device means the forward needs real tensors (not a bad input shape)."""
    text = str(exc).lower()
    return "meta" in text or "data-dependent" in text or "data dependent" in text or isinstance(exc, NotImplementedError)


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
    unfused_attention: bool = True,
) -> ModelProfile:
    """Profile ``model`` on input ``x`` (usually a ``meta`` tensor). The model is run once, in its current
    mode, under ``no_grad``. See :func:`profile_model` for the names and conventions.

    ``unfused_attention`` (default): attention runs as on the meta device (no MultiheadAttention fast path,
    the math backend of scaled dot-product attention), so rows and traffic do not depend on ``x``'s device.
    ``False`` lets the dispatcher choose the fused kernels (measuring real kernel times); counts are unchanged.

    ``row_scope(label)``, when given, returns a context manager entered around each row's work (e.g.
    ``torch.profiler.record_function``); ``labels`` then receives ``{label: row name}`` for the rows kept, so
    measurements taken inside the scopes can be attributed to the profile's rows.

    ``run(model, x)``, when given, replaces the plain ``model(x)`` call (still inside ``no_grad`` and the
    recording modes): the memory model uses it to run a training forward under ``enable_grad`` and keep
    its output.

    Raises:
        MetaDeviceError: ``x`` is on ``meta`` and the forward needs tensor values (:func:`profile_model`
            retries such models on the CPU).
        ShapeError: the model cannot take ``x`` (the message names the layer).
    """
    rec = _Recorder(model, Precision.parse(dtype, what="dtype").element_bytes, row_scope)
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
        handles.append(m.register_forward_hook(rec.post_hook, with_kwargs=True))
    try:
        unfused = _unfused_attention(x.device.type != "meta") if unfused_attention else contextlib.nullcontext()
        with torch.no_grad(), unfused, rec, _Dispatch(rec):
            if run is None:
                model(x)
            else:
                run(model, x)
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError, AssertionError) as exc:
        if x.device.type == "meta" and _needs_values(exc):
            raise MetaDeviceError(
                f"{name} cannot run on the meta device ({first_line(exc)}); build it on the CPU and profile it "
                "there (profile_model does so by itself)",
                first_line(exc),
            ) from None
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
        op_categories=dict(sorted(rec.categories.items())),
    )


def _require_cuda(device: str) -> None:
    """:class:`BackendUnavailable` (exit 3) when ``device`` names a CUDA device this machine does not have."""
    from deploykit.errors import BackendUnavailable

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInput(f"bad device {device!r}; use meta, cpu, cuda or cuda:N") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"device {device!r} asked for, but torch sees no CUDA GPU on this machine")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BackendUnavailable(f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s)")


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
    inputs: InputSpec | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> ModelProfile:
    """Per-layer parameters, MACs, FLOPs, activation bytes and memory traffic of a model.

    Args:
        model: a registered name (``"nin"``), an import path (``"mypkg.nets:Net"``) or an ``nn.Module``
            (then ``input_shape``, per sample, is required and the module's own device is used).
        batch_size: samples per batch.
        dtype: ``fp32``, ``tf32``, ``fp16``, ``bf16`` or ``int8``: the element size used for bytes.
        device: ``meta`` (default: nothing allocated, nothing computed) or ``cpu`` (real tensors).
        input_shape, num_classes, in_channels, image_size: overrides, as for ``create_model``.
        inputs: the input's element type and value range (token ids for an ``nn.Embedding`` first layer:
            ``InputSpec("int64", 0, 30522)``); default float32. A trace on the CPU uses representative values
            (standard normal, or integers uniform in the range), never zeros.
        weights: the model's weights (file or torchvision name), checked against the model (strict keys and
            shapes; on ``meta`` not materialised) and recorded in ``spec["weights"]`` (source, sha256). The
            counts do not depend on them.

    Returns:
        A :class:`ModelProfile`; ``profile.total_params`` equals ``sum(p.numel())`` of the model. Its
        ``notes`` say, one line each, when the model had to be built or traced on the CPU and with which input;
        ``spec["trace"]`` records the same as data.

    Raises:
        ModelNotFound, InvalidInput, ShapeError: bad name, option or input shape (one-line messages).

    A model that cannot be built on ``meta`` (``Cannot copy out of meta tensor`` in ``__init__``) is built on the
    CPU and traced on ``meta``; one whose forward cannot run on ``meta`` (``.item()``, ``if x.sum() > 0``) is
    built and traced on the CPU. The counts do not depend on where the trace ran.

    Conventions: ``macs`` counts conv / linear / matmul / attention / recurrent multiply-accumulates only;
    ``flops`` counts every floating-point operation (2 per MAC plus bias, element-wise, normalisation and
    pooling work; see :mod:`deploykit.profile.formulas`).

    >>> p = profile_model("resnet18")
    >>> p.total_params, p.total_macs
    (11689512, 1814073344)
    """
    if batch_size <= 0:
        raise InvalidInput("batch size must be positive")
    if device not in ("meta", "cpu") and not str(device).startswith("cuda"):
        raise InvalidInput(f"unknown trace device {device!r}; choose meta or cpu")
    if str(device).startswith("cuda"):
        _require_cuda(str(device))
    inputs = inputs or InputSpec()
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise InvalidInput("profiling an nn.Module needs its per-sample input_shape")
        from deploykit.models.registry import parse_shape

        shape = (batch_size, *parse_shape(input_shape))
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device(device)
        x, given = _input(model, shape, dev, inputs)
        given.update(built_on="given", device=dev.type)
        prof = profile_module(model, x, name=type(model).__name__, dtype=dtype, spec={"trace": given})
        return dataclasses.replace(prof, notes=_trace_notes(prof.model, given))

    overrides: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
                                 "input_shape": input_shape}
    trace: dict[str, Any] = {"built_on": device, "device": device}
    try:
        module, spec = create_model(model, device=device, weights=weights, **overrides)
    except (BuildError, ShapeError, RuntimeError, NotImplementedError) as exc:
        if device != "meta":
            raise
        module, spec = create_model(model, device="cpu", weights=weights, **overrides)  # a failure here is the model's own
        # a BuildError already quotes the model's own exception after "failed: "
        reason = str(exc).split(" failed: ", 1)[-1] if isinstance(exc, BuildError) else first_line(exc)
        trace.update(built_on="cpu", build_reason=reason)
        module = module.to("meta")
    shape = spec.batch_shape(batch_size)
    x, trace_input = _input(module, shape, device, inputs)
    trace.update(trace_input)
    try:
        prof = profile_module(module, x, name=spec.name, dtype=dtype, spec={**spec.to_dict(), "trace": trace})
    except MetaDeviceError as exc:
        module, spec = create_model(model, device="cpu", weights=weights, **overrides)
        x, trace_input = _input(module, shape, "cpu", inputs)
        trace = {**trace, **trace_input, "built_on": "cpu", "device": "cpu", "trace_reason": exc.reason}
        prof = profile_module(module, x, name=spec.name, dtype=dtype, spec={**spec.to_dict(), "trace": trace})
    return dataclasses.replace(prof, notes=_trace_notes(prof.model, trace))


def _input(model: nn.Module, shape: Sequence[int], device: str | torch.device, inputs: InputSpec) -> tuple[torch.Tensor, dict[str, Any]]:
    """The traced input: a placeholder on ``meta``, representative values on a real device."""
    if torch.device(device).type == "meta":
        return inputs.placeholder(shape, "meta"), {"input": {**inputs.to_dict(), "values": "none (meta: shapes only)"}}
    spec = inputs.resolve(model)
    return spec.sample(shape, device), {"input": {**spec.to_dict(), "values": spec.describe()}}


def _trace_notes(name: str, trace: Mapping[str, Any]) -> tuple[str, ...]:
    """One line per thing the user should know about where and how the model was built and traced."""
    notes = []
    if trace.get("build_reason") and trace.get("device") == "meta":
        notes.append(f"{name} cannot be built on the meta device ({trace['build_reason']}): built on the CPU with "
                     "real weights, then traced on meta")
    if trace.get("trace_reason"):
        notes.append(f"{name} cannot be traced on the meta device ({trace['trace_reason']}): built and traced on the "
                     f"CPU with real tensors; input: {trace['input']['values']}")
    elif trace.get("device") not in (None, "meta"):
        notes.append(f"traced on {trace['device']} with real tensors; input: {trace['input']['values']}")
    return tuple(notes)


__all__ = ["MetaDeviceError", "fmt_shape", "profile_model", "profile_module"]
