"""TensorRT at run time: engines built by :mod:`deploykit.export.tensorrt` -> a :class:`TensorRTRunner`.

- ``runtime``: the lazy ``tensorrt`` import, its version, the GPU, and the CUDA seams (streams, device guard)
- ``manifest``: the manifest next to every engine, read and checked against this machine's GPU and TensorRT
- ``executor``: :class:`EngineExecutor` (binds torch CUDA tensors, ``execute_async_v3``) and :func:`load_engine`
- ``inspector``: the engine inspector's JSON from 10.x and 11.x, parsed
- ``runner``: :class:`TensorRTRunner`, the :class:`~deploykit.backends.base.Runner` for engines
- ``layer_times``: per-layer engine information and per-layer times from TensorRT's ``IProfiler``

Names load on first use: importing this package needs neither ``tensorrt`` nor torch.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "_shapes_for": "deploykit.backends.tensorrt.layer_times",
    "check_engine_compatibility": "deploykit.backends.tensorrt.manifest",
    "current_gpu": "deploykit.backends.tensorrt.runtime",
    "current_stream": "deploykit.backends.tensorrt.runtime",
    "device_guard": "deploykit.backends.tensorrt.runtime",
    "dtype_from_format": "deploykit.backends.tensorrt.inspector",
    "engine_layer_info": "deploykit.backends.tensorrt.layer_times",
    "engine_layer_times": "deploykit.backends.tensorrt.layer_times",
    "engine_manifest_path": "deploykit.backends.tensorrt.manifest",
    "ENGINE_SUFFIX": "deploykit.backends.tensorrt.manifest",
    "EngineArtifact": "deploykit.backends.tensorrt.manifest",
    "EngineExecutor": "deploykit.backends.tensorrt.executor",
    "EngineLayerTimes": "deploykit.backends.tensorrt.layer_times",
    "GpuInfo": "deploykit.backends.tensorrt.runtime",
    "import_tensorrt": "deploykit.backends.tensorrt.runtime",
    "INSTALL_HINT": "deploykit.backends.tensorrt.runtime",
    "IOTensor": "deploykit.backends.tensorrt.executor",
    "LayerTime": "deploykit.backends.tensorrt.layer_times",
    "load_engine": "deploykit.backends.tensorrt.executor",
    "load_engine_manifest": "deploykit.backends.tensorrt.manifest",
    "MANIFEST_SCHEMA": "deploykit.backends.tensorrt.manifest",
    "MANIFEST_VERSION": "deploykit.backends.tensorrt.manifest",
    "MIN_TENSORRT": "deploykit.backends.tensorrt.runtime",
    "new_stream": "deploykit.backends.tensorrt.runtime",
    "parse_engine_information": "deploykit.backends.tensorrt.inspector",
    "parse_trt_version": "deploykit.backends.tensorrt.runtime",
    "ProfileShape": "deploykit.backends.tensorrt.executor",
    "SCHEMA": "deploykit.backends.tensorrt.layer_times",
    "SCHEMA_VERSION": "deploykit.backends.tensorrt.layer_times",
    "sha256_file": "deploykit.backends.tensorrt.manifest",
    "summarize_layer_samples": "deploykit.backends.tensorrt.layer_times",
    "tensorrt_status": "deploykit.backends.tensorrt.runtime",
    "TensorRTRunner": "deploykit.backends.tensorrt.runner",
    "torch_dtype_for": "deploykit.backends.tensorrt.executor",
    "trt_dtype_name": "deploykit.backends.tensorrt.executor",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
