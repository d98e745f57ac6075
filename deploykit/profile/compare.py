"""Side-by-side comparison of models: the totals and findings of each, as data (``deploykit compare``).

For every model, at one batch size and dtype: parameters (and the share in fully connected layers), MACs,
FLOPs, the inference peak and the training-step peak from the memory model, the roofline floor on a device
preset and the share of it spent in memory-bound layers, and the top findings. Everything is computed on the
``meta`` device (nothing allocated, nothing run); a measured latency, when the caller has one (``--measure``,
CUDA only, timed by :mod:`deploykit.bench.layer_timing`), is attached as given.

:func:`model_stages` groups a profile's rows into stages of equal spatial resolution (a pooling layer closes
the stage it pools), the unit the NiN-vs-VGG report uses for its per-block tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploykit.errors import InvalidInput
from deploykit.precision import Precision
from deploykit.profile.devices import DevicePreset, get_device
from deploykit.profile.findings import Findings, findings
from deploykit.profile.memory import check_optimizer, inference_memory, training_memory
from deploykit.profile.roofline import RooflineProfile, roofline
from deploykit.profile.types import LayerProfile, ModelProfile

COMPARE_SCHEMA = "deploykit.compare"
COMPARE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CompareOptions:
    """What every model of a comparison is profiled at.

    Attributes:
        batch_size: samples per batch (profile, roofline and memory).
        dtype: ``fp32``, ``tf32``, ``fp16``, ``bf16`` or ``int8`` (element size and roofline peak).
        gpu: roofline device preset key (``h100``, ``rtx3050-laptop``, ...; see ``devices.PRESETS``).
        optimizer: optimizer of the training-step memory (a key of ``OPTIMIZERS``), or ``None`` for none.
        memory_target: allocator the memory model follows: ``cuda`` (512-byte blocks) or ``cpu``.
        top: how many layers each finding lists.
    """

    batch_size: int = 1
    dtype: str = "fp32"
    gpu: str = "h100"
    optimizer: str | None = "adam"
    memory_target: str = "cuda"
    top: int = 1

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise InvalidInput("batch size must be positive")
        Precision.parse(self.dtype, what="dtype")
        check_optimizer(self.optimizer, allow_none=True)
        if self.optimizer is not None and self.dtype == "int8":
            raise InvalidInput("int8 is an inference format: give --optimizer none, or model training in fp32, "
                               "tf32, fp16 or bf16")
        if self.top < 1:
            raise InvalidInput("--top must be at least 1")


@dataclass(frozen=True)
class ModelSummary:
    """The totals and findings of one model in a comparison. Nothing is rounded.

    Attributes:
        model: the registered name; ``input_shape``: with the batch; ``dtype``: element size used for bytes.
        params, fc_params: all parameters / those in fully connected (``Linear``) layers; ``fc_param_share``
            is their ratio (0..1).
        macs, flops: multiply-accumulates of conv/linear/matmul; every floating-point operation (2 per MAC
            plus element-wise work).
        param_bytes, traffic_bytes: weights at ``dtype``; unfused per-kernel DRAM traffic of one forward.
        inference_peak_bytes: peak of live activations in one inference forward (liveness, not a sum).
        inference_total_bytes: parameters + buffers + input + that activation peak.
        inference_peak_layer: the row during which the activation peak occurred.
        training_peak_bytes: peak of everything the device holds in one training step with ``optimizer``
            (``None`` without an optimizer); ``training_peak_phase``: where it occurred.
        roofline_floor_s: sum of the layers' roofline floors on ``device`` (unfused, one after another).
        memory_bound_share: fraction (0..1) of that floor spent in memory-bound layers.
        memory_bound_layers, layers_with_work: how many layers are memory-bound, of those that do work.
        findings: the ranked layers (params, FLOPs, activations, traffic, roofline time) of
            :func:`deploykit.profile.findings.findings`.
        measured_latency_ms: end-to-end latency measured on a CUDA GPU (``None`` when not measured);
            ``measured_device``: that GPU.
    """

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    params: int
    fc_params: int
    fc_param_share: float
    macs: int
    flops: int
    param_bytes: int
    traffic_bytes: int
    inference_peak_bytes: int
    inference_total_bytes: int
    inference_peak_layer: str
    training_peak_bytes: int | None
    training_peak_phase: str | None
    roofline_floor_s: float
    memory_bound_share: float
    memory_bound_layers: int
    layers_with_work: int
    findings: Findings
    measured_latency_ms: float | None = None
    measured_device: str | None = None
    weights: dict[str, Any] | None = None

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "input_shape": list(self.input_shape), "dtype": self.dtype,
            "params": self.params, "fc_params": self.fc_params, "fc_param_share": self.fc_param_share,
            "macs": self.macs, "flops": self.flops, "param_bytes": self.param_bytes,
            "traffic_bytes": self.traffic_bytes, "inference_peak_bytes": self.inference_peak_bytes,
            "inference_total_bytes": self.inference_total_bytes, "inference_peak_layer": self.inference_peak_layer,
            "training_peak_bytes": self.training_peak_bytes, "training_peak_phase": self.training_peak_phase,
            "roofline_floor_ms": self.roofline_floor_s * 1e3, "memory_bound_share": self.memory_bound_share,
            "memory_bound_layers": self.memory_bound_layers, "layers_with_work": self.layers_with_work,
            "measured_latency_ms": self.measured_latency_ms, "measured_device": self.measured_device,
            "findings": self.findings.to_dict(),
            # the weights checked against the model (source, sha256), when given: the counts do not depend on them
            **({"weights": self.weights} if self.weights is not None else {}),
        }


@dataclass(frozen=True)
class Comparison:
    """Summaries of several models under one :class:`CompareOptions`, with the per-layer data behind them
    (``profiles`` and ``rooflines``, in the same order, for plots and tables)."""

    options: CompareOptions
    device: DevicePreset
    summaries: tuple[ModelSummary, ...]
    profiles: tuple[ModelProfile, ...]
    rooflines: tuple[RooflineProfile, ...]
    env: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": COMPARE_SCHEMA,
            "schema_version": COMPARE_SCHEMA_VERSION,
            "settings": {
                "batch_size": self.options.batch_size, "dtype": self.options.dtype, "device_preset": self.device.key,
                "device_name": self.device.name, "optimizer": self.options.optimizer,
                "memory_target": self.options.memory_target, "top": self.options.top,
            },
            "models": [s.to_dict() for s in self.summaries],
            "env": dict(self.env),
        }


def summarize_model(
    model: str,
    options: CompareOptions,
    device: DevicePreset | None = None,
    *,
    measured_latency_ms: float | None = None,
    measured_device: str | None = None,
    weights: str | None = None,
) -> tuple[ModelSummary, ModelProfile, RooflineProfile]:
    """The :class:`ModelSummary` of one registered model, with the profile and roofline it came from (``weights``:
    checked against the model and recorded in the profile; the counts do not depend on them)."""
    from deploykit.profile.counter import profile_model

    dev = device or get_device(options.gpu)
    prof = profile_model(model, batch_size=options.batch_size, dtype=options.dtype, weights=weights)
    roof = roofline(prof, dev)
    found = findings(prof, roof, top=options.top)
    inf = inference_memory(model, batch_size=options.batch_size, dtype=options.dtype, target=options.memory_target)
    train = None
    if options.optimizer is not None:
        train = training_memory(model, batch_size=options.batch_size, dtype=options.dtype,
                                optimizer=options.optimizer, target=options.memory_target)
    summary = ModelSummary(
        model=prof.model,
        input_shape=prof.input_shape,
        dtype=prof.dtype,
        params=prof.total_params,
        fc_params=found.fc_params,
        fc_param_share=found.fc_param_share,
        macs=prof.total_macs,
        flops=prof.total_flops,
        param_bytes=prof.total_param_bytes,
        traffic_bytes=prof.total_traffic_bytes,
        inference_peak_bytes=inf.peak_bytes,
        inference_total_bytes=inf.total_peak_bytes,
        inference_peak_layer=inf.peak_layer,
        training_peak_bytes=train.peak_bytes if train is not None else None,
        training_peak_phase=f"{train.peak_phase} ({train.peak_where})" if train is not None else None,
        roofline_floor_s=roof.floor_s,
        memory_bound_share=roof.memory_bound_share,
        memory_bound_layers=len(found.memory_bound),
        layers_with_work=sum(1 for r in roof.layers if r.bound != "-"),
        findings=found,
        measured_latency_ms=measured_latency_ms,
        measured_device=measured_device,
        weights=prof.spec.get("weights"),
    )
    return summary, prof, roof


def compare_models(
    models: Sequence[str],
    options: CompareOptions | None = None,
    *,
    measured_latency_ms: Sequence[float | None] | None = None,
    measured_device: str | None = None,
    weights: Mapping[str, str] | None = None,
) -> Comparison:
    """Profile each of ``models`` under ``options`` and summarise them side by side.

    Args:
        models: two or more registered names (or import paths); one is allowed but not much of a comparison.
        options: batch size, dtype, roofline device, optimizer, memory target, findings depth.
        measured_latency_ms: optional end-to-end latencies, one per model in order (``None`` where not
            measured), e.g. from :func:`deploykit.bench.layer_timing.measure_layers`; ``measured_device`` names
            the GPU they were measured on.
        weights: model name -> its weights (file or torchvision name), checked against that model (strict) and
            recorded in its profile.

    Returns:
        A :class:`Comparison`.

    Raises:
        ModelNotFound, InvalidInput, ShapeError: a bad name or option (one-line messages).

    >>> c = compare_models(["nin", "vgg16"])
    >>> [s.params for s in c.summaries]
    [7439608, 138357544]
    """
    from deploykit._env import environment

    opts = options or CompareOptions()
    names = list(models)
    if not names:
        raise InvalidInput("give at least one model to compare")
    if measured_latency_ms is not None and len(measured_latency_ms) != len(names):
        raise InvalidInput("give one measured latency per model")
    stray = sorted(set(weights or {}) - set(names))
    if stray:
        raise InvalidInput(f"weights given for {', '.join(stray)}, which is not compared; models: {', '.join(names)}")
    device = get_device(opts.gpu)
    device.ridge_point(opts.dtype)  # fail before profiling when the device lacks this precision
    rows = [
        summarize_model(
            name, opts, device,
            measured_latency_ms=measured_latency_ms[i] if measured_latency_ms is not None else None,
            measured_device=measured_device,
            weights=(weights or {}).get(name),
        )
        for i, name in enumerate(names)
    ]
    return Comparison(
        options=opts,
        device=device,
        summaries=tuple(r[0] for r in rows),
        profiles=tuple(r[1] for r in rows),
        rooflines=tuple(r[2] for r in rows),
        env=environment("cpu"),
    )


# --- stages ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """Consecutive rows of a profile at one spatial resolution.

    Attributes:
        name: ``stage 1`` ... in order, or ``classifier`` for the rows after the last feature map
            (fully connected layers and what runs between them).
        resolution: the output height x width of the stage's layers with parameters (``()`` for the
            classifier).
        layers: the row names, in profile order.
    """

    name: str
    resolution: tuple[int, ...]
    layers: tuple[str, ...]

    @property
    def label(self) -> str:
        """``stage 1 (54×54)`` or ``classifier``."""
        res = "×".join(str(d) for d in self.resolution)
        return f"{self.name} ({res})" if res else self.name


def _resolution(row: LayerProfile) -> tuple[int, ...] | None:
    """Spatial size of the row's first output; ``None`` for a 2-D (batch, features) output."""
    if not row.output_shapes:
        return None
    shape = row.output_shapes[0]
    return tuple(shape[2:]) if len(shape) > 2 else None


def model_stages(profile: ModelProfile) -> tuple[Stage, ...]:
    """Group the rows of ``profile`` into stages of one spatial resolution.

    A row with parameters (a convolution, a linear layer) whose output resolution differs from the current
    stage's starts a new stage; rows without parameters (activations, pooling, dropout, flatten) join the
    stage they follow, so a pooling layer closes the stage whose maps it pools (VGG's blocks: convs, then
    the max-pool). Rows whose output is 2-D (batch, features) and that carry parameters start the
    ``classifier`` stage.
    """
    stages: list[tuple[str, tuple[int, ...], list[str]]] = []
    current: tuple[int, ...] | str | None = "start"
    for row in profile.layers:
        res = _resolution(row)
        starts = not stages or (row.params > 0 and res != current)
        if starts:
            if res is None:
                stages.append(("classifier", (), []))
            else:
                stages.append((f"stage {sum(1 for s in stages if s[0] != 'classifier') + 1}", res, []))
            current = res
        stages[-1][2].append(row.name)
    return tuple(Stage(name, res, tuple(rows)) for name, res, rows in stages)


__all__ = [
    "COMPARE_SCHEMA",
    "COMPARE_SCHEMA_VERSION",
    "CompareOptions",
    "Comparison",
    "ModelSummary",
    "Stage",
    "compare_models",
    "model_stages",
    "summarize_model",
]
