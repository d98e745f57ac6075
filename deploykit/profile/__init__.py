"""Profiling: ``(module, input) -> ModelProfile`` (per-layer costs), memory model, ONNX graph profile, comparison,
roofline, device presets.

Names load on first use, so ``deploykit.profile.devices`` (the preset table the command-line help lists) can be
read without importing torch.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CompareOptions": "deploykit.profile.compare",
    "Comparison": "deploykit.profile.compare",
    "DTYPE_BYTES": "deploykit.profile.types",
    "DevicePreset": "deploykit.profile.devices",
    "InferenceMemory": "deploykit.profile.memory",
    "LayerMemory": "deploykit.profile.memory",
    "LayerProfile": "deploykit.profile.types",
    "LayerRoofline": "deploykit.profile.roofline",
    "MemoryReport": "deploykit.profile.memory",
    "ModelProfile": "deploykit.profile.types",
    "ModelSummary": "deploykit.profile.compare",
    "OPTIMIZERS": "deploykit.profile.memory",
    "PRESETS": "deploykit.profile.devices",
    "ParamReconciliation": "deploykit.profile.onnx_reconcile",
    "ReferenceMemory": "deploykit.profile.memory",
    "RooflineProfile": "deploykit.profile.roofline",
    "TrainingMemory": "deploykit.profile.memory",
    "aggregate_layers": "deploykit.profile.types",
    "compare_models": "deploykit.profile.compare",
    "custom_device": "deploykit.profile.devices",
    "get_device": "deploykit.profile.devices",
    "inference_memory": "deploykit.profile.memory",
    "memory_report": "deploykit.profile.memory",
    "memtracker_reference": "deploykit.profile.memory",
    "profile_model": "deploykit.profile.counter",
    "profile_module": "deploykit.profile.counter",
    "profile_onnx": "deploykit.profile.onnx_graph",
    "reconcile_params": "deploykit.profile.onnx_reconcile",
    "roofline": "deploykit.profile.roofline",
    "summarize_model": "deploykit.profile.compare",
    "training_memory": "deploykit.profile.memory",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
