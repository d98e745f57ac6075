"""Model zoo: the classic CNNs in ImageNet form, in *Dive into Deep Learning* chapter-7 form, and user models."""

from deploykit.models.overrides import ModelOverrides
from deploykit.models.registry import (
    OVERRIDES,
    ModelSpec,
    create_model,
    get_model_spec,
    list_models,
    parse_shape,
    register_model,
)
from deploykit.models.shapes import run_with_layer_context
from deploykit.models.weights import WeightsRecord, load_weights, save_weights

__all__ = [
    "OVERRIDES",
    "ModelOverrides",
    "ModelSpec",
    "WeightsRecord",
    "create_model",
    "get_model_spec",
    "list_models",
    "load_weights",
    "parse_shape",
    "register_model",
    "run_with_layer_context",
    "save_weights",
]
