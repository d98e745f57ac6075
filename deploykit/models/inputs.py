"""What a model's input holds: its element type and, for token ids or indices, the range of valid values.

Most models take floating-point images or signals (the default). A model whose first layer is an
``nn.Embedding`` takes integer ids, which must be ``< num_embeddings``: ``InputSpec("int64", 0, 30522)``
(``--input-dtype int64 --input-range 0,30522``). Without a range, integer inputs draw from
``[0, num_embeddings)`` of the model's smallest embedding table.

Where values matter (a trace on the CPU, export validation), inputs are *representative*: standard normal
floats, or integers uniform in the range, from a ``torch.Generator`` seeded with ``seed`` — never all zeros, so a
data-dependent branch (``if x.sum() > 0``) takes the branch real data would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from deploykit.errors import InvalidInput

#: ``--input-dtype`` values and their torch dtypes.
INPUT_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}


@dataclass(frozen=True)
class InputSpec:
    """The input's element type (a key of :data:`INPUT_DTYPES`), the half-open value range ``[low, high)`` of an
    integer input, and the seed of the representative values."""

    dtype: str = "float32"
    low: int | None = None
    high: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in INPUT_DTYPES:
            raise InvalidInput(f"unknown input dtype {self.dtype!r}; choose from {', '.join(INPUT_DTYPES)}")
        if (self.low is None) != (self.high is None):
            raise InvalidInput("an input range needs both ends, LO,HI")
        if self.low is not None and self.high is not None:
            if not self.is_integer:
                raise InvalidInput("--input-range applies to integer inputs: add --input-dtype int64 (or int32, bool)")
            if self.low >= self.high:
                raise InvalidInput(f"--input-range LO,HI needs LO < HI (values are drawn from [LO, HI)), got "
                                   f"{self.low},{self.high}")
            if self.dtype == "bool" and (self.low < 0 or self.high > 2):
                raise InvalidInput(f"a bool input takes values in [0, 2), got --input-range {self.low},{self.high}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return INPUT_DTYPES[self.dtype]

    @property
    def is_integer(self) -> bool:
        return self.dtype != "float32"

    def resolve(self, model: torch.nn.Module | None) -> InputSpec:
        """This spec with the value range filled in for an integer input without one: ``[0, 2)`` for bool,
        else ``[0, num_embeddings)`` of the model's smallest ``nn.Embedding`` / ``nn.EmbeddingBag``."""
        if not self.is_integer or self.low is not None:
            return self
        if self.dtype == "bool":
            return replace(self, low=0, high=2)
        sizes = [int(m.num_embeddings) for m in (model.modules() if model is not None else ())
                 if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))]
        if not sizes:
            raise InvalidInput(f"{self.dtype} inputs need their range of valid values: give --input-range LO,HI "
                               "(the model has no nn.Embedding to take it from)")
        return replace(self, low=0, high=min(sizes))

    def placeholder(self, shape: Sequence[int], device: str | torch.device = "meta") -> torch.Tensor:
        """A tensor of the right shape and type whose values do not matter (a ``meta`` trace)."""
        return torch.zeros(tuple(shape), dtype=self.torch_dtype, device=device)

    def sample(self, shape: Sequence[int], device: str | torch.device = "cpu") -> torch.Tensor:
        """Representative values: standard normal floats, or integers uniform in ``[low, high)`` (call
        :meth:`resolve` first), drawn on the CPU from a generator seeded with ``seed``."""
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        if not self.is_integer:
            x = torch.randn(tuple(shape), generator=gen)
        else:
            if self.low is None or self.high is None:
                raise InvalidInput(f"{self.dtype} inputs need --input-range LO,HI")
            x = torch.randint(self.low, self.high, tuple(shape), generator=gen).to(self.torch_dtype)
        return x.to(device)

    def describe(self) -> str:
        """``"standard normal float32 (seed 0)"`` / ``"int64 uniform in [0, 1000) (seed 0)"``."""
        if not self.is_integer:
            return f"standard normal float32 (seed {self.seed})"
        return f"{self.dtype} uniform in [{self.low}, {self.high}) (seed {self.seed})"

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "range": [self.low, self.high] if self.low is not None else None,
                "seed": self.seed}


def parse_input_range(text: str | None) -> tuple[int, int] | None:
    """``"0,1000"`` -> ``(0, 1000)``: the half-open range ``[LO, HI)`` of ``--input-range``."""
    if text is None:
        return None
    parts = [p.strip() for p in text.replace(":", ",").split(",")]
    try:
        lo, hi = (int(p) for p in parts)
    except ValueError:
        raise InvalidInput(f"--input-range takes two integers LO,HI (values drawn from [LO, HI)), got {text!r}") from None
    return lo, hi


def input_spec(dtype: str | None = None, value_range: str | tuple[int, int] | None = None, seed: int = 0) -> InputSpec:
    """An :class:`InputSpec` from the command line's ``--input-dtype`` and ``--input-range``."""
    rng = parse_input_range(value_range) if isinstance(value_range, str) else value_range
    return InputSpec(dtype=dtype or "float32", low=rng[0] if rng else None, high=rng[1] if rng else None, seed=seed)
