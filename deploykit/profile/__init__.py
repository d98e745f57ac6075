"""Profiling: ``(module, input) -> ModelProfile`` (per-layer costs), roofline analysis, device presets."""

from deploykit.profile.counter import profile_model, profile_module
from deploykit.profile.devices import PRESETS, DevicePreset, custom_device, get_device
from deploykit.profile.roofline import LayerRoofline, RooflineProfile, roofline
from deploykit.profile.types import DTYPE_BYTES, LayerProfile, ModelProfile, aggregate_layers

__all__ = [
    "DTYPE_BYTES",
    "PRESETS",
    "DevicePreset",
    "LayerProfile",
    "LayerRoofline",
    "ModelProfile",
    "RooflineProfile",
    "aggregate_layers",
    "custom_device",
    "get_device",
    "profile_model",
    "profile_module",
    "roofline",
]
