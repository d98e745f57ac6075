"""The optimizers and the training step the memory model and its reference run: names, state buffers, one step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_flatten

from deploykit.errors import InvalidInput

#: Optimizers the training model builds, with the hyper-parameters that decide their memory.
OPTIMIZERS: Mapping[str, str] = {
    "sgd": "torch.optim.SGD(lr=0.01)",
    "sgd-momentum": "torch.optim.SGD(lr=0.01, momentum=0.9)",
    "adam": "torch.optim.Adam(lr=1e-3)",
    "adamw": "torch.optim.AdamW(lr=1e-3)",
}

#: Per-parameter state tensors each optimizer keeps on the device.
OPTIMIZER_STATE_BUFFERS: Mapping[str, int] = {"sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}

def check_optimizer(name: str | None, *, allow_none: bool = False) -> None:
    """Raise :class:`InvalidInput` unless ``name`` is a key of :data:`OPTIMIZERS` (or ``None`` where allowed:
    inference only)."""
    if name is None and allow_none:
        return
    if name not in OPTIMIZERS:
        choices = ", ".join(OPTIMIZERS) + (" or none" if allow_none else "")
        raise InvalidInput(f"unknown optimizer {name!r}; choose from {choices}")

def _first_tensor(out: Any) -> torch.Tensor:
    for t in tree_flatten(out)[0]:
        if isinstance(t, torch.Tensor):
            return t
    raise InvalidInput("the model returned no tensor")

def make_optimizer(name: str, params: Any, *, foreach: bool | None = None) -> torch.optim.Optimizer:
    """The optimizer of :data:`OPTIMIZERS` called ``name`` over ``params`` (:class:`InvalidInput` when there are
    none: a model without parameters has no training step)."""
    check_optimizer(name)
    params = list(params)
    if not params:
        raise InvalidInput(
            "the model has no parameters: there is no training step to model (use --optimizer none for inference "
            "memory only)"
        )
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, foreach=foreach)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=foreach)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    return torch.optim.AdamW(params, lr=1e-3, foreach=foreach)

def training_loss(out: Any, target: torch.Tensor) -> torch.Tensor:
    """The loss the training model uses: cross entropy for ``(N, classes)`` outputs, else ``out.sum()``."""
    y = _first_tensor(out)
    if y.dim() == 2 and y.is_floating_point():
        return F.cross_entropy(y, target)
    return y.sum()

def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor) -> None:
    """One training step as modelled: forward, loss, backward, ``step()``, ``zero_grad(set_to_none=True)``."""
    loss = training_loss(model(x), target)
    loss.backward()
    del loss
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
