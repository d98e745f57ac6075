"""The backend registry: every runtime deploykit can run a model on, by its command-line name.

One entry per backend says what it runs (the module itself, an ONNX file, a TensorRT engine), where (device
types), in which precisions, which :class:`~deploykit.backends.base.Runner` does it and how to ask whether it is
usable on this machine. Entries name their runner and status check as ``"module:attribute"`` strings, loaded on
first use, so listing backends (``--help``) imports no runtime. ``bench`` (cells, spec validation, help),
``evaluate`` and ``export`` (is TensorRT usable?) read this table; a new runtime is one module under
``deploykit/backends`` plus one :func:`register_backend` call here.

>>> [b.name for b in list_backends()]
['eager', 'channels-last', 'cuda-graph', 'compile', 'ort', 'trt']
>>> get_backend("ort").artifact
'onnx'
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from deploykit.errors import InvalidInput
from deploykit.precision import TORCH_PRECISIONS, Precision


@dataclass(frozen=True)
class BackendInfo:
    """One backend.

    ``artifact`` is ``None`` for a backend that runs the ``nn.Module`` itself, else the artifact it loads
    (``"onnx"``, ``"tensorrt-engine"``). ``runner`` and ``status`` are ``"module:attribute"`` paths: the Runner
    class, and a function returning ``None`` when the backend is usable here or a one-line reason.
    """

    name: str
    summary: str
    runner: str
    devices: tuple[str, ...]
    precisions: tuple[Precision, ...]
    artifact: str | None = None
    status: str | None = None

    def runner_class(self) -> Any:
        """The :class:`~deploykit.backends.base.Runner` subclass (imports the runtime's module)."""
        return _load(self.runner)

    def unavailable(self) -> str | None:
        """``None`` when this backend can run here (as far as can be told without running it), else why not."""
        return None if self.status is None else _load(self.status)()

    def help(self) -> str:
        """``"ort (ONNX Runtime, CPU or CUDA with io-binding)"``."""
        return f"{self.name} ({self.summary})"


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    # looked up at every call, so a replaced attribute (a test's fake) is the one used
    return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, BackendInfo] = {}


def register_backend(info: BackendInfo) -> BackendInfo:
    """Add a backend; a second backend with the same name is an error (names are command-line options)."""
    if info.name in _REGISTRY:
        raise ValueError(f"backend {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def get_backend(name: str) -> BackendInfo:
    """The backend called ``name``; :class:`InvalidInput` with the closest names otherwise."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=2)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise InvalidInput(f"unknown backend {name!r}{hint}; choose from {', '.join(_REGISTRY)}")


def list_backends() -> tuple[BackendInfo, ...]:
    """Every backend, in registration order (the order a benchmark runs them; eager, the reference, first)."""
    return tuple(_REGISTRY.values())


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


_TORCH = "deploykit.backends.torch_backends"
_BOTH = ("cpu", "cuda")

register_backend(BackendInfo("eager", "PyTorch eager", f"{_TORCH}:EagerRunner", _BOTH, TORCH_PRECISIONS))
register_backend(
    BackendInfo("channels-last", "eager, NHWC", f"{_TORCH}:ChannelsLastRunner", _BOTH, TORCH_PRECISIONS)
)
register_backend(
    BackendInfo(
        "cuda-graph", "eager captured and replayed", f"{_TORCH}:CudaGraphRunner", ("cuda",), TORCH_PRECISIONS
    )
)
register_backend(BackendInfo("compile", "torch.compile", f"{_TORCH}:CompileRunner", _BOTH, TORCH_PRECISIONS))
register_backend(
    BackendInfo(
        "ort",
        "ONNX Runtime, CPU or CUDA with io-binding",
        "deploykit.backends.ort:OrtRunner",
        _BOTH,
        (Precision.FP32, Precision.FP16),
        artifact="onnx",
    )
)
register_backend(
    BackendInfo(
        "trt",
        "TensorRT, CUDA graphs on",
        "deploykit.backends.tensorrt.runner:TensorRTRunner",
        ("cuda",),
        (Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8),
        artifact="tensorrt-engine",
        status="deploykit.backends.tensorrt.runtime:tensorrt_status",
    )
)

__all__ = ["BackendInfo", "backend_names", "get_backend", "list_backends", "register_backend"]
