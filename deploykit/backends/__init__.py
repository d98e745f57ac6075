"""Backends: an artifact or module -> a :class:`Runner` with ``activate`` / ``infer`` / ``deactivate``.

One module or package per runtime, each owning what runs its artifacts (loading, sessions, engines, manifests'
compatibility checks): ``torch_backends`` (eager, ``torch.compile``), ``ort`` (ONNX Runtime), ``tensorrt``
(TensorRT engines), each named in the registry (:mod:`deploykit.backends.registry`) that bench, evaluate and
export read. Nothing here imports :mod:`deploykit.export`. Names load on first use, so importing a
runtime's package does not import torch until it is needed.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BackendInfo": "deploykit.backends.registry",
    "Runner": "deploykit.backends.base",
    "backend_names": "deploykit.backends.registry",
    "get_backend": "deploykit.backends.registry",
    "list_backends": "deploykit.backends.registry",
    "register_backend": "deploykit.backends.registry",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
