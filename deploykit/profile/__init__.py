"""Profiling: ``(module, input) -> ModelProfile`` (per-layer costs), memory model, ONNX graph profile, comparison, roofline, device presets."""

from deploykit.profile.compare import (
    CompareOptions,
    Comparison,
    ModelSummary,
    compare_models,
    summarize_model,
)
from deploykit.profile.counter import profile_model, profile_module
from deploykit.profile.devices import PRESETS, DevicePreset, custom_device, get_device
from deploykit.profile.memory import (
    OPTIMIZERS,
    InferenceMemory,
    LayerMemory,
    MemoryReport,
    ReferenceMemory,
    TrainingMemory,
    inference_memory,
    memory_report,
    memtracker_reference,
    training_memory,
)
from deploykit.profile.onnx_graph import profile_onnx
from deploykit.profile.onnx_reconcile import ParamReconciliation, reconcile_params
from deploykit.profile.roofline import LayerRoofline, RooflineProfile, roofline
from deploykit.profile.types import DTYPE_BYTES, LayerProfile, ModelProfile, aggregate_layers

__all__ = [
    "DTYPE_BYTES",
    "OPTIMIZERS",
    "PRESETS",
    "CompareOptions",
    "Comparison",
    "DevicePreset",
    "InferenceMemory",
    "LayerMemory",
    "LayerProfile",
    "LayerRoofline",
    "MemoryReport",
    "ModelProfile",
    "ModelSummary",
    "ParamReconciliation",
    "ReferenceMemory",
    "RooflineProfile",
    "TrainingMemory",
    "aggregate_layers",
    "compare_models",
    "custom_device",
    "get_device",
    "inference_memory",
    "memory_report",
    "memtracker_reference",
    "profile_model",
    "profile_module",
    "profile_onnx",
    "reconcile_params",
    "roofline",
    "summarize_model",
    "training_memory",
]
