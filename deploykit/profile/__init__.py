"""Profiling: ``(module, input) -> ModelProfile`` (per-layer costs), memory model, ONNX graph profile, roofline, device presets."""

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
from deploykit.profile.onnx_graph import ParamReconciliation, profile_onnx, reconcile_params
from deploykit.profile.roofline import LayerRoofline, RooflineProfile, roofline
from deploykit.profile.types import DTYPE_BYTES, LayerProfile, ModelProfile, aggregate_layers

__all__ = [
    "DTYPE_BYTES",
    "OPTIMIZERS",
    "PRESETS",
    "DevicePreset",
    "InferenceMemory",
    "LayerMemory",
    "LayerProfile",
    "LayerRoofline",
    "MemoryReport",
    "ModelProfile",
    "ParamReconciliation",
    "ReferenceMemory",
    "RooflineProfile",
    "TrainingMemory",
    "aggregate_layers",
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
    "training_memory",
]
