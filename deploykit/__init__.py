"""deploykit: take CNNs from PyTorch to deployment and tell the truth about what they cost.

The public API is listed in ``__all__``; names load on first use so that ``import deploykit`` is cheap.

>>> from deploykit import create_model, profile_model
>>> profile = profile_model("nin")            # doctest: +SKIP
>>> profile.total_params, profile.total_macs  # doctest: +SKIP
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

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
    "ModelProfile": "deploykit.profile",
    "ModelSpec": "deploykit.models",
    "OnnxArtifact": "deploykit.export",
    "Runner": "deploykit.backends",
    "ShapeError": "deploykit.errors",
    "TimingOptions": "deploykit.bench",
    "ValidationError": "deploykit.errors",
    "compare_models": "deploykit.profile",
    "compare_results": "deploykit.bench",
    "create_model": "deploykit.models",
    "export_onnx": "deploykit.export",
    "get_model_spec": "deploykit.models",
    "list_models": "deploykit.models",
    "get_device": "deploykit.profile",
    "load_results": "deploykit.bench",
    "memory_report": "deploykit.profile",
    "profile_model": "deploykit.profile",
    "profile_onnx": "deploykit.profile",
    "register_model": "deploykit.models",
    "roofline": "deploykit.profile",
    "run_bench": "deploykit.bench",
    # trained weights, labelled data, training, accuracy of deployed artifacts
    "Evaluation": "deploykit.evaluate",
    "LabelledData": "deploykit.data",
    "TrainOptions": "deploykit.train",
    "TrainResult": "deploykit.train",
    "WeightsRecord": "deploykit.models",
    "evaluate_model": "deploykit.evaluate",
    "evaluate_onnx": "deploykit.evaluate",
    "load_data": "deploykit.data",
    "load_weights": "deploykit.models",
    "save_weights": "deploykit.models",
    "train_model": "deploykit.train",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
