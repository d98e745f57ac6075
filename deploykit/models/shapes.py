"""Run a forward pass and, when it fails on a shape, say which layer broke and with which input shapes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deploykit.errors import ShapeError


def _shapes(obj: Any) -> list[tuple[int, ...]]:
    if isinstance(obj, torch.Tensor):
        return [tuple(obj.shape)]
    if isinstance(obj, (list, tuple)):
        return [s for o in obj for s in _shapes(o)]
    if isinstance(obj, dict):
        return [s for o in obj.values() for s in _shapes(o)]
    return []


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def run_with_layer_context(model: nn.Module, x: torch.Tensor, model_name: str = "model") -> Any:
    """``model(x)`` under ``no_grad``; a failure inside a layer becomes :class:`ShapeError` naming the layer.

    The message carries the innermost module path, its class, the input shapes it received and the first line
    of PyTorch's own message, e.g. ``vgg16 cannot take input 1x3x16x16: layer features.30 (MaxPool2d) got
    input 1x512x1x1: Output size is too small``.
    """
    stack: list[tuple[str, nn.Module, list[tuple[int, ...]]]] = []
    failed: list[tuple[str, nn.Module, list[tuple[int, ...]]]] = []
    names = {id(m): n for n, m in model.named_modules()}

    def pre(mod: nn.Module, args: Any) -> None:
        stack.append((names.get(id(mod), "?"), mod, _shapes(args)))

    def post(mod: nn.Module, args: Any, out: Any) -> None:
        stack.pop()

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles += [m.register_forward_hook(post) for m in model.modules()]
    try:
        with torch.no_grad():
            return model(x)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        failed = stack[-1:] if stack else []
        where = ""
        if failed:
            path, mod, shapes = failed[0]
            got = ", ".join(fmt_shape(s) for s in shapes) or "no tensor"
            where = f": layer {path or '(root)'} ({type(mod).__name__}) got input {got}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ShapeError(f"{model_name} cannot take input {fmt_shape(tuple(x.shape))}{where}: {first}") from None
    finally:
        for h in handles:
            h.remove()
