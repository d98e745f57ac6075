"""Run a forward pass and, when it fails on a shape, say which layer broke and with which input shapes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deploykit.errors import ShapeError


def tensor_shapes(obj: Any) -> list[tuple[int, ...]]:
    """Shapes of the tensors in ``obj`` (a tensor or nested lists/tuples/dicts of them), in order."""
    if isinstance(obj, torch.Tensor):
        return [tuple(obj.shape)]
    if isinstance(obj, (list, tuple)):
        return [s for o in obj for s in tensor_shapes(o)]
    if isinstance(obj, dict):
        return [s for o in obj.values() for s in tensor_shapes(o)]
    return []


def fmt_shape(shape: tuple[int, ...]) -> str:
    """``(1, 3, 224, 224)`` -> ``"1x3x224x224"``."""
    return "x".join(str(d) for d in shape)


def shape_error(
    model_name: str,
    input_shape: tuple[int, ...],
    where: tuple[str, nn.Module, list[tuple[int, ...]]] | None,
    exc: BaseException,
) -> ShapeError:
    """Build the one-line :class:`ShapeError` for a forward pass that failed inside layer ``where``.

    ``where`` is ``(module path, module, input shapes)`` of the innermost module running when ``exc`` was
    raised, or ``None`` when the failure happened outside any module.
    """
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    at = ""
    if where is not None:
        path, mod, shapes = where
        got = ", ".join(fmt_shape(s) for s in shapes) or "no tensor"
        at = f": layer {path or '(root)'} ({type(mod).__name__}) got input {got}"
    return ShapeError(f"{model_name} cannot take input {fmt_shape(input_shape)}{at}: {first}")


def run_with_layer_context(model: nn.Module, x: torch.Tensor, model_name: str = "model") -> Any:
    """``model(x)`` under ``no_grad``; a failure inside a layer becomes :class:`ShapeError` naming the layer.

    The message carries the innermost module path, its class, the input shapes it received and the first line
    of PyTorch's own message, e.g. ``vgg16 cannot take input 1x3x16x16: layer features.30 (MaxPool2d) got
    input 1x512x1x1: Output size is too small``.
    """
    stack: list[tuple[str, nn.Module, list[tuple[int, ...]]]] = []
    names = {id(m): n for n, m in model.named_modules()}

    def pre(mod: nn.Module, args: Any) -> None:
        stack.append((names.get(id(mod), "?"), mod, tensor_shapes(args)))

    def post(mod: nn.Module, args: Any, out: Any) -> None:
        stack.pop()

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles += [m.register_forward_hook(post) for m in model.modules()]
    try:
        with torch.no_grad():
            return model(x)
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError) as exc:
        where = stack[-1] if stack else None
        raise shape_error(model_name, tuple(x.shape), where, exc) from None
    finally:
        for h in handles:
            h.remove()
