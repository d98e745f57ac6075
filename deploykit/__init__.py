"""deploykit: take CNNs from PyTorch to deployment and tell the truth about what they cost.

The public API is listed in ``__all__``; names load on first use so that ``import deploykit`` is cheap.

>>> from deploykit import create_model, profile_model
>>> profile = profile_model("nin")            # doctest: +SKIP
>>> profile.total_params, profile.total_macs  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ArtifactError": "deploykit.errors",
    "BackendUnavailable": "deploykit.errors",
    "BenchResult": "deploykit.bench",
    "BenchSpec": "deploykit.bench",
    "CellResult": "deploykit.bench",
    "DeploykitError": "deploykit.errors",
    "ExportError": "deploykit.errors",
    "InvalidInput": "deploykit.errors",
    "ModelNotFound": "deploykit.errors",
    "ModelSpec": "deploykit.models",
    "OnnxArtifact": "deploykit.export",
    "Runner": "deploykit.backends",
    "ShapeError": "deploykit.errors",
    "TimingOptions": "deploykit.bench",
    "ValidationError": "deploykit.errors",
    "compare_results": "deploykit.report",
    "create_model": "deploykit.models",
    "export_onnx": "deploykit.export",
    "get_model_spec": "deploykit.models",
    "list_models": "deploykit.models",
    "load_results": "deploykit.bench",
    "register_model": "deploykit.models",
    "run_bench": "deploykit.bench",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deploykit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
