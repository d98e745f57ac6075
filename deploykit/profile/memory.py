"""Memory model: inference peak from tensor liveness, the memory of one training step, batch scaling.

Everything runs on the ``meta`` device (no activation memory exists, nothing is computed) and follows what
eager PyTorch does on the modelled device, allocation by allocation:

* **Liveness.** A ``TorchDispatchMode`` sees every ATen operator of the run. Each output whose storage is
  new (not an input's storage, not seen before, on the model's device) is an allocation of the storage's
  bytes at the requested dtype, counted once however many views share it. A weak reference on the storage
  frees it when its last reference dies: Python drops a tensor (``x = layer(x)`` rebinding), autograd
  releases a saved tensor after its backward node ran, an optimizer temporary goes out of scope. Python's
  reference counting works the same on meta tensors, so the order of allocations and frees is the real one
  (``torch.distributed._tools.mem_tracker.MemTracker`` works the same way on real tensors).
* **Rows.** The run goes through :func:`deploykit.profile.counter.profile_module` with a ``row_scope``, so
  allocations are charged to the same rows (``features.0``, ``layer1.0/add_``) as the cost profile.
* **Inference.** ``model.eval()`` forward under ``no_grad``. The peak is the largest live activation total;
  parameters, buffers and the input are resident and reported separately. It is *not* the sum of all
  outputs (torchinfo's "forward/backward pass size"): see :attr:`InferenceMemory.sum_outputs_bytes`.
* **Training step** (steady state: the optimizer state exists from an earlier step, created here by one
  ``step()`` on zero gradients, and gradients were set to ``None`` by ``zero_grad``): train-mode forward
  with grad, the loss (cross entropy against class 0 for ``(N, classes)`` outputs, else ``output.sum()``),
  ``loss.backward()``, ``optimizer.step()``, ``optimizer.zero_grad(set_to_none=True)``. Activations saved
  for backward are read from ``torch.autograd.graph.saved_tensors_hooks`` (deduplicated by storage;
  parameters, buffers and the input are not activations). The backward is run for real on meta, so the backward peak is measured, not
  guessed: saved activations are released node by node while gradients and temporaries appear.

What PyTorch's optimizers allocate (per parameter tensor ``p``, all ``zeros_like(p)`` / ``clone(grad)``):

=====================  =====================  ==================================================================
optimizer              state                  temporaries during ``step()``
=====================  =====================  ==================================================================
``sgd``                none                   none
``sgd-momentum``       ``momentum_buffer``    none (``weight_decay`` would add a copy of the gradients)
``adam`` / ``adamw``   ``exp_avg``,           for-loop (CPU default): ``sqrt`` and ``/`` of one tensor at a time,
                       ``exp_avg_sq``         so 2 x the largest parameter tensor; ``foreach`` (CUDA default):
                                              ``_foreach_sqrt`` of *all* ``exp_avg_sq`` at once: 1 x all params
=====================  =====================  ==================================================================

Adam's ``step`` counters are 0-d tensors on the CPU (unless ``capturable``/``fused``): not device memory.

Targets (``target=``): ``"cuda"`` rounds every allocation up to the CUDA caching allocator's 512-byte block,
uses the ``foreach`` optimizers and the fused ``native_dropout`` kernel (a 1-byte bool mask) as PyTorch does
on CUDA; ``"cpu"`` counts exact bytes with the for-loop optimizers and the CPU dropout (a noise tensor of
the input's dtype). Not modelled: cuDNN / cuBLAS workspaces (not tensors; the GPU script measures them),
and allocator blocks handed out larger than requested (``expandable_segments`` avoids those).
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from deploykit.errors import ArtifactError, BackendUnavailable, InvalidInput, ShapeError
from deploykit.models.registry import ModelSpec, create_model, parse_shape
from deploykit.precision import Precision
from deploykit.profile.counter import profile_module
from deploykit.profile.formulas import discarded_outputs
from deploykit.profile.types import DTYPE_BYTES

MEMORY_SCHEMA = "deploykit.memory"
MEMORY_SCHEMA_VERSION = 1

#: Allocation granularity of each modelled target: the CUDA caching allocator rounds every block up to
#: 512 bytes (``kMinBlockSize``); the CPU allocator's bytes are counted exactly.
TARGET_GRANULARITY_BYTES: Mapping[str, int] = {"cuda": 512, "cpu": 1}

#: Optimizers the training model builds, with the hyper-parameters that decide their memory.
OPTIMIZERS: Mapping[str, str] = {
    "sgd": "torch.optim.SGD(lr=0.01)",
    "sgd-momentum": "torch.optim.SGD(lr=0.01, momentum=0.9)",
    "adam": "torch.optim.Adam(lr=1e-3)",
    "adamw": "torch.optim.AdamW(lr=1e-3)",
}

#: Per-parameter state tensors each optimizer keeps on the device.
OPTIMIZER_STATE_BUFFERS: Mapping[str, int] = {"sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}

_aten = torch.ops.aten
_BATCH_NORM = frozenset((_aten.native_batch_norm, _aten._native_batch_norm_legit, _aten._native_batch_norm_legit_no_training))


def round_up(nbytes: int, granularity_bytes: int) -> int:
    """``nbytes`` rounded up to a multiple of ``granularity_bytes``; 0 stays 0 (nothing is allocated)."""
    if nbytes <= 0:
        return 0
    return -(-nbytes // granularity_bytes) * granularity_bytes


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerMemory:
    """Memory of one profile row (same names as :class:`~deploykit.profile.types.LayerProfile`).

    Attributes:
        name: the profile row.
        alloc_bytes: bytes the row allocated, temporaries included.
        peak_bytes: the highest live activation total while the row ran (its inputs, outputs, temporaries
            and everything still alive from earlier rows).
        live_after_bytes: live activation bytes after the row, once Python dropped what it no longer needs
            (measured when the next row starts; for the last row, at the end of the forward).
        saved_bytes: (training) activation bytes this row saved for backward, each storage counted once,
            by the first row that saved it.
        backward_peak_bytes: (training) the highest live total (activations, gradients, temporaries) while
            this row's backward ran.
    """

    name: str
    alloc_bytes: int
    peak_bytes: int
    live_after_bytes: int
    saved_bytes: int = 0
    backward_peak_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerMemory:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


_M = TypeVar("_M", bound="_PerLayerMemory")


class _PerLayerMemory:
    """What :class:`InferenceMemory` and :class:`TrainingMemory` share: per-row lookup and JSON round trip
    (``input_shape`` as a list, mappings as dicts, ``layers`` as a list of :class:`LayerMemory` dicts)."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerMemory, ...]

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]

    def layer(self, name: str) -> LayerMemory:
        for r in self.layers:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if f.name == "layers":
                v = [r.to_dict() for r in v]
            elif f.name == "input_shape":
                v = list(v)
            elif isinstance(v, Mapping):
                v = dict(v)
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls: type[_M], d: Mapping[str, Any]) -> _M:
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}  # type: ignore[arg-type]
        for k, v in kw.items():
            if k == "layers":
                kw[k] = tuple(LayerMemory.from_dict(r) for r in v)
            elif k == "input_shape":
                kw[k] = tuple(v)
            elif isinstance(v, Mapping):
                kw[k] = dict(v)
        return cls(**kw)


@dataclass(frozen=True)
class InferenceMemory(_PerLayerMemory):
    """Memory of one inference forward (``eval()``, ``no_grad``) at one batch size.

    Attributes:
        model, input_shape, dtype, target, granularity_bytes: what was modelled (``input_shape`` with the
            batch).
        param_bytes, buffer_bytes, input_bytes: resident before the forward (not in the peak).
        peak_bytes: the highest total of live activations during the forward.
        peak_layer: the row during which that peak occurred.
        lean_peak_bytes: the same liveness without the outputs eager PyTorch computes and inference discards
            (max-pool argmax indices): closer to what a deployment engine must hold.
        output_bytes: the model's output.
        sum_outputs_bytes: the sum of every row's new outputs: what a "pass size" reports; not a peak.
        layers: per-row memory, in profile order.
    """

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    target: str
    granularity_bytes: int
    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    peak_bytes: int
    peak_layer: str
    lean_peak_bytes: int
    output_bytes: int
    sum_outputs_bytes: int
    layers: tuple[LayerMemory, ...]

    @property
    def resident_bytes(self) -> int:
        """Parameters, buffers and the input: allocated before the forward starts."""
        return self.param_bytes + self.buffer_bytes + self.input_bytes

    @property
    def total_peak_bytes(self) -> int:
        """Everything the device holds at the peak: resident bytes plus the activation peak."""
        return self.resident_bytes + self.peak_bytes



@dataclass(frozen=True)
class TrainingMemory(_PerLayerMemory):
    """Memory of one steady-state training step at one batch size.

    Resident for the whole step: parameters, buffers, optimizer state, the input batch and its targets.
    Gradients exist from the backward until ``zero_grad(set_to_none=True)``.

    Attributes:
        model, input_shape, dtype, target, granularity_bytes: what was modelled.
        optimizer: a key of :data:`OPTIMIZERS`; ``foreach``: whether its multi-tensor implementation ran.
        param_bytes, buffer_bytes, optimizer_state_bytes: model and optimizer state.
        input_bytes: the input batch plus the int64 targets.
        grad_bytes: parameter gradients after the backward.
        saved_bytes: activations saved for backward (each storage once; not parameters, buffers or input),
            the loss's own saved tensors (log-softmax output) included.
        forward_end_bytes: everything the forward left alive when the backward starts (saved activations,
            the loss, what the loss saved).
        backward_peak_bytes: the highest dynamic total (activations + gradients + temporaries) in backward.
        optimizer_peak_bytes: the highest dynamic total during ``step()``: gradients plus temporaries.
        peak_bytes: the step's peak of everything the device holds (resident included).
        peak_phase: ``forward``, ``loss``, ``backward`` or ``optimizer``.
        peak_where: the row (forward, or the row whose backward ran) or ``optimizer.step``.
        peak_breakdown: bytes per category at the peak: ``params``, ``buffers``, ``optimizer_state``,
            ``input``, ``activations``, ``gradients``, ``temporaries`` (backward), ``optimizer_temporaries``.
        layers: per-row memory of the forward (``saved_bytes``, ``backward_peak_bytes`` filled in).
    """

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    target: str
    granularity_bytes: int
    optimizer: str
    foreach: bool
    param_bytes: int
    buffer_bytes: int
    optimizer_state_bytes: int
    input_bytes: int
    grad_bytes: int
    saved_bytes: int
    forward_end_bytes: int
    backward_peak_bytes: int
    optimizer_peak_bytes: int
    peak_bytes: int
    peak_phase: str
    peak_where: str
    peak_breakdown: Mapping[str, int]
    layers: tuple[LayerMemory, ...]

    @property
    def resident_bytes(self) -> int:
        """Parameters, buffers, optimizer state and the batch: allocated before the step starts."""
        return self.param_bytes + self.buffer_bytes + self.optimizer_state_bytes + self.input_bytes

    @property
    def peak_above_resident_bytes(self) -> int:
        """What the step adds at its peak: comparable with ``max_memory_allocated() - memory_allocated()``
        taken just before the step."""
        return self.peak_bytes - self.resident_bytes



#: The terms of :meth:`MemoryReport.terms`, in display order: (term, where it comes from).
TERMS: tuple[tuple[str, str], ...] = (
    ("param_bytes", "parameters"),
    ("buffer_bytes", "buffers (BatchNorm running statistics)"),
    ("input_bytes", "input batch"),
    ("inference_peak_bytes", "inference: peak of live activations"),
    ("inference_total_bytes", "inference: parameters + buffers + input + activation peak"),
    ("grad_bytes", "training: parameter gradients"),
    ("optimizer_state_bytes", "training: optimizer state"),
    ("saved_bytes", "training: activations saved for backward"),
    ("backward_peak_bytes", "training: peak of activations + gradients + temporaries in backward"),
    ("training_peak_bytes", "training: peak of everything during one step"),
)


@dataclass(frozen=True)
class MemoryReport:
    """Inference and training memory of one model at one or more batch sizes (the ``--batch-size`` sweep).

    ``training`` is empty when no optimizer was asked for. ``env`` is the environment fingerprint.
    """

    model: str
    sample_shape: tuple[int, ...]
    dtype: str
    target: str
    optimizer: str | None
    batch_sizes: tuple[int, ...]
    inference: tuple[InferenceMemory, ...]
    training: tuple[TrainingMemory, ...] = ()
    env: Mapping[str, Any] = field(default_factory=dict)

    def terms(self) -> dict[str, tuple[int, ...]]:
        """Bytes of each term of :data:`TERMS` per batch size (training terms only with an optimizer)."""
        out: dict[str, tuple[int, ...]] = {
            "param_bytes": tuple(m.param_bytes for m in self.inference),
            "buffer_bytes": tuple(m.buffer_bytes for m in self.inference),
            "input_bytes": tuple(m.input_bytes for m in self.inference),
            "inference_peak_bytes": tuple(m.peak_bytes for m in self.inference),
            "inference_total_bytes": tuple(m.total_peak_bytes for m in self.inference),
        }
        if self.training:
            out.update(
                grad_bytes=tuple(t.grad_bytes for t in self.training),
                optimizer_state_bytes=tuple(t.optimizer_state_bytes for t in self.training),
                saved_bytes=tuple(t.saved_bytes for t in self.training),
                backward_peak_bytes=tuple(t.backward_peak_bytes for t in self.training),
                training_peak_bytes=tuple(t.peak_bytes for t in self.training),
            )
        return out

    def scales_with_batch(self) -> dict[str, bool]:
        """For each term: does it change with the batch size? (Parameters, gradients and optimizer state do
        not; the input and every activation term do.) Needs two or more batch sizes."""
        if len(self.batch_sizes) < 2:
            raise InvalidInput("batch scaling needs two or more batch sizes")
        return {k: len(set(v)) > 1 for k, v in self.terms().items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": MEMORY_SCHEMA,
            "schema_version": MEMORY_SCHEMA_VERSION,
            "model": self.model,
            "sample_shape": list(self.sample_shape),
            "dtype": self.dtype,
            "target": self.target,
            "optimizer": self.optimizer,
            "batch_sizes": list(self.batch_sizes),
            "terms": {k: list(v) for k, v in self.terms().items()},
            "inference": [m.to_dict() for m in self.inference],
            "training": [t.to_dict() for t in self.training],
            "env": dict(self.env),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemoryReport:
        if d.get("schema") != MEMORY_SCHEMA or d.get("schema_version") != MEMORY_SCHEMA_VERSION:
            raise ArtifactError(
                f"not a deploykit memory report of schema version {MEMORY_SCHEMA_VERSION}: "
                f"got schema={d.get('schema')!r} version={d.get('schema_version')!r}"
            )
        return cls(
            model=d["model"],
            sample_shape=tuple(d["sample_shape"]),
            dtype=d["dtype"],
            target=d["target"],
            optimizer=d.get("optimizer"),
            batch_sizes=tuple(d["batch_sizes"]),
            inference=tuple(InferenceMemory.from_dict(m) for m in d["inference"]),
            training=tuple(TrainingMemory.from_dict(t) for t in d.get("training", ())),
            env=dict(d.get("env", {})),
        )


# --- the liveness tracker -------------------------------------------------------------------------------


class _Entry:
    __slots__ = ("category", "lean", "nbytes", "ref")

    def __init__(self, nbytes: int, category: str, lean: bool) -> None:
        self.nbytes = nbytes
        self.category = category
        self.lean = lean
        self.ref: Any = None


class _Event:
    """One row's scope: live bytes when it opened, its own peak and allocations."""

    __slots__ = ("alloc", "enter", "label", "peak")

    def __init__(self, label: str, live: int) -> None:
        self.label = label
        self.enter = live
        self.peak = live
        self.alloc = 0


class _Tracker(TorchDispatchMode):
    """Live bytes of every storage allocated on ``device_type`` while the mode is active."""

    def __init__(self, device_type: str, elem_bytes: int, granularity_bytes: int) -> None:
        super().__init__()
        self.device_type = device_type
        self.elem_bytes = elem_bytes
        self.granularity_bytes = granularity_bytes
        self.entries: dict[int, _Entry] = {}
        self.live = 0
        self.live_lean = 0
        self.by_category: dict[str, int] = {}
        self.category = "activations"
        self.phase = "forward"
        self.where = ""
        self.peak = 0
        self.peak_lean = 0
        self.peak_phase = ""
        self.peak_where = ""
        self.peak_categories: dict[str, int] = {}
        self.events: list[_Event] = []
        self.current: _Event | None = None
        self.phase_peaks: dict[str, int] = {"forward": 0}
        self.where_peaks: dict[str, int] = {}

    def set_phase(self, phase: str, category: str, where: str = "") -> None:
        """Start a phase: new allocations get ``category``; the phase's peak starts at the live total."""
        self.phase, self.category, self.where = phase, category, where
        self.phase_peaks[phase] = max(self.phase_peaks.get(phase, 0), self.live)

    def set_where(self, where: str) -> None:
        """The backward entered the nodes of row ``where`` (a saved tensor of that row was unpacked)."""
        self.where = where
        self.where_peaks[where] = max(self.where_peaks.get(where, 0), self.live)

    # bytes of one storage at the modelled dtype and granularity
    def storage_bytes(self, t: torch.Tensor) -> int:
        n = int(t.untyped_storage().nbytes())
        if t.is_floating_point():
            n = n // t.element_size() * self.elem_bytes
        return round_up(n, self.granularity_bytes)

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.observe(func, args, kwargs, out)
        return out

    def observe(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        outs, _ = tree_flatten(out)
        if not any(isinstance(t, torch.Tensor) for t in outs):
            return
        ins, _ = tree_flatten((args, kwargs))
        in_keys = {t.untyped_storage()._cdata for t in ins if isinstance(t, torch.Tensor)}
        lean_skip = discarded_outputs(func, args, kwargs)
        # Outside training, BatchNorm's saved statistics are empty tensors on the CPU and with cuDNN; the meta
        # kernel gives them C elements each. They are not counted.
        empty = lean_skip if func.overloadpacket in _BATCH_NORM else ()
        for i, t in enumerate(outs):
            if not isinstance(t, torch.Tensor) or t.device.type != self.device_type or i in empty:
                continue
            st = t.untyped_storage()
            key = st._cdata
            if key in in_keys or key in self.entries:
                continue
            self.add(st, key, self.storage_bytes(t), lean=i not in lean_skip)

    def add(self, st: torch.UntypedStorage, key: int, nbytes: int, *, lean: bool = True) -> None:
        entry = _Entry(nbytes, self.category, lean)
        entry.ref = weakref.ref(st, self._freer(key))
        self.entries[key] = entry
        self.live += nbytes
        self.by_category[entry.category] = self.by_category.get(entry.category, 0) + nbytes
        if lean:
            self.live_lean += nbytes
            self.peak_lean = max(self.peak_lean, self.live_lean)
        if self.current is not None:
            self.current.alloc += nbytes
            self.current.peak = max(self.current.peak, self.live)
        self.phase_peaks[self.phase] = max(self.phase_peaks.get(self.phase, 0), self.live)
        if self.phase == "backward":
            self.where_peaks[self.where] = max(self.where_peaks.get(self.where, 0), self.live)
        if self.live > self.peak:
            self.peak = self.live
            self.peak_phase = self.phase
            self.peak_where = self.current.label if self.current is not None else self.where
            self.peak_categories = dict(self.by_category)

    def _freer(self, key: int) -> Callable[[Any], None]:
        def free(_: Any) -> None:
            entry = self.entries.pop(key, None)
            if entry is None:
                return
            self.live -= entry.nbytes
            self.by_category[entry.category] -= entry.nbytes
            if entry.lean:
                self.live_lean -= entry.nbytes

        return free

    def reclassify(self, t: torch.Tensor | None, category: str) -> None:
        if t is None:
            return
        entry = self.entries.get(t.untyped_storage()._cdata)
        if entry is None or entry.category == category:
            return
        self.by_category[entry.category] -= entry.nbytes
        self.by_category[category] = self.by_category.get(category, 0) + entry.nbytes
        entry.category = category

    @contextlib.contextmanager
    def row_scope(self, label: str) -> Iterator[None]:
        """The ``row_scope`` handed to ``profile_module``: one event per row."""
        event = _Event(label, self.live)
        self.events.append(event)
        self.current = event
        try:
            yield
        finally:
            self.current = None

    def stop(self) -> None:
        """Drop every weak reference (their callbacks never fire again)."""
        self.entries.clear()


class _FusedDropout(TorchFunctionMode):
    """``F.dropout`` in training as CUDA runs it: PyTorch's ``at::dropout`` takes the fused
    ``native_dropout`` kernel (output + bool mask) for CUDA inputs; on CPU and meta it builds a noise tensor
    of the input's dtype instead. In-place dropout takes the noise path on every device."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.dropout or func is torch.dropout:
            names = ("input", "p", "training", "inplace") if func is F.dropout else ("input", "p", "train")
            bound = dict(zip(names, args, strict=False)) | kwargs
            x, p = bound["input"], float(bound.get("p", 0.5))
            train = bool(bound.get("training", bound.get("train", True)))
            if train and not bound.get("inplace", False) and 0.0 < p < 1.0 and x.numel() > 0:
                return torch.native_dropout(x, p, True)[0]
        return func(*args, **kwargs)


# --- shared plumbing ------------------------------------------------------------------------------------


def _check(dtype: str, target: str) -> None:
    Precision.parse(dtype, what="dtype")
    if target not in TARGET_GRANULARITY_BYTES:
        raise InvalidInput(f"unknown memory target {target!r}; choose from {', '.join(TARGET_GRANULARITY_BYTES)}")


def check_optimizer(name: str | None, *, allow_none: bool = False) -> None:
    """Raise :class:`InvalidInput` unless ``name`` is a key of :data:`OPTIMIZERS` (or ``None`` where allowed:
    inference only)."""
    if name is None and allow_none:
        return
    if name not in OPTIMIZERS:
        choices = ", ".join(OPTIMIZERS) + (" or none" if allow_none else "")
        raise InvalidInput(f"unknown optimizer {name!r}; choose from {choices}")


@dataclass(frozen=True)
class _Built:
    """A registered model built once on meta (by :func:`memory_report`) and copied for every batch size."""

    module: nn.Module
    spec: ModelSpec


def _meta_model(
    model: str | nn.Module | _Built,
    batch_size: int,
    input_shape: Sequence[int] | str | None,
    num_classes: int | None,
    in_channels: int | None,
    image_size: int | Sequence[int] | str | None,
) -> tuple[nn.Module, torch.Tensor, str]:
    """A fresh meta copy of the model (so training state never leaks between calls) and a meta input."""
    if batch_size <= 0:
        raise InvalidInput("batch size must be positive")
    if isinstance(model, _Built):
        module = copy.deepcopy(model.module)
        return module, torch.zeros(model.spec.batch_shape(batch_size), device="meta"), model.spec.name
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise InvalidInput("an nn.Module needs its per-sample input_shape")
        module = copy.deepcopy(model).to("meta")
        shape = (batch_size, *parse_shape(input_shape))
        return module, torch.zeros(shape, device="meta"), type(model).__name__
    module, spec = create_model(
        model, device="meta", num_classes=num_classes, in_channels=in_channels,
        image_size=image_size, input_shape=input_shape,
    )
    return module, torch.zeros(spec.batch_shape(batch_size), device="meta"), spec.name


def _unique_bytes(tensors: Iterable[torch.Tensor], tracker: _Tracker) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        key = t.untyped_storage()._cdata
        if key not in seen:
            seen.add(key)
            total += tracker.storage_bytes(t)
    return total


def _first_tensor(out: Any) -> torch.Tensor:
    for t in tree_flatten(out)[0]:
        if isinstance(t, torch.Tensor):
            return t
    raise InvalidInput("the model returned no tensor")


def _layers(
    profile_names: Sequence[str], labels: Mapping[str, str], tracker: _Tracker, end_live: int,
    saved: Mapping[str, int] | None = None, backward: Mapping[str, int] | None = None,
) -> tuple[LayerMemory, ...]:
    by_name: dict[str, LayerMemory] = {}
    events = tracker.events
    for i, event in enumerate(events):
        name = labels.get(event.label)
        if name is None:  # a call that allocated nothing (a view) and was not kept as a row
            continue
        after = events[i + 1].enter if i + 1 < len(events) else end_live
        by_name[name] = LayerMemory(
            name=name,
            alloc_bytes=event.alloc,
            peak_bytes=event.peak,
            live_after_bytes=after,
            saved_bytes=(saved or {}).get(event.label, 0),
            backward_peak_bytes=(backward or {}).get(event.label, 0),
        )
    # Rows opened outside any scope (rare) allocate nothing we can attribute: they are left out.
    return tuple(by_name[n] for n in profile_names if n in by_name)


def _resolve(where: str, labels: Mapping[str, str]) -> str:
    return labels.get(where, where)


# --- inference ---------------------------------------------------------------------------------------


def inference_memory(
    model: str | nn.Module,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    target: str = "cuda",
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> InferenceMemory:
    """Peak activation memory of one inference forward, from tensor liveness on the meta device.

    Args:
        model: a registered name, an import path, or an ``nn.Module`` (copied to meta; give ``input_shape``).
        batch_size: samples per batch.
        dtype: element size for floating tensors (``fp32``, ``fp16``, ...); integer tensors (max-pool
            indices) keep theirs.
        target: ``"cuda"`` (512-byte allocator blocks) or ``"cpu"`` (exact bytes).
        input_shape, num_classes, in_channels, image_size: overrides, as for ``create_model``.

    Returns:
        An :class:`InferenceMemory`: ``peak_bytes`` (activations only), ``peak_layer``, per-row
        ``live_after_bytes``; parameters, buffers and the input are reported separately.

    >>> m = inference_memory("vgg11", target="cpu")
    >>> m.peak_bytes, m.peak_layer
    (22478848, 'features.2')
    """
    _check(dtype, target)
    module, x, name = _meta_model(model, batch_size, input_shape, num_classes, in_channels, image_size)
    module.eval()
    tracker = _Tracker("meta", DTYPE_BYTES[dtype], TARGET_GRANULARITY_BYTES[target])
    labels: dict[str, str] = {}
    outputs: list[Any] = []
    with tracker:
        profile = profile_module(
            module, x, name=name, dtype=dtype, row_scope=tracker.row_scope, labels=labels,
            run=lambda m, inp: outputs.append(m(inp)),
        )
    tracker.current = None
    out = _first_tensor(outputs)
    output_bytes = tracker.storage_bytes(out)
    end_live = tracker.live
    result = InferenceMemory(
        model=name,
        input_shape=tuple(x.shape),
        dtype=dtype,
        target=target,
        granularity_bytes=tracker.granularity_bytes,
        param_bytes=_unique_bytes(module.parameters(), tracker),
        buffer_bytes=_unique_bytes(module.buffers(), tracker),
        input_bytes=tracker.storage_bytes(x),
        peak_bytes=tracker.peak,
        peak_layer=_resolve(tracker.peak_where, labels),
        lean_peak_bytes=tracker.peak_lean,
        output_bytes=output_bytes,
        sum_outputs_bytes=profile.total_act_bytes,
        layers=_layers([r.name for r in profile.layers], labels, tracker, end_live),
    )
    tracker.stop()
    return result


# --- training ------------------------------------------------------------------------------------------


def make_optimizer(name: str, params: Any, *, foreach: bool | None = None) -> torch.optim.Optimizer:
    """The optimizer of :data:`OPTIMIZERS` called ``name`` over ``params`` (:class:`InvalidInput` when there are
    none: a model without parameters has no training step)."""
    check_optimizer(name)
    params = list(params)
    if not params:
        raise InvalidInput(
            "the model has no parameters: there is no training step to model (use --optimizer none for inference "
            "memory only)"
        )
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, foreach=foreach)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=foreach)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    return torch.optim.AdamW(params, lr=1e-3, foreach=foreach)


def training_loss(out: Any, target: torch.Tensor) -> torch.Tensor:
    """The loss the training model uses: cross entropy for ``(N, classes)`` outputs, else ``out.sum()``."""
    y = _first_tensor(out)
    if y.dim() == 2 and y.is_floating_point():
        return F.cross_entropy(y, target)
    return y.sum()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor) -> None:
    """One training step as modelled: forward, loss, backward, ``step()``, ``zero_grad(set_to_none=True)``."""
    loss = training_loss(model(x), target)
    loss.backward()
    del loss
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def training_memory(
    model: str | nn.Module,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    optimizer: str = "adam",
    target: str = "cuda",
    foreach: bool | None = None,
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> TrainingMemory:
    """Memory of one steady-state training step, run on the meta device.

    Args:
        model, batch_size, dtype, target, input_shape, num_classes, in_channels, image_size: as for
            :func:`inference_memory`.
        optimizer: a key of :data:`OPTIMIZERS` (``sgd``, ``sgd-momentum``, ``adam``, ``adamw``).
        foreach: the optimizer implementation; ``None`` picks PyTorch's default on the target (``foreach``
            on CUDA, the for-loop on the CPU).

    Returns:
        A :class:`TrainingMemory`: parameters, gradients, optimizer state, saved activations (per row and in
        total), the forward-end, backward and optimizer peaks, and the step's overall peak with its phase,
        place and breakdown.
    """
    _check(dtype, target)
    if dtype == "int8":
        raise InvalidInput("int8 is an inference format; model training memory in fp32, tf32, fp16 or bf16")
    check_optimizer(optimizer)
    use_foreach = (target == "cuda") if foreach is None else bool(foreach)
    module, x, name = _meta_model(model, batch_size, input_shape, num_classes, in_channels, image_size)
    module.train()
    tgt = torch.zeros(x.shape[0], dtype=torch.long, device="meta")
    opt = make_optimizer(optimizer, module.parameters(), foreach=use_foreach)
    dropout = _FusedDropout() if target == "cuda" else contextlib.nullcontext()
    # A first step creates the optimizer state, so that the measured step is a steady one. Its forward and
    # backward would change nothing: step() on zero gradients runs the same state initialisation.
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)

    tracker = _Tracker("meta", DTYPE_BYTES[dtype], TARGET_GRANULARITY_BYTES[target])
    hooks = [p.register_post_accumulate_grad_hook(lambda p: tracker.reclassify(p.grad, "gradients")) for p in params]
    saved: dict[int, tuple[int, str]] = {}

    def pack(t: torch.Tensor) -> tuple[torch.Tensor, str]:
        label = tracker.current.label if tracker.current is not None else tracker.where
        if t.device.type == "meta":
            key = t.untyped_storage()._cdata
            entry = tracker.entries.get(key)
            if entry is not None and entry.category == "activations" and key not in saved:
                saved[key] = (entry.nbytes, label)
        return t, label

    def unpack(packed: tuple[torch.Tensor, str]) -> torch.Tensor:
        if tracker.phase == "backward":
            tracker.set_where(packed[1])
        return packed[0]

    labels: dict[str, str] = {}
    outputs: list[Any] = []

    def run(m: nn.Module, inp: torch.Tensor) -> None:
        with torch.enable_grad():
            outputs.append(m(inp))

    try:
        with dropout, tracker, torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            try:
                profile = profile_module(
                    module, x, name=name, dtype=dtype, row_scope=tracker.row_scope, labels=labels, run=run
                )
            except ShapeError as exc:  # e.g. BatchNorm in training with one value per channel
                raise ShapeError(f"{exc} (in a training step)") from None
            tracker.current = None
            forward_live = tracker.live
            tracker.set_phase("loss", "activations", "loss")
            loss = training_loss(outputs.pop(), tgt)
            forward_end = tracker.live
            tracker.set_phase("backward", "temporaries")
            loss.backward()
            del loss
            grad_bytes = tracker.by_category.get("gradients", 0)
            tracker.set_phase("optimizer", "optimizer_temporaries", "optimizer.step")
            opt.step()
            opt.zero_grad(set_to_none=True)
    finally:
        for h in hooks:
            h.remove()

    param_bytes = _unique_bytes(module.parameters(), tracker)
    buffer_bytes = _unique_bytes(module.buffers(), tracker)
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.device.type == "meta"]
    state_bytes = _unique_bytes(iter(state), tracker)
    input_bytes = tracker.storage_bytes(x) + tracker.storage_bytes(tgt)
    saved_by_label: dict[str, int] = {}
    for nbytes, label in saved.values():
        saved_by_label[label] = saved_by_label.get(label, 0) + nbytes
    resident = {"params": param_bytes, "buffers": buffer_bytes, "optimizer_state": state_bytes, "input": input_bytes}
    breakdown = resident | {
        c: tracker.peak_categories.get(c, 0) for c in ("activations", "gradients", "temporaries", "optimizer_temporaries")
    }
    result = TrainingMemory(
        model=name,
        input_shape=tuple(x.shape),
        dtype=dtype,
        target=target,
        granularity_bytes=tracker.granularity_bytes,
        optimizer=optimizer,
        foreach=use_foreach,
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        optimizer_state_bytes=state_bytes,
        input_bytes=input_bytes,
        grad_bytes=grad_bytes,
        saved_bytes=sum(n for n, _ in saved.values()),
        forward_end_bytes=forward_end,
        backward_peak_bytes=tracker.phase_peaks["backward"],
        optimizer_peak_bytes=tracker.phase_peaks["optimizer"],
        peak_bytes=sum(resident.values()) + tracker.peak,
        peak_phase=tracker.peak_phase,
        peak_where=_resolve(tracker.peak_where, labels),
        peak_breakdown=breakdown,
        layers=_layers(
            [r.name for r in profile.layers], labels, tracker, forward_live,
            saved=saved_by_label, backward={lbl: v for lbl, v in tracker.where_peaks.items()},
        ),
    )
    tracker.stop()
    return result


# --- batch scaling -------------------------------------------------------------------------------------


def memory_report(
    model: str | nn.Module,
    *,
    batch_sizes: Sequence[int] = (1,),
    dtype: str = "fp32",
    optimizer: str | None = "adam",
    target: str = "cuda",
    foreach: bool | None = None,
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> MemoryReport:
    """Inference and training memory of ``model`` at each batch size: the ``--batch-size 1,64,256`` sweep.

    ``report.terms()`` gives bytes per term per batch size and ``report.scales_with_batch()`` which terms
    grow with the batch (input, activations) and which do not (parameters, gradients, optimizer state).
    ``optimizer=None`` models inference only. Other arguments as for :func:`training_memory`.

    >>> r = memory_report("nin", batch_sizes=(1, 64), optimizer="sgd-momentum")
    >>> r.scales_with_batch()["optimizer_state_bytes"], r.scales_with_batch()["saved_bytes"]
    (False, True)
    """
    from deploykit._env import environment

    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes:
        raise InvalidInput("give at least one batch size")
    if any(b <= 0 for b in sizes):
        raise InvalidInput(f"batch sizes must be positive, got {', '.join(map(str, sizes))}")
    check_optimizer(optimizer, allow_none=True)
    overrides: dict[str, Any] = {
        "input_shape": input_shape, "num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
    }
    if isinstance(model, str):  # built once, copied for each batch size and for training (not 2 x len(sizes) times)
        module, spec = create_model(model, device="meta", **overrides)
        model = _Built(module, spec)  # type: ignore[assignment]
    inference = tuple(inference_memory(model, batch_size=b, dtype=dtype, target=target, **overrides) for b in sizes)
    training: tuple[TrainingMemory, ...] = ()
    if optimizer is not None:
        training = tuple(
            training_memory(
                model, batch_size=b, dtype=dtype, optimizer=optimizer, target=target, foreach=foreach, **overrides
            )
            for b in sizes
        )
    return MemoryReport(
        model=inference[0].model,
        sample_shape=inference[0].input_shape[1:],
        dtype=dtype,
        target=target,
        optimizer=optimizer,
        batch_sizes=sizes,
        inference=inference,
        training=training,
        env=environment(),
    )


# --- the reference: PyTorch's MemTracker on real tensors ---------------------------------------------------


@dataclass(frozen=True)
class ReferenceMemory:
    """What ``torch.distributed._tools.mem_tracker.MemTracker`` measures on real tensors (CPU or CUDA).

    MemTracker follows tensor storages like this module does, on real kernels: it is the ground truth the
    meta-device model is tested against. On CUDA it rounds every storage up to 512 bytes.

    Attributes:
        inference_peak_bytes: peak of the forward minus parameters, buffers and the input.
        training_resident_bytes: parameters, buffers, optimizer state, input and targets before the step.
        training_peak_bytes: peak of everything during one steady-state step.
        training_peak_breakdown: MemTracker's categories at that peak.
    """

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    device: str
    optimizer: str | None
    foreach: bool | None
    inference_peak_bytes: int
    training_resident_bytes: int
    training_peak_bytes: int
    training_peak_breakdown: Mapping[str, int]

    @property
    def training_peak_above_resident_bytes(self) -> int:
        return self.training_peak_bytes - self.training_resident_bytes

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["input_shape"] = list(self.input_shape)
        d["training_peak_breakdown"] = dict(self.training_peak_breakdown)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceMemory:
        kw = {f.name: d[f.name] for f in fields(cls)}
        kw["input_shape"] = tuple(d["input_shape"])
        kw["training_peak_breakdown"] = dict(d["training_peak_breakdown"])
        return cls(**kw)


def _memtracker() -> Any:
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError as exc:  # torch built without distributed support
        raise BackendUnavailable(f"torch.distributed._tools.mem_tracker is not available: {exc}") from None
    return MemTracker


def _snapshot(tracker: Any, kind: str, device: torch.device) -> dict[str, int]:
    snap = tracker.get_tracker_snapshot(kind).get(device, {})
    return {getattr(k, "value", str(k)): int(v) for k, v in snap.items()}


_TORCH_DTYPES = Precision.names(Precision.FP32, Precision.TF32, Precision.FP16, Precision.BF16)


def memtracker_reference(
    model: str,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    device: str = "cpu",
    optimizer: str | None = "adam",
    foreach: bool | None = None,
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> ReferenceMemory:
    """Measure inference and training-step memory with PyTorch's ``MemTracker`` on a real model.

    The model is built with real (random) weights on ``device``; the inference forward runs under
    ``no_grad`` in eval mode; the training step is the one :func:`training_memory` models (a first untracked
    step creates the optimizer state, the second is measured). ``optimizer=None`` skips training (the
    training fields are then 0). This allocates real memory and takes real time: vgg19 with Adam needs
    about 3 GB on the CPU.
    """
    MemTracker = _memtracker()
    if dtype not in _TORCH_DTYPES:
        raise InvalidInput(f"MemTracker reference supports {', '.join(_TORCH_DTYPES)}, not {dtype!r}")
    torch_dtype = Precision(dtype).torch_dtype
    dev = torch.device(device)
    module, spec = create_model(
        model, device=dev, num_classes=num_classes, in_channels=in_channels,
        image_size=image_size, input_shape=input_shape,
    )
    module = module.to(torch_dtype)
    x = torch.randn(spec.batch_shape(batch_size), device=dev, dtype=torch_dtype)
    tracker = MemTracker()
    tracker.track_external(module, x)
    with torch.no_grad(), tracker:
        out = module(x)
        del out
    peak = _snapshot(tracker, "peak", dev)
    inference = peak.get("Total", 0) - peak.get("Parameter", 0) - peak.get("Buffer", 0) - peak.get("Other", 0)
    del tracker
    resident = train_peak = 0
    breakdown: dict[str, int] = {}
    if optimizer is not None:
        module.train()
        target = torch.zeros(batch_size, dtype=torch.long, device=dev)
        opt = make_optimizer(optimizer, module.parameters(), foreach=foreach)
        train_step(module, opt, x, target)
        tracker = MemTracker()
        tracker.track_external(module, opt, x, target)
        resident = _snapshot(tracker, "current", dev).get("Total", 0)
        with tracker:
            train_step(module, opt, x, target)
        breakdown = _snapshot(tracker, "peak", dev)
        train_peak = breakdown.pop("Total", 0)
        del tracker, opt
    return ReferenceMemory(
        model=spec.name,
        input_shape=tuple(x.shape),
        dtype=dtype,
        device=str(dev),
        optimizer=optimizer,
        foreach=foreach,
        inference_peak_bytes=inference,
        training_resident_bytes=resident,
        training_peak_bytes=train_peak,
        training_peak_breakdown=breakdown,
    )
