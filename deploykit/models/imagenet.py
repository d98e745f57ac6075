"""ImageNet classifiers from torchvision (3x224x224, 1000 classes), built without downloading weights.

torchvision's constructors take ``num_classes``; every model here ends in adaptive average pooling, so other
image sizes work down to the size where a pooling window no longer fits (the profiler names that layer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torchvision.models as tvm
from torch import nn

from deploykit.models.registry import ModelSpec, register_model

_IMAGENET = (3, 224, 224)

_FAMILIES: dict[str, tuple[str, ...]] = {
    "alexnet": ("alexnet",),
    "vgg": ("vgg11", "vgg13", "vgg16", "vgg19"),
    "googlenet": ("googlenet",),
    "resnet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    "densenet": ("densenet121", "densenet161", "densenet169", "densenet201"),
    "mobilenet": ("mobilenet_v3_large",),
}

# Arguments that make the deployed form explicit and silence torchvision's init warnings: GoogLeNet without
# its two auxiliary classifiers (they only run in training), with torchvision's truncated-normal init.
_EXTRA: dict[str, dict[str, Any]] = {"googlenet": {"aux_logits": False, "init_weights": True}}


def _make_builder(name: str) -> Callable[[ModelSpec], nn.Module]:
    ctor = getattr(tvm, name)

    def build(spec: ModelSpec) -> nn.Module:
        return ctor(weights=None, num_classes=spec.num_classes, **_EXTRA.get(name, {}))

    build.__name__ = f"build_{name}"
    return build


for _family, _names in _FAMILIES.items():
    for _name in _names:
        register_model(
            ModelSpec(
                name=_name,
                family=_family,
                source=f"torchvision.models.{_name}",
                input_shape=_IMAGENET,
                num_classes=1000,
                description=f"torchvision {_name}, ImageNet form, random init (no weights downloaded)",
            )
        )(_make_builder(_name))
