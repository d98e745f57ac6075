"""TensorRT runner (engines built by :func:`deploykit.export.tensorrt.build_engine`) and per-layer engine profiles.

``tensorrt`` is imported only in ``activate`` / the profiling functions. Before an engine is deserialized its
manifest is checked against this machine's GPU and TensorRT version (a mismatch is an
:class:`~deploykit.errors.ArtifactError` naming both); engines from untrusted sources must never be loaded
(an engine is executable code: TensorRT 11.x migration guide, "Engine Deserialization and the Trust Boundary").

The binding and enqueue code is :class:`deploykit.export.tensorrt.EngineExecutor` (one implementation for the
runner and the post-build validation). None of this has run against a real TensorRT: this workplace cannot
install it; the calls are written against the TensorRT 10.x/11.x Python API and cited where they are made.

>>> with TensorRTRunner("out/resnet18-fp16.engine") as r:      # doctest: +SKIP
...     y = r.infer(r.prepare_input(torch.randn(8, 3, 224, 224)))
"""

from __future__ import annotations

import datetime
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deploykit.backends.base import Runner
from deploykit.errors import ArtifactError, BackendUnavailable, InvalidInput

SCHEMA = "deploykit.tensorrt-layer-times"
SCHEMA_VERSION = 1


class TensorRTRunner(Runner):
    """Runs a TensorRT engine on torch CUDA tensors (no pycuda, no host copies).

    ``infer(x)`` takes a contiguous tensor on the runner's device in the engine's input dtype
    (:meth:`prepare_input` converts once, outside timing) with a batch inside the engine's profile, and returns
    the first output. Work runs with ``execute_async_v3`` on the runner's own non-default stream
    (``runner.stream``), which waits for the caller's current stream before and is waited on by it after: CUDA
    events recorded on the caller's stream bracket the engine exactly (``enqueues_on_current_stream``).

    With ``cuda_graph=True`` the enqueue is captured once per input shape into a ``torch.cuda.CUDAGraph``
    (after one plain enqueue, as the TensorRT performance guide asks, so deferred shape work happens outside the
    capture) and replayed; inputs are copied into a static buffer unless ``x`` is that buffer (what
    :meth:`prepare_input` returns), and the returned tensor is the static output, overwritten by the next call.
    """

    name = "trt"
    #: The enqueue is ordered after / before the caller's current stream (wait_stream both sides).
    enqueues_on_current_stream = True

    def __init__(self, engine_path: str | os.PathLike[str], device: str = "cuda", *, cuda_graph: bool = False) -> None:
        super().__init__(device)
        if self.device.type != "cuda":
            raise InvalidInput(f"TensorRT engines run on a CUDA device, not {self.device}")
        self.engine_path = Path(engine_path)
        self.cuda_graph = cuda_graph
        self.executor: Any = None
        self.manifest: dict[str, Any] = {}
        self._graph: Any = None
        self._graph_key: tuple[Any, ...] | None = None
        self._static_in: torch.Tensor | None = None
        self._static_out: list[torch.Tensor] = []
        self.info.update({"engine": os.fspath(self.engine_path), "cuda_graphs": cuda_graph})

    # -- lifecycle
    def _activate(self) -> None:
        from deploykit.export.tensorrt import load_engine

        if not torch.cuda.is_available():
            raise BackendUnavailable("the TensorRT runner needs a CUDA GPU and none is available")
        self.executor, self.manifest = load_engine(self.engine_path, str(self.device))
        self.device = self.executor.device
        prec = self.manifest.get("precision", {})
        self.info.update(
            {
                "tensorrt": self.manifest.get("tensorrt", {}).get("version"),
                "precision": prec.get("requested"),
                "precision_path": prec.get("path"),
                "profile": self.manifest.get("profile"),
                "input_dtype": str(self.input_dtype).replace("torch.", ""),
            }
        )

    def _deactivate(self) -> None:
        self._graph = self._static_in = None
        self._static_out = []
        self._graph_key = None
        self.executor = None  # drops context, engine and runtime (pybind objects free on refcount)

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the engine's (first) input takes: ``torch.float16`` for an fp16 ONNX, else usually float32."""
        self._require_active()
        dtype: torch.dtype = self.executor.inputs[0].dtype
        return dtype

    @property
    def stream(self) -> torch.cuda.Stream:
        """The non-default stream TensorRT work is enqueued on."""
        self._require_active()
        s: torch.cuda.Stream = self.executor.stream
        return s

    def _require_active(self) -> None:
        if self.executor is None:
            raise InvalidInput("activate the TensorRT runner first (use it as a context manager)")

    # -- inference
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the runner's device, in the engine's input dtype, contiguous (done once, outside timing).

        With ``cuda_graph=True`` the graph for ``x``'s shape is captured here and the static input buffer is
        returned (filled with ``x``), so a timed ``infer`` does no copy.
        """
        self._require_active()
        x = x.to(device=self.device, dtype=self.input_dtype).contiguous()
        if self.cuda_graph:
            self._ensure_graph(x)
            assert self._static_in is not None
            self._static_in.copy_(x)
            return self._static_in
        return x

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        self._require_active()
        if not self.cuda_graph:
            out: torch.Tensor = self.executor.run([x], reuse_outputs=False)[0]
            return out
        self._ensure_graph(x)
        assert self._static_in is not None
        if x.data_ptr() != self._static_in.data_ptr():
            self._static_in.copy_(x)
        caller = torch.cuda.current_stream(self.device)
        stream = self.executor.stream
        stream.wait_stream(caller)
        with torch.cuda.stream(stream):
            self._graph.replay()
        caller.wait_stream(stream)
        return self._static_out[0]

    def _ensure_graph(self, x: torch.Tensor) -> None:
        key = (tuple(x.shape), x.dtype)
        if self._graph_key == key:
            return
        ex = self.executor
        self._graph = None
        static_in = x.detach().clone()
        # Fixed addresses: bind the static buffers once; outputs are kept by the executor's cache.
        static_out = ex.bind([static_in], reuse_outputs=True)
        ex.enqueue()  # one plain enqueue first: TensorRT does deferred per-shape work on the first enqueue
        torch.cuda.current_stream(self.device).synchronize()
        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph(g, stream=s) captures the work enqueued on s; execute_async_v3 is the only call inside
        # (same pattern as Torch-TensorRT's _PythonTorchTensorRTModule CUDA-graph path).
        with torch.cuda.graph(graph, stream=ex.stream):
            ok = ex.context.execute_async_v3(ex.stream.cuda_stream)
        if not ok:
            raise ArtifactError(f"{ex.name}: execute_async_v3 failed during CUDA-graph capture")
        self._graph, self._static_in, self._static_out, self._graph_key = graph, static_in, static_out, key


# ------------------------------------------------------------------------------------- engine information
def engine_layer_info(engine_path: str | os.PathLike[str], *, batch_size: int | None = None, device: str = "cuda") -> dict[str, Any]:
    """The engine inspector's view of an engine: fused layers, chosen tactics, per-tensor formats and dtypes.

    Parses both the 10.x (``"Bindings"``, ``"Format/Datatype"``) and 11.x (``"I/O Tensors"``, ``"DataType"`` /
    ``"Format"``) JSON (see :func:`deploykit.export.tensorrt.parse_engine_information`). Input shapes are set
    first (``batch_size``, default the profile's opt batch) so a dynamic engine reports concrete formats.
    The raw JSON is under ``"raw"``; ``"tensorrt"`` and ``"engine"`` say what was inspected.
    """
    from deploykit.export.tensorrt import load_engine

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


# ----------------------------------------------------------------------------------------- layer timing
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
    from deploykit.export.tensorrt import _current_stream, load_engine

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
        _current_stream(executor.device).synchronize()
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
