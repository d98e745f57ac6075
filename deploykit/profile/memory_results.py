"""What the memory model returns: per-layer and per-term bytes of inference and of one training step, per batch size.

Results only (frozen dataclasses with a versioned JSON round trip); :mod:`deploykit.profile.memory` computes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from deploykit.errors import ArtifactError, InvalidInput

MEMORY_SCHEMA = "deploykit.memory"

MEMORY_SCHEMA_VERSION = 1

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
