"""Model overrides as one object: the input shape, image size, classes and channels a command asked for.

Commands parse them once into a :class:`ModelOverrides` and pass that down (``create_model(name,
**overrides.kwargs())``) instead of four keyword arguments through every signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelOverrides:
    """Overrides of a model's default shape (``None``: the model's own). Values as :func:`create_model` takes."""

    input_shape: Sequence[int] | str | None = None
    image_size: int | Sequence[int] | str | None = None
    num_classes: int | None = None
    in_channels: int | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ModelOverrides:
        """From a dict with (some of) the four keys; unknown keys are an error of the caller."""
        return cls(**dict(values or {}))

    def kwargs(self) -> dict[str, Any]:
        """All four as keyword arguments of :func:`~deploykit.models.create_model` (``None`` where not given)."""
        return {
            "input_shape": self.input_shape,
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
        }

    def given(self) -> dict[str, Any]:
        """Only the overrides that are set (what a manifest or a cache key records)."""
        return {k: v for k, v in self.kwargs().items() if v is not None}

    def __bool__(self) -> bool:
        return bool(self.given())


__all__ = ["ModelOverrides"]
