"""Per-layer engine information (the inspector) and per-layer times (TensorRT's ``IProfiler``)."""

from __future__ import annotations

import datetime
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from deploykit.errors import ArtifactError, InvalidInput

SCHEMA = "deploykit.tensorrt-layer-times"

SCHEMA_VERSION = 1

def engine_layer_info(engine_path: str | os.PathLike[str], *, batch_size: int | None = None, device: str = "cuda") -> dict[str, Any]:
    """The engine inspector's view of an engine: fused layers, chosen tactics, per-tensor formats and dtypes.

    Parses both the 10.x (``"Bindings"``, ``"Format/Datatype"``) and 11.x (``"I/O Tensors"``, ``"DataType"`` /
    ``"Format"``) JSON (see :func:`deploykit.backends.tensorrt.inspector.parse_engine_information`). Input shapes are set
    first (``batch_size``, default the profile's opt batch) so a dynamic engine reports concrete formats.
    The raw JSON is under ``"raw"``; ``"tensorrt"`` and ``"engine"`` say what was inspected.
    """
    from deploykit.backends.tensorrt.executor import load_engine

    executor, manifest = load_engine(engine_path, device)
    info = executor.engine_information(_shapes_for(executor, batch_size))
    info["tensorrt"] = manifest.get("tensorrt", {}).get("version")
    info["engine"] = os.fspath(engine_path)
    return info

def _shapes_for(executor: Any, batch_size: int | None) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for spec in executor.inputs:
        opt = spec.profile.opt if spec.profile else spec.shape
        if batch_size is None:
            shapes[spec.name] = tuple(opt)
        else:
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise InvalidInput(f"batch_size must be a positive integer, got {batch_size!r}")
            dynamic = spec.profile is not None and spec.profile.min[0] != spec.profile.max[0]
            if not dynamic and batch_size != opt[0]:
                raise InvalidInput(f"the engine has a fixed batch of {opt[0]}; it cannot run batch {batch_size}")
            shapes[spec.name] = (batch_size, *opt[1:])
    return shapes

@dataclass(frozen=True)
class LayerTime:
    """Time of one engine layer (a fused TensorRT layer, not an ONNX node) over the profiled runs, in ms."""

    name: str
    median_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    samples_ms: tuple[float, ...]
    layer_type: str | None
    precision: str | None
    tactic: str | None
    onnx_nodes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median_ms": self.median_ms,
            "mean_ms": self.mean_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "samples_ms": list(self.samples_ms),
            "layer_type": self.layer_type,
            "precision": self.precision,
            "tactic": self.tactic,
            "onnx_nodes": list(self.onnx_nodes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerTime:
        return cls(
            name=d["name"],
            median_ms=float(d["median_ms"]),
            mean_ms=float(d["mean_ms"]),
            min_ms=float(d["min_ms"]),
            max_ms=float(d["max_ms"]),
            samples_ms=tuple(float(x) for x in d["samples_ms"]),
            layer_type=d.get("layer_type"),
            precision=d.get("precision"),
            tactic=d.get("tactic"),
            onnx_nodes=tuple(d.get("onnx_nodes", ())),
        )

@dataclass(frozen=True)
class EngineLayerTimes:
    """Per-layer times of one engine at one batch size, from TensorRT's ``IProfiler``, with inspector info.

    ``total_median_ms`` is the sum of the per-layer medians (the profiler synchronizes after every layer, so it
    is larger than an un-profiled run: compare layers with each other, take end-to-end latency from
    :mod:`deploykit.bench`). ``engine_info`` is :func:`engine_layer_info` without its raw JSON.
    """

    engine: str
    batch_size: int
    runs: int
    warmup_runs: int
    layers: tuple[LayerTime, ...]
    total_median_ms: float
    tensorrt_version: str | None
    precision: str | None
    engine_info: dict[str, Any]
    environment: dict[str, Any]
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "engine": self.engine,
            "batch_size": self.batch_size,
            "runs": self.runs,
            "warmup_runs": self.warmup_runs,
            "total_median_ms": self.total_median_ms,
            "tensorrt_version": self.tensorrt_version,
            "precision": self.precision,
            "layers": [lt.to_dict() for lt in self.layers],
            "engine_info": self.engine_info,
            "environment": self.environment,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineLayerTimes:
        if d.get("schema") != SCHEMA:
            raise ArtifactError(f"not a deploykit TensorRT layer-times record (schema {d.get('schema')!r})")
        if int(d.get("schema_version", 0)) > SCHEMA_VERSION:
            raise ArtifactError(f"layer-times schema version {d.get('schema_version')} is newer than {SCHEMA_VERSION}")
        return cls(
            engine=d["engine"],
            batch_size=int(d["batch_size"]),
            runs=int(d["runs"]),
            warmup_runs=int(d["warmup_runs"]),
            layers=tuple(LayerTime.from_dict(x) for x in d["layers"]),
            total_median_ms=float(d["total_median_ms"]),
            tensorrt_version=d.get("tensorrt_version"),
            precision=d.get("precision"),
            engine_info=dict(d.get("engine_info", {})),
            environment=dict(d.get("environment", {})),
            created=str(d.get("created", "")),
        )

def summarize_layer_samples(
    samples: dict[str, list[float]], order: Sequence[str], layer_info: dict[str, Any] | None = None
) -> tuple[LayerTime, ...]:
    """Turn raw per-layer samples (ms, one per profiled run) into :class:`LayerTime` rows, in engine order.

    Layers the inspector knows are annotated with type, precision, tactic and the ONNX nodes they fuse.
    """
    by_name = {str(layer.get("name")): layer for layer in (layer_info or {}).get("layers", [])}
    rows = []
    for name in order:
        s = samples[name]
        meta = by_name.get(name, {})
        rows.append(
            LayerTime(
                name=name,
                median_ms=statistics.median(s),
                mean_ms=sum(s) / len(s),
                min_ms=min(s),
                max_ms=max(s),
                samples_ms=tuple(s),
                layer_type=meta.get("type"),
                precision=meta.get("precision"),
                tactic=None if meta.get("tactic") is None else str(meta.get("tactic")),
                onnx_nodes=tuple(meta.get("onnx_nodes", ())),
            )
        )
    return tuple(rows)

def _make_profiler(trt: Any) -> Any:
    """A ``trt.IProfiler`` that collects ``report_layer_time(layer_name, ms)`` per layer, in report order.

    API: subclass ``trt.IProfiler``, call ``trt.IProfiler.__init__(self)``, override ``report_layer_time`` —
    TensorRT 8.x-11.x Python API ("Profiler" docs); assigned with ``context.profiler = p``; with
    ``context.enqueue_emits_profile = True`` (the default) every enqueue reports (pyCore.cpp bindings;
    NVIDIA trt-samples cookbook 09-Advance/Profiler).
    """

    class _Profiler(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.samples: dict[str, list[float]] = {}
            self.order: list[str] = []
            self.recording = False

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            if not self.recording:
                return
            if layer_name not in self.samples:
                self.samples[layer_name] = []
                self.order.append(layer_name)
            self.samples[layer_name].append(float(ms))

    return _Profiler()

def engine_layer_times(
    engine_path: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    runs: int = 20,
    warmup_runs: int = 5,
    device: str = "cuda",
    seed: int = 0,
) -> EngineLayerTimes:
    """Per-layer times of an engine from TensorRT's profiler interface, plus the engine inspector's layer info.

    A dedicated execution context carries the profiler (the timed runner keeps its own un-profiled context:
    profiled and timed runs never mix). ``warmup_runs`` enqueues are discarded, then ``runs`` enqueues are
    recorded; each layer keeps its raw samples.
    """
    from deploykit._env import environment
    from deploykit.backends.tensorrt import runtime as _rt
    from deploykit.backends.tensorrt.executor import load_engine

    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise InvalidInput(f"runs must be a positive integer, got {runs!r}")
    if isinstance(warmup_runs, bool) or not isinstance(warmup_runs, int) or warmup_runs < 0:
        raise InvalidInput(f"warmup_runs must be a non-negative integer, got {warmup_runs!r}")
    executor, manifest = load_engine(engine_path, device)
    shapes = _shapes_for(executor, batch_size)
    info = executor.engine_information(shapes)
    info.pop("raw", None)

    trt = executor.trt
    profiler = _make_profiler(trt)
    # IExecutionContext.profiler / enqueue_emits_profile: properties since 8.x, unchanged in 10.x/11.x.
    executor.context.profiler = profiler
    executor.context.enqueue_emits_profile = True
    gen = torch.Generator(device="cpu").manual_seed(seed)
    inputs = [
        torch.randn(shapes[s.name], generator=gen).to(executor.device, s.dtype).contiguous() for s in executor.inputs
    ]
    for i in range(warmup_runs + runs):
        profiler.recording = i >= warmup_runs
        executor.run(inputs, reuse_outputs=True)
        _rt.current_stream(executor.device).synchronize()
    if not profiler.order:
        raise ArtifactError(f"TensorRT's profiler reported no layer times for {engine_path}")
    layers = summarize_layer_samples(profiler.samples, profiler.order, info)
    return EngineLayerTimes(
        engine=os.fspath(engine_path),
        batch_size=batch_size,
        runs=runs,
        warmup_runs=warmup_runs,
        layers=layers,
        total_median_ms=sum(lt.median_ms for lt in layers),
        tensorrt_version=manifest.get("tensorrt", {}).get("version"),
        precision=manifest.get("precision", {}).get("requested"),
        engine_info=info,
        environment=environment(str(executor.device)),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
