"""Building an engine: ONNX parser -> builder config -> serialized plan -> inspect -> validate -> write."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit.backends.tensorrt import runtime as _rt
from deploykit.backends.tensorrt.executor import EngineExecutor, ProfileShape, _make_logger
from deploykit.backends.tensorrt.manifest import ENGINE_SUFFIX, EngineArtifact
from deploykit.backends.tensorrt.runtime import import_tensorrt
from deploykit.errors import ExportError, InvalidInput
from deploykit.export.tensorrt.engine_validation import validate_engine
from deploykit.export.tensorrt.manifest import engine_manifest, write_engine
from deploykit.export.tensorrt.onnx_info import OnnxInfo, inspect_onnx
from deploykit.export.tensorrt.precision import (
    PrecisionPlan,
    check_precision,
    refuse_int8_without_qdq,
    select_precision_plan,
    verify_engine_precision,
)
from deploykit.export.tensorrt.profiles import derive_profile_shapes
from deploykit.export.tensorrt.timing_cache import (
    attach_timing_cache,
    default_timing_cache_path,
    save_timing_cache,
    timing_cache_key,
)
from deploykit.precision import Precision

#: ``IBuilderConfig.builder_optimization_level`` range (0-5, default 3; TensorRT 8.6+ and 11.x).
OPT_LEVELS = range(0, 6)

def _parser_errors(parser: Any) -> list[str]:
    """Parser errors with node names: ``ParserError.node_name()/node_operator()`` (nodeName/nodeOperator are
    in the 10.x C++ IParserError reference, e.g. 10.2/10.4/10.14; Python names as used by NVIDIA's
    trt-samples cookbook), ``node()`` (index), ``desc()``, ``code()`` (all 8.x+)."""
    out = []
    for i in range(int(parser.num_errors)):
        err = parser.get_error(i)
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        where = f"node {name!r}" if name else f"node #{err.node()}"
        out.append(f"{where}{f' ({op})' if op else ''}: {err.desc()} [{err.code()}]")
    return out

def _default_engine_path(info: OnnxInfo, precision: str) -> Path:
    stem = info.path.stem if precision == info.graph_tag else f"{info.path.stem}-{precision}"
    return info.path.with_name(stem + ENGINE_SUFFIX)

@dataclass
class _BuildResult:
    plan: bytes
    build_time_s: float
    timing_cache: dict[str, Any]
    warnings: list[str]


def _parse_network(trt: Any, logger: Any, info: OnnxInfo, plan: PrecisionPlan, shapes: Mapping[str, ProfileShape]) -> tuple[Any, Any, list[str]]:
    """Builder -> network -> ONNX parser; returns the builder, the network and its input names."""
    # trt.Builder(logger): 8.x-11.x.
    builder = trt.Builder(logger)
    # create_network(flags): STRONGLY_TYPED exists in 10.x (Python API "Builder": NetworkDefinitionCreationFlag)
    # and is accepted-but-ignored in 11.x (every network strongly typed; 10.x->11.x migration guide). flags=0 is a
    # weakly typed (explicit batch) network, the legacy 10.x route; EXPLICIT_BATCH is ignored in 10.x, gone in 11.
    flags = (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    # trt.OnnxParser(network, logger).parse_from_file(path) -> bool; reads model.onnx.data next to the file
    # (Polygraphy backend/trt/loader.py NetworkFromOnnxPath: "We need to use parse_from_file ... external weights").
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(os.fspath(info.path))
    if not ok or int(parser.num_errors) > 0:
        errors = _parser_errors(parser) or ["no error was recorded"]
        raise ExportError(f"TensorRT's ONNX parser rejected {info.path.name}: " + "; ".join(errors[:5]))
    net_inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    missing = [n for n in net_inputs if n not in shapes]
    if missing:
        raise ExportError(f"the parsed network has inputs {missing} that the ONNX graph does not list")
    return builder, network, net_inputs


def _configure(
    trt: Any,
    builder: Any,
    plan: PrecisionPlan,
    shapes: Mapping[str, ProfileShape],
    net_inputs: list[str],
    *,
    workspace_bytes: int | None,
    opt_level: int | None,
    tf32: bool,
) -> Any:
    """The builder config: memory pool, optimization level, verbosity, TF32, precision flags, profiles."""
    config = builder.create_builder_config()
    if workspace_bytes is not None:
        # set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes): TensorRT 8.4+ ("API Changes for 8.4"), 10.x, 11.x.
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if opt_level is not None:
        # builder_optimization_level (0-5, default 3): 8.6+ (Polygraphy CreateConfig), 10.x, 11.x.
        config.builder_optimization_level = int(opt_level)
    # DETAILED so the engine inspector reports per-layer dtypes/tactics (Python API "EngineInspector"): 8.2+.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if not tf32:
        # TF32 is on by default for fp32 convs/matmuls; fp32 here means fp32 (deploykit.backends.math_mode).
        # BuilderFlag.TF32 stays in 11.x.
        from deploykit.backends.math_mode import clear_tensorrt_tf32

        clear_tensorrt_tf32(config, trt)
    for flag in plan.builder_flags:
        # FP16 / BF16: 10.x only (removed in 11.0 per "Removed Python APIs and Replacements"); the plan only
        # names them on the 10.0-10.11 legacy routes. INT8 never: it comes from the graph's Q/DQ nodes.
        config.set_flag(getattr(trt.BuilderFlag, flag))

    # Optimization profile: builder.create_optimization_profile(); profile.set_shape(name, min, opt, max);
    # config.add_optimization_profile(profile) -> index. 7.x-11.x (Python API "IOptimizationProfile").
    profile = builder.create_optimization_profile()
    for name in net_inputs:
        s = shapes[name]
        profile.set_shape(name, s.min, s.opt, s.max)
    config.add_optimization_profile(profile)
    return config


def _build_serialized(
    trt: Any,
    info: OnnxInfo,
    plan: PrecisionPlan,
    shapes: Mapping[str, ProfileShape],
    *,
    workspace_bytes: int | None,
    opt_level: int | None,
    tf32: bool,
    cache_path: Path,
    device: Any,
) -> _BuildResult:
    """Logger -> Builder -> network -> ONNX parser -> builder config -> build_serialized_network, call by call."""
    logger = _make_logger(trt)
    builder, network, net_inputs = _parse_network(trt, logger, info, plan, shapes)
    config = _configure(
        trt, builder, plan, shapes, net_inputs,
        workspace_bytes=workspace_bytes, opt_level=opt_level, tf32=tf32,
    )
    cache_record = attach_timing_cache(config, cache_path)

    t0 = time.perf_counter()
    with _rt.device_guard(device):
        # build_serialized_network(network, config) -> IHostMemory | None (None on failure): 8.0+/10.x/11.x
        # (build_engine was removed in 10.0: 8.x->10.x Python migration appendix).
        serialized = builder.build_serialized_network(network, config)
    build_time_s = time.perf_counter() - t0
    if serialized is None:
        errs = "; ".join(logger.errors()[-5:]) or "see the TensorRT log"
        raise ExportError(f"TensorRT could not build an engine from {info.path.name}: {errs}")
    plan_bytes = bytes(serialized)  # IHostMemory implements the buffer protocol
    if not plan_bytes:
        raise ExportError(f"TensorRT returned an empty engine for {info.path.name}")
    return _BuildResult(
        plan=plan_bytes,
        build_time_s=build_time_s,
        timing_cache=save_timing_cache(config, cache_path, cache_record),
        warnings=[m for s, m in logger.messages if s == "WARNING"][-20:],
    )


def _check_options(precision: str, workspace_bytes: int | None, opt_level: int | None) -> Precision:
    """Everything about the options that can be refused before the ONNX file is read."""
    p = check_precision(precision)
    if workspace_bytes is not None and (isinstance(workspace_bytes, bool) or not isinstance(workspace_bytes, int)
                                        or workspace_bytes < 1):
        raise InvalidInput(f"workspace_bytes must be a positive integer, got {workspace_bytes!r}")
    if opt_level is not None and (isinstance(opt_level, bool) or opt_level not in OPT_LEVELS):
        raise InvalidInput(f"opt_level must be an integer from 0 to 5, got {opt_level!r}")
    return p


def _qdq_source(info: OnnxInfo) -> dict[str, Any] | None:
    """For a Q/DQ graph made by ``deploykit export --int8``: its calibration and measured accuracy (from its
    manifest), so the engine's manifest says where its scales came from."""
    if not info.has_qdq:
        return None
    import json

    mpath = info.path.with_name(info.path.name + ".json")
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"source": "Q/DQ ONNX without a deploykit manifest (calibration unknown)"}
    q, v = m.get("quantization") or {}, m.get("validation") or {}
    return {"source": m.get("file"), "sha256": m.get("sha256"), "method": q.get("method"), "samples": q.get("samples"),
            "data": q.get("data"), "accuracy_drop_points": v.get("accuracy_drop_points"), "status": v.get("status")}


def build_engine(
    onnx: Any,
    *,
    precision: str | Precision = "fp32",
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    workspace_bytes: int | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    opt_level: int | None = None,
    validate: bool = True,
    out_path: str | os.PathLike[str] | None = None,
    reference_model: Any = None,
    tf32: bool = False,
    device: str = "cuda",
) -> EngineArtifact:
    """Build, check and validate a TensorRT engine from an ONNX file; write it with its manifest.

    Args:
        onnx: an ``OnnxArtifact`` (``path``, ``manifest_path``, ``manifest``) or a path to a ``.onnx`` file.
        precision: ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"`` (see the module docstring for how each is
            built on 10.x and 11.x). ``"int8"`` needs a Q/DQ ONNX (``deploykit export --int8 --calib-data D``):
            TensorRT 11 removed implicit INT8 (calibrators, ``BuilderFlag.INT8``), so deploykit builds INT8 from
            the explicitly quantized graph on 10.x and 11.x alike.
        min_batch, opt_batch, max_batch: optimization profile for a dynamic-batch ONNX (defaults 1 / 8 / 32).
        workspace_bytes: ``MemoryPoolType.WORKSPACE`` limit (TensorRT's default: the device memory).
        timing_cache: timing-cache file, reused and updated; default a file keyed by GPU, CUDA and TensorRT
            version under ``~/.cache/deploykit/tensorrt/`` (``$DEPLOYKIT_CACHE_DIR`` overrides).
        opt_level: builder optimization level 0-5 (TensorRT's default 3).
        validate: compare the engine's outputs with ``reference_model`` (eager PyTorch) or, without one, with
            ONNX Runtime on the source ONNX; a failure raises :class:`ValidationError` and writes nothing. An INT8
            engine is always compared with ONNX Runtime running the same Q/DQ graph (same scales): that checks
            TensorRT's execution of the graph; the accuracy cost of the quantization against fp32 was measured on
            real held-out data when the graph was made (its manifest).
        out_path: engine path; default next to the ONNX, ``<onnx stem>[-<precision>].engine``.
        reference_model: the ``nn.Module`` that was exported (for eager validation).
        tf32: allow TF32 in fp32 layers (off: an "fp32" engine computes in fp32).
        device: the CUDA device to build for.

    Returns the :class:`EngineArtifact`. Raises :class:`BackendUnavailable` without TensorRT or CUDA,
    :class:`InvalidInput` for impossible options (checked before TensorRT is imported), :class:`ExportError`
    when parsing/building fails or the engine lacks the precision asked for.

    >>> art = build_engine("out/resnet18-fp16.onnx", precision="fp16", reference_model=model)  # doctest: +SKIP
    >>> art.manifest["precision"]["path"]                                                    # doctest: +SKIP
    'strong-typing'
    """
    # 1. Everything that needs no TensorRT: arguments, the ONNX graph, the profile, INT8 refusal.
    p = _check_options(precision, workspace_bytes, opt_level)
    info = inspect_onnx(onnx)
    shapes = derive_profile_shapes(info.inputs, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch)
    refuse_int8_without_qdq(p, has_qdq=info.has_qdq)
    engine_path = Path(out_path) if out_path is not None else _default_engine_path(info, p)
    if engine_path.suffix == ".json":
        raise InvalidInput(f"out_path {engine_path} looks like a manifest; give the engine file name")

    # 2. TensorRT, its version, the precision plan, the GPU, the timing cache.
    trt = import_tensorrt()
    trt_version = str(trt.__version__)
    plan = select_precision_plan(p, trt_version, onnx_precision=info.precision, has_qdq=info.has_qdq)
    gpu = _rt.current_gpu(device)
    import torch

    dev = torch.device(gpu.device)
    key = timing_cache_key(
        gpu_name=gpu.name, compute_capability=gpu.compute_capability, cuda_version=gpu.cuda, tensorrt_version=trt_version
    )
    cache_path = Path(timing_cache) if timing_cache is not None else default_timing_cache_path(key)

    # 3. Build.
    built = _build_serialized(
        trt, info, plan, shapes, workspace_bytes=workspace_bytes, opt_level=opt_level, tf32=tf32,
        cache_path=cache_path, device=dev,
    )

    # 4. Inspect: the engine must compute in the precision asked for (the silent-fp32 check).
    executor = EngineExecutor(trt, built.plan, dev, name=engine_path.name)
    layer_info = executor.engine_information({n: s.opt for n, s in shapes.items()})
    observed = verify_engine_precision(plan, layer_info)

    # 5. Validate against the reference.
    validation: dict[str, Any] = (
        validate_engine(executor, info, p, reference_model=None if p == "int8" else reference_model, tf32=tf32)
        if validate
        else {"skipped": "validate=False"}
    )

    # 6. Write engine + manifest as one pair.
    builder = {
        "workspace_bytes": workspace_bytes,
        "optimization_level": opt_level,
        "profiling_verbosity": "DETAILED",
        "timing_cache": {**built.timing_cache, "key": key},
        "warnings": built.warnings,
    }
    manifest = engine_manifest(
        engine_path=engine_path, plan_bytes=built.plan, info=info, plan=plan, gpu=gpu, shapes=shapes,
        executor=executor, layer_info=layer_info, validation=validation, tf32=tf32,
        build={"build_time_s": built.build_time_s, "tensorrt_version": trt_version, "builder": builder},
        precision={"observed": observed, "quantization": _qdq_source(info)},
    )
    return write_engine(engine_path, built.plan, manifest)
