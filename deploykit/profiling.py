"""``deploykit profile`` as a library call: one :class:`ProfileOptions` -> :class:`ProfileRun` (data only).

The command line parses its options once into a :class:`ProfileOptions` (a :class:`~deploykit.precision.Precision`,
:class:`~deploykit.models.ModelOverrides`, a device preset, ...), calls :func:`run_profile` and renders the
result. This module sits above :mod:`deploykit.profile` because the measured extras come from
:mod:`deploykit.bench` (per-layer CUDA time, ceilings) and :mod:`deploykit.backends` (TensorRT layer times).

>>> run = run_profile(ProfileOptions("nin"))   # doctest: +SKIP
>>> run.profile.total_macs, run.roofline.device.key   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploykit.errors import InvalidInput
from deploykit.models.inputs import InputSpec
from deploykit.models.overrides import ModelOverrides
from deploykit.precision import Precision
from deploykit.profile.conventions import CONVENTIONS


@dataclass(frozen=True)
class ProfileOptions:
    """Everything ``deploykit profile`` can be asked, parsed.

    ``batch_sizes[0]`` is the batch of the per-layer table; more than one size (or ``memory``) adds the memory
    model at each. ``batch_given`` says whether the user chose the batch (an ONNX file otherwise keeps its own).
    ``dtype`` ``None`` means fp32 for a PyTorch model and the graph's own types for an ONNX file. ``device`` is
    a :class:`~deploykit.profile.devices.DevicePreset` (``None``: h100). ``weights``: the model's weights (file or
    torchvision name), checked against it (strict) and recorded in the profile's spec; the counts do not depend
    on them.
    """

    model: str
    batch_sizes: tuple[int, ...] = (1,)
    batch_given: bool = False
    overrides: ModelOverrides = field(default_factory=ModelOverrides)
    dtype: Precision | None = None
    device: Any = None
    depth: int | None = None
    top: int = 3
    trace_device: str = "meta"
    inputs: InputSpec = field(default_factory=InputSpec)
    convention: str = "deploykit"
    measure: bool = False
    iterations: int = 20
    engine: Path | None = None
    memory: bool = False
    optimizer: str | None = "adam"
    memory_target: str = "cuda"
    weights: str | None = None

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b <= 0 for b in self.batch_sizes):
            raise InvalidInput("batch sizes must be positive integers")
        if self.convention not in CONVENTIONS:
            raise InvalidInput(f"unknown convention {self.convention!r}; choose from {', '.join(CONVENTIONS)}")
        if self.dtype is not None:
            object.__setattr__(self, "dtype", Precision.parse(self.dtype, what="dtype"))
        object.__setattr__(self, "memory", self.memory or len(self.batch_sizes) > 1)
        if self.is_onnx:
            if self.weights is not None:
                raise InvalidInput("an ONNX file holds its own weights: --weights needs the PyTorch model")
            if self.inputs.is_integer or self.convention != "deploykit":
                raise InvalidInput(
                    "an ONNX file is profiled from its graph with its own input types and deploykit's "
                    "convention: --input-dtype, --input-range and --convention need the PyTorch model"
                )
            if self.measure or self.memory or self.engine is not None:
                raise InvalidInput(
                    "an ONNX file is profiled from its graph only: --measure, --memory, a batch sweep and "
                    "--engine need the PyTorch model (give its registered name or import path)"
                )

    @property
    def is_onnx(self) -> bool:
        return self.model.lower().endswith(".onnx")

    @property
    def batch(self) -> int:
        return self.batch_sizes[0]

    @property
    def torch_dtype(self) -> Precision:
        """The precision of a PyTorch model's profile (fp32 unless asked)."""
        return self.dtype or Precision.FP32


@dataclass(frozen=True)
class ProfileRun:
    """What ``deploykit profile`` shows: the profile, its roofline and findings, and the optional extras."""

    options: ProfileOptions
    profile: Any
    roofline: Any
    findings: Any
    rows: Any = None
    memory: Any = None
    times: Any = None
    ceilings: Any = None
    achieved: tuple[Any, ...] = ()
    engine_times: Any = None

    def settings(self) -> dict[str, Any]:
        """The options as recorded in the JSON document."""
        o, p = self.options, self.profile
        return {
            "model": o.model, "batch_size": p.batch_size, "dtype": p.dtype, "device_preset": self.roofline.device.key,
            "depth": o.depth, "input_shape": list(p.input_shape), "trace_device": o.trace_device,
            "measure": o.measure, "convention": o.convention, "inputs": o.inputs.to_dict(),
        }


def _base_profile(o: ProfileOptions) -> tuple[Any, Any, Any]:
    """The per-layer profile (measured on CUDA with ``--measure``), plus the layer times and ceilings."""
    if o.measure:
        from deploykit.bench.ceilings import device_ceilings
        from deploykit.bench.layer_timing import measure_layers

        prof, times = measure_layers(o.model, batch_size=o.batch, dtype=o.torch_dtype, device="cuda",
                                     iterations=o.iterations, weights=o.weights, **o.overrides.kwargs())
        return prof, times, device_ceilings()
    if o.is_onnx:
        from deploykit.profile.onnx_graph import profile_onnx

        if o.overrides:
            raise InvalidInput("an ONNX file fixes its own input shape; only --batch-size applies to it")
        return profile_onnx(Path(o.model), batch_size=o.batch if o.batch_given else None, dtype=o.dtype), None, None
    from deploykit.profile import profile_model

    prof = profile_model(o.model, batch_size=o.batch, dtype=o.torch_dtype, device=o.trace_device, inputs=o.inputs,
                         weights=o.weights, **o.overrides.kwargs())
    return prof, None, None


def run_profile(options: ProfileOptions) -> ProfileRun:
    """Profile the model as ``options`` say; returns data (nothing is printed or written)."""
    from deploykit.profile import aggregate_layers, get_device
    from deploykit.profile.findings import findings
    from deploykit.profile.roofline import roofline

    o = options
    prof, times, ceilings = _base_profile(o)
    mem = None
    if o.memory:
        from deploykit.profile.memory import memory_report

        mem = memory_report(o.model, batch_sizes=o.batch_sizes, dtype=o.torch_dtype, target=o.memory_target,
                            optimizer=o.optimizer, **o.overrides.kwargs())
    roof = roofline(prof, o.device if o.device is not None else get_device("h100"))
    engine_times = None
    if o.engine is not None:
        from deploykit.backends.tensorrt import engine_layer_times

        engine_times = engine_layer_times(o.engine, batch_size=o.batch)
    achieved: tuple[Any, ...] = ()
    if times is not None:
        from deploykit.bench.layer_timing import achieved as achieved_rows

        achieved = tuple(achieved_rows(prof, times, ceilings))
    return ProfileRun(
        options=o, profile=prof, roofline=roof, findings=findings(prof, roof, top=o.top),
        rows=aggregate_layers(prof, o.depth) if o.depth is not None else None, memory=mem, times=times,
        ceilings=ceilings, achieved=achieved, engine_times=engine_times,
    )


__all__ = ["ProfileOptions", "ProfileRun", "run_profile"]
