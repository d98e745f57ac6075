"""TensorRT engines built from a validated ONNX file (TensorRT 10.x and 11.x Python API).

``tensorrt`` is imported lazily: importing this module never needs it (nor torch).

How a precision is built, per TensorRT version (:func:`select_precision_plan`, a pure function):

========  ==========================  ==========================================================================
asked     ONNX graph                  what is built
========  ==========================  ==========================================================================
fp32      fp32                        strongly typed network, no precision flag, TF32 cleared (true fp32)
fp16      fp16 (``export --fp16``)    strongly typed network, no flag: the graph's dtypes decide (10.x and 11.x)
fp16      fp32                        10.0-10.11 only: weakly typed network + ``BuilderFlag.FP16`` (the legacy
                                      route, recorded as ``weak-typing``); refused on 10.12+ (deprecated) and
                                      11.x (the flag is gone): export an fp16 ONNX instead
bf16      bf16 / fp32                 as fp16, with ``BuilderFlag.BF16`` on the legacy route
int8      Q/DQ ONNX (``export         strongly typed network, no flag: scales come from the graph (10.x, 11.x)
          --int8 --calib-data D``)
int8      no Q/DQ                     refused on every version: quantize first (real calibration data); the
                                      calibrator route (``IInt8Calibrator``, ``BuilderFlag.INT8``) is gone in 11.x
                                      and deploykit keeps one INT8 route for 10.x and 11.x
========  ==========================  ==========================================================================

After every build the engine inspector (``ProfilingVerbosity.DETAILED``) must show layers in the precision that
was asked for; an fp16 request that produced an all-fp32 engine fails the build (the "silent fp32" bug). The
engine is then validated against an eager PyTorch reference (or ONNX Runtime on the source ONNX when no module
is given) with per-precision tolerances, and only then written, atomically, with its manifest.

The package builds engines; running them (loading, the executor, manifests' compatibility checks, the engine
inspector) lives in :mod:`deploykit.backends.tensorrt`, and the names this module had before it became a package
are re-exported here from both places:

- ``onnx_info``: the source ONNX file's inputs, precision and Q/DQ nodes
- ``profiles``: optimization-profile shapes from the batch options
- ``precision``: the precision plan per TensorRT version and the silent-fp32 check
- ``calibration``: real INT8 calibration data and the 10.x calibrator
- ``timing_cache``: timing-cache keys, paths, loading into and saving from a builder config
- ``manifest``: the manifest written next to an engine, and the engine + manifest pair written as one
- ``engine_validation``: the built engine against the reference
- ``build``: :func:`build_engine`, parser -> config -> plan -> inspect -> validate -> write

API versions: each TensorRT call carries a comment naming the versions that have it and where it was checked.
Nothing here has run against a real TensorRT: this workplace cannot install it.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "_default_engine_path": "deploykit.export.tensorrt.build",
    "_reference_fn": "deploykit.export.tensorrt.engine_validation",
    "build_engine": "deploykit.export.tensorrt.build",
    "check_engine_compatibility": "deploykit.backends.tensorrt.manifest",
    "check_precision": "deploykit.export.tensorrt.precision",
    "current_gpu": "deploykit.backends.tensorrt.runtime",
    "default_cache_dir": "deploykit.export.tensorrt.timing_cache",
    "DEFAULT_MAX_BATCH": "deploykit.export.tensorrt.profiles",
    "DEFAULT_MIN_BATCH": "deploykit.export.tensorrt.profiles",
    "DEFAULT_OPT_BATCH": "deploykit.export.tensorrt.profiles",
    "default_timing_cache_path": "deploykit.export.tensorrt.timing_cache",
    "derive_profile_shapes": "deploykit.export.tensorrt.profiles",
    "dtype_from_format": "deploykit.backends.tensorrt.inspector",
    "engine_manifest_path": "deploykit.backends.tensorrt.manifest",
    "ENGINE_SUFFIX": "deploykit.backends.tensorrt.manifest",
    "EngineArtifact": "deploykit.backends.tensorrt.manifest",
    "EngineExecutor": "deploykit.backends.tensorrt.executor",
    "GpuInfo": "deploykit.backends.tensorrt.runtime",
    "import_tensorrt": "deploykit.backends.tensorrt.runtime",
    "inspect_onnx": "deploykit.export.tensorrt.onnx_info",
    "INSTALL_HINT": "deploykit.backends.tensorrt.runtime",
    "IOTensor": "deploykit.backends.tensorrt.executor",
    "load_engine": "deploykit.backends.tensorrt.executor",
    "load_engine_manifest": "deploykit.backends.tensorrt.manifest",
    "MANIFEST_SCHEMA": "deploykit.backends.tensorrt.manifest",
    "MANIFEST_VERSION": "deploykit.backends.tensorrt.manifest",
    "MIN_TENSORRT": "deploykit.backends.tensorrt.runtime",
    "OnnxInfo": "deploykit.export.tensorrt.onnx_info",
    "OPT_LEVELS": "deploykit.export.tensorrt.build",
    "parse_engine_information": "deploykit.backends.tensorrt.inspector",
    "parse_trt_version": "deploykit.backends.tensorrt.runtime",
    "PrecisionPlan": "deploykit.export.tensorrt.precision",
    "PRECISIONS": "deploykit.export.tensorrt.precision",
    "ProfileShape": "deploykit.backends.tensorrt.executor",
    "refuse_int8_without_qdq": "deploykit.export.tensorrt.precision",
    "select_precision_plan": "deploykit.export.tensorrt.precision",
    "sha256_file": "deploykit.backends.tensorrt.manifest",
    "tensorrt_status": "deploykit.backends.tensorrt.runtime",
    "TensorSpec": "deploykit.export.tensorrt.onnx_info",
    "timing_cache_key": "deploykit.export.tensorrt.timing_cache",
    "torch_dtype_for": "deploykit.backends.tensorrt.executor",
    "trt_dtype_name": "deploykit.backends.tensorrt.executor",
    "validate_engine": "deploykit.export.tensorrt.engine_validation",
    "validation_tolerance": "deploykit.export.tensorrt.engine_validation",
    "verify_engine_precision": "deploykit.export.tensorrt.precision",
    "WEAK_TYPING_DEPRECATED": "deploykit.export.tensorrt.precision",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
