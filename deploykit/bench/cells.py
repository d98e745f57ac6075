"""Backend name -> a ready :class:`~deploykit.backends.base.Runner` for one benchmark cell.

A factory takes a :class:`CellContext` and returns a :class:`Prepared` (the runner, the input dtype it takes,
whether its artifact came from the cache). A backend that cannot run here (no CUDA, no onnxruntime-gpu, no
TensorRT, an unsupported precision) raises :class:`~deploykit.errors.BackendUnavailable` or ``ImportError``;
the sweep records the cell as skipped with that one-line reason and goes on.

The ONNX Runtime and TensorRT modules are imported inside the factories, never at import time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploykit.backends.base import Runner
from deploykit.backends.registry import BackendInfo, get_backend
from deploykit.backends.torch_backends import (
    ChannelsLastRunner,
    CompileRunner,
    CudaGraphRunner,
    EagerRunner,
    torch_dtype,
)
from deploykit.bench.cache import BenchCache
from deploykit.errors import BackendUnavailable, InvalidInput
from deploykit.models import ModelSpec
from deploykit.precision import Precision


@dataclass(frozen=True)
class CellContext:
    """Everything a factory needs for one cell. ``module`` is the fp32 CPU model shared by all cells of a
    model (factories copy it); ``overrides`` are the ``create_model`` overrides that built it."""

    model_name: str
    spec: ModelSpec
    module: nn.Module
    precision: str
    batch: int
    device: torch.device
    cache: BenchCache
    seed: int = 0
    compile_mode: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    calibration: tuple[Any, Any] | None = None  # (train split, test split) for int8 cells
    trained: bool = False
    #: what a factory wants the cell to record (a cache it could not write), in the cell's ``info["notes"]``
    notes: list[str] = field(default_factory=list)

    @property
    def input_ndim(self) -> int:
        return len(self.spec.input_shape) + 1


@dataclass
class Prepared:
    """A runner made for a cell, not yet activated."""

    runner: Runner
    input_dtype: torch.dtype
    cache_hit: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[CellContext], Prepared]


def _copy(ctx: CellContext) -> nn.Module:
    return copy.deepcopy(ctx.module)


def _need_cuda(ctx: CellContext, backend: str) -> None:
    if ctx.device.type != "cuda":
        raise BackendUnavailable(f"{backend} needs a CUDA device")


def eager_factory(ctx: CellContext) -> Prepared:
    return Prepared(EagerRunner(_copy(ctx), ctx.device, precision=ctx.precision), torch_dtype(ctx.precision))


def channels_last_factory(ctx: CellContext) -> Prepared:
    if ctx.input_ndim != 4:
        raise BackendUnavailable(
            f"channels-last needs a 4-D (N, C, H, W) input; {ctx.model_name} takes {ctx.input_ndim}-D"
        )
    return Prepared(
        ChannelsLastRunner(_copy(ctx), ctx.device, precision=ctx.precision), torch_dtype(ctx.precision)
    )


def cuda_graph_factory(ctx: CellContext) -> Prepared:
    _need_cuda(ctx, "cuda-graph")
    return Prepared(
        CudaGraphRunner(_copy(ctx), ctx.device, precision=ctx.precision), torch_dtype(ctx.precision)
    )


def compile_factory(ctx: CellContext) -> Prepared:
    # channels-last on CUDA: the layout of the fastest measured configurations (BENCHMARKING.md anchors);
    # the input is staged in that layout once, outside timing.
    channels_last = ctx.device.type == "cuda" and ctx.input_ndim == 4
    runner = CompileRunner(
        _copy(ctx),
        ctx.device,
        precision=ctx.precision,
        mode=ctx.compile_mode,
        channels_last=channels_last,
        cache_dir=ctx.cache.inductor_dir,
    )
    return Prepared(runner, torch_dtype(ctx.precision))


# ------------------------------------------------------------------------------------------ ONNX / TensorRT
def _artifact_key(ctx: CellContext, precision: str) -> tuple[str, dict[str, Any]]:
    from deploykit import __version__
    from deploykit.models.shapes import fmt_shape

    label = f"{ctx.model_name}-{fmt_shape(ctx.spec.input_shape)}-{precision}-b{ctx.batch}"
    key = {
        "model": ctx.model_name,
        "input_shape": list(ctx.spec.input_shape),
        "num_classes": ctx.spec.num_classes,
        "overrides": ctx.overrides,
        "precision": precision,
        "batch": ctx.batch,
        "seed": ctx.seed,
        # trained weights: a cached export of other (or random) weights must never be reused
        "weights_sha256": ctx.spec.weights.sha256 if ctx.spec.weights is not None else None,
        "torch": torch.__version__,
        "deploykit": __version__,
    }
    return label, key


def cached_onnx(ctx: CellContext, precision: str) -> tuple[Any, bool]:
    """The ONNX export of this cell's model at ``precision`` and batch: from the cache, or exported now.

    The bench's own module is exported (:func:`deploykit.export.export_module`), so the graph holds exactly the
    weights of the eager reference; the export is validated against eager by the exporter, and a cached file is
    reloaded with :func:`deploykit.export.load_onnx_artifact`, which checks its sha256 against the manifest.
    Returns ``(OnnxArtifact, cache_hit)``.
    """
    from deploykit.errors import ArtifactError
    from deploykit.export import export_module, load_onnx_artifact

    label, key = _artifact_key(ctx, precision)
    folder, note = ctx.cache.writable_dir("onnx", label, key)
    rec = BenchCache.lookup(folder)
    if rec is not None:
        try:
            return load_onnx_artifact(rec["path"]), True
        except ArtifactError:
            pass  # modified or half-written: export again
    if note:
        ctx.notes.append(note)
    art = export_module(
        ctx.module,
        ctx.spec,
        out_dir=folder,
        precision=precision,
        batch_size=ctx.batch,
        dynamic_batch=False,
        validate=True,
        name=ctx.model_name,
        model_info={"overrides": ctx.overrides, "weight_seed": None if ctx.spec.weights else ctx.seed,
                    "exported_by": "deploykit bench"},
    )
    not_cached = BenchCache.record(folder, {"path": str(art.path), "manifest_path": str(art.manifest_path), "key": key})
    if not_cached:
        ctx.notes.append(not_cached)
    return art, False


def ort_factory(ctx: CellContext) -> Prepared:
    if ctx.precision == "bf16":
        raise BackendUnavailable("ort: ONNX export is fp32 or fp16 (ONNX Runtime has no bf16 convolutions)")
    from deploykit.backends.ort import OrtRunner

    if ctx.device.type == "cuda":
        from deploykit.backends.ort import require_cuda_provider

        require_cuda_provider("ort on CUDA")  # before paying for an export that could not run
    info: dict[str, Any] = {}
    if ctx.precision == "int8":
        art, hit, info = cached_int8(ctx)
    else:
        art, hit = cached_onnx(ctx, ctx.precision)
    # io-binding on both devices (on CUDA it keeps host copies out); ORT runs on its own torch stream, ordered
    # after and before the caller's stream, so CUDA events time it exactly.
    threads = ctx.threads if ctx.device.type == "cpu" else None
    runner = OrtRunner(art.path, device=str(ctx.device), io_binding=True, threads=threads)
    dtype = torch.float32 if ctx.precision == "int8" else torch_dtype(ctx.precision)
    return Prepared(runner, dtype, cache_hit=hit, info={"onnx": str(art.path), **info})


def cached_int8(ctx: CellContext) -> tuple[Any, bool, dict[str, Any]]:
    """The INT8 Q/DQ graph of this cell's model (from the cache, or quantized now from the cached fp32 export,
    calibrated on ``ctx.calibration``'s train split) and what its validation on the test split measured
    (``fp32_top1``, ``int8_top1``, ``accuracy_drop_points``, ``agreement``, calibration method / samples / data
    sha256). No gate here: the bench reports the delta, ``deploykit export --int8`` enforces one."""
    import json

    from deploykit.errors import ArtifactError
    from deploykit.export import load_onnx_artifact
    from deploykit.export.int8 import Int8Options, quantize_artifact

    if ctx.calibration is None:
        raise InvalidInput("int8 cells need calibration data (--calib-data); deploykit never calibrates on random data")
    calib, test = ctx.calibration
    fp32, _ = cached_onnx(ctx, "fp32")
    label, key = _artifact_key(ctx, "int8")
    key = {**key, "fp32_sha256": fp32.manifest["sha256"], "calibration": calib.sha256, "evaluation": test.sha256}
    folder = ctx.cache.artifact_dir("onnx", label, key)
    rec = BenchCache.lookup(folder)
    art = None
    hit = False
    if rec is not None:
        try:
            art, hit = load_onnx_artifact(rec["path"]), True
        except ArtifactError:
            art = None
    if art is None:
        res = quantize_artifact(fp32, ctx.module, calib, test, Int8Options(max_accuracy_drop=100.0), out_dir=folder,
                                trained=ctx.trained)
        art = res.artifact
        BenchCache.record(folder, {"path": str(art.path), "manifest_path": str(art.manifest_path), "key": key})
    m = art.manifest if art.manifest else json.loads(art.manifest_path.read_text())
    v, q = m["validation"], m["quantization"]
    info = {
        "int8_validation": v["status"] if ctx.trained else "inconclusive (random weights)",
        "fp32_top1": v["fp32_top1"],
        "int8_top1": v["int8"]["top1"],
        "accuracy_drop_points": v["accuracy_drop_points"],
        "int8_agreement": v["int8"]["agreement"],
        "calibration": {"method": q["method"], "samples": q["samples"], "data": q["data"]["name"],
                        "split": q["data"]["split"], "sha256": q["data"]["sha256"]},
        "evaluation": {"data": test.name, "split": test.split, "samples": len(test), "sha256": test.sha256},
    }
    return art, hit, info


def trt_factory(ctx: CellContext) -> Prepared:
    _need_cuda(ctx, "trt")
    reason = get_backend("trt").unavailable()
    if reason is not None:
        raise BackendUnavailable(f"trt: {reason}")
    from deploykit.backends.tensorrt import TensorRTRunner
    from deploykit.backends.tensorrt.runtime import current_gpu, import_tensorrt
    from deploykit.export.tensorrt import build_engine, timing_cache_key

    trt_version = str(import_tensorrt().__version__)
    gpu = current_gpu(str(ctx.device))
    # TensorRT 10.12+ / 11 are strongly typed: an fp16 engine comes from an fp16 ONNX graph. There is no bf16
    # export; bf16 goes through the fp32 graph, which build_engine builds only where TensorRT still has the
    # precision flags (10.0-10.11) and refuses elsewhere (reported as a skipped cell).
    onnx_precision = Precision.parse(ctx.precision).onnx_graph
    int8_info: dict[str, Any] = {}
    if ctx.precision == "int8":  # the Q/DQ graph (written blind: no TensorRT here)
        onnx_art, _, int8_info = cached_int8(ctx)
    else:
        onnx_art, _ = cached_onnx(ctx, onnx_precision)
    label, key = _artifact_key(ctx, ctx.precision)
    key = {**key, "gpu": gpu.name, "cc": gpu.compute_capability, "cuda": gpu.cuda, "tensorrt": trt_version,
           "onnx_sha256": onnx_art.manifest["sha256"]}
    folder, note = ctx.cache.writable_dir("trt", label, key)
    if note:
        ctx.notes.append(note)
    rec = BenchCache.lookup(folder)
    hit = rec is not None
    if rec is None:
        tkey = timing_cache_key(
            gpu_name=gpu.name,
            compute_capability=gpu.compute_capability,
            cuda_version=gpu.cuda,
            tensorrt_version=trt_version,
        )
        try:
            engine = build_engine(
                onnx_art,
                precision=ctx.precision,
                min_batch=ctx.batch,
                opt_batch=ctx.batch,
                max_batch=ctx.batch,
                timing_cache=ctx.cache.root / "tensorrt" / f"timing-{tkey}.cache",
                out_path=folder / f"model-{ctx.precision}.engine",
                reference_model=copy.deepcopy(ctx.module),
                device=str(ctx.device),
            )
        except InvalidInput as exc:  # a precision this TensorRT cannot build from this graph
            raise BackendUnavailable(f"trt {ctx.precision}: {exc}") from None
        BenchCache.record(
            folder, {"path": str(engine.path), "manifest_path": str(engine.manifest_path), "key": key}
        )
        engine_path = Path(engine.path)
    else:
        engine_path = Path(rec["path"])
    # CUDA graphs on, as trtexec 11 measures by default; recorded per cell (cuda_graphs).
    runner = TensorRTRunner(engine_path, device=str(ctx.device), cuda_graph=True)
    # The runner's prepare_input converts to the engine's own input dtype (fp16 for an fp16 graph).
    return Prepared(runner, torch_dtype(onnx_precision), cache_hit=hit, info={"engine": str(engine_path), **int8_info})


def _module_factory(info: BackendInfo) -> Factory:
    """A registered backend that runs the module (``artifact=None``) and has no factory of its own."""

    def factory(ctx: CellContext) -> Prepared:
        _check_support(info, ctx)
        runner = info.runner_class()(_copy(ctx), ctx.device, precision=ctx.precision)
        return Prepared(runner, torch_dtype(ctx.precision))

    return factory


def _onnx_factory(info: BackendInfo) -> Factory:
    """A registered backend that runs an ONNX file (``artifact="onnx"``) and has no factory of its own: the
    cell's cached, validated export, given to the runner as ``Runner(path, device=...)``."""

    def factory(ctx: CellContext) -> Prepared:
        _check_support(info, ctx)
        art, hit = cached_onnx(ctx, ctx.precision)
        runner = info.runner_class()(art.path, device=str(ctx.device))
        return Prepared(runner, torch_dtype(ctx.precision), cache_hit=hit, info={"onnx": str(art.path)})

    return factory


def _check_support(info: BackendInfo, ctx: CellContext) -> None:
    if ctx.device.type not in info.devices:
        raise BackendUnavailable(f"{info.name} runs on {' or '.join(info.devices)}, not {ctx.device.type}")
    if ctx.precision not in info.precisions:
        raise BackendUnavailable(f"{info.name} runs {', '.join(info.precisions)}, not {ctx.precision}")
    reason = info.unavailable()
    if reason is not None:
        raise BackendUnavailable(f"{info.name}: {reason}")


def factory_for(backend: str) -> Factory:
    """The cell factory of a registered backend: its own (:data:`FACTORIES`), else a generic one for what it
    runs (the module, or the cell's ONNX export). Unknown names and other artifacts are :class:`InvalidInput`."""
    if backend in FACTORIES:
        return FACTORIES[backend]
    info = get_backend(backend)
    if info.artifact is None:
        return _module_factory(info)
    if info.artifact == "onnx":
        return _onnx_factory(info)
    raise InvalidInput(f"backend {backend!r} runs {info.artifact} artifacts, which the benchmark cannot build")


#: The built-in backends' own factories by command-line name.
FACTORIES: dict[str, Factory] = {
    "eager": eager_factory,
    "channels-last": channels_last_factory,
    "cuda-graph": cuda_graph_factory,
    "compile": compile_factory,
    "ort": ort_factory,
    "trt": trt_factory,
}
