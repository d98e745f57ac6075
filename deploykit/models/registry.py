"""Model registry: ``name -> (nn.Module, ModelSpec)``.

Builders register with :func:`register_model`; a duplicate name raises. :func:`create_model` builds a model
(by default on the ``meta`` device, where construction and shape propagation allocate no memory) and returns
it with the :class:`ModelSpec` that describes the input it takes. A name of the form ``package.module:Attr``
loads the user's own ``nn.Module`` class or factory by import path.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deploykit.errors import BuildError, InvalidInput, ModelNotFound
from deploykit.models.shapes import run_with_layer_context

if TYPE_CHECKING:
    from deploykit.models.weights import WeightsRecord

#: Overrides a builder can honour. ``image_size`` and ``input_shape`` change the sample shape.
OVERRIDES = ("num_classes", "in_channels", "image_size", "input_shape")


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is and what it takes.

    ``input_shape`` is the shape of one sample (no batch dimension), e.g. ``(3, 224, 224)`` or ``(1, 40)``.
    ``overridable`` names the :data:`OVERRIDES` the builder honours. ``weights`` records the weights loaded by
    :func:`create_model` (``None``: freshly initialised).
    """

    name: str
    family: str
    source: str
    input_shape: tuple[int, ...]
    num_classes: int
    description: str = ""
    overridable: frozenset[str] = field(default_factory=lambda: frozenset({"num_classes", "image_size"}))
    weights: WeightsRecord | None = None

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    def batch_shape(self, batch_size: int) -> tuple[int, ...]:
        """The full input shape for ``batch_size`` samples."""
        return (batch_size, *self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "description": self.description,
            **({"weights": self.weights.to_dict()} if self.weights is not None else {}),
        }


#: A builder takes the (possibly overridden) spec and returns an ``nn.Module`` built on the current default
#: device (``create_model`` sets it with ``torch.device(...)``).
Builder = Callable[[ModelSpec], nn.Module]

_REGISTRY: dict[str, tuple[ModelSpec, Builder]] = {}


def register_model(spec: ModelSpec) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``spec.name``. Registering a name twice raises ``ValueError``."""

    def deco(builder: Builder) -> Builder:
        if spec.name in _REGISTRY:
            raise ValueError(f"model {spec.name!r} is already registered")
        _REGISTRY[spec.name] = (spec, builder)
        return builder

    return deco


def _ensure_zoo_loaded() -> None:
    # The families register themselves on import; importing the package is enough.
    import deploykit.models.zoo  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching the shell-style ``pattern`` (``"res*"``, ``"d2l-*"``), sorted."""
    _ensure_zoo_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def _suggest(name: str) -> str:
    if len(name) > 100:  # no registered name is this long; echoing it whole would bury the message
        return (f"unknown model {name[:60]!r}... ({len(name)} characters); "
                f"(`deploykit list` shows all {len(_REGISTRY)} models)")
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    if not close:
        close = [n for n in sorted(_REGISTRY) if name.lower() in n][:3]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"unknown model {name!r}; {hint}(`deploykit list` shows all {len(_REGISTRY)} models)"


def get_model_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; raises :class:`ModelNotFound` with close names suggested."""
    _ensure_zoo_loaded()
    if name not in _REGISTRY:
        raise ModelNotFound(_suggest(name))
    return _REGISTRY[name][0]


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"3x224x224"`` / ``"3,224,224"`` / ``(3, 224, 224)`` -> ``(3, 224, 224)``; positive ints only."""
    if isinstance(text, str):
        parts = text.lower().replace(",", "x").replace("×", "x").split("x")
        try:
            dims = tuple(int(p) for p in parts if p.strip())
        except ValueError:
            raise InvalidInput(f"bad shape {text!r}: expected sizes like 3x224x224") from None
    else:
        dims = tuple(int(d) for d in text)
    if not dims or any(d <= 0 for d in dims):
        raise InvalidInput(f"bad shape {text!r}: every size must be a positive integer")
    return dims


def _apply_overrides(spec: ModelSpec, overrides: dict[str, Any]) -> ModelSpec:
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - set(OVERRIDES)
    if unknown:
        raise InvalidInput(f"unknown override(s) {sorted(unknown)}; allowed: {list(OVERRIDES)}")
    refused = sorted(k for k in given if k not in spec.overridable)
    if refused:
        can = sorted(spec.overridable) or ["none"]
        raise InvalidInput(f"{spec.name} does not take {', '.join(refused)}; it takes: {', '.join(can)}")
    shape = spec.input_shape
    if "input_shape" in given:
        shape = parse_shape(given["input_shape"])
        if len(shape) != len(spec.input_shape):
            raise InvalidInput(
                f"{spec.name} takes {len(spec.input_shape)}-D samples like "
                f"{'x'.join(map(str, spec.input_shape))}; got {'x'.join(map(str, shape))}"
            )
    if "image_size" in given:
        size = given["image_size"]
        spatial = parse_shape(size) if not isinstance(size, int) else (size,)
        if len(spatial) == 1:  # one number: a square image, or a 1-D signal length
            spatial = spatial * (len(shape) - 1)
        if len(spatial) != len(shape) - 1 or any(s <= 0 for s in spatial):
            raise InvalidInput(f"bad image size {size!r} for {spec.name}")
        shape = (shape[0], *spatial)
    if "in_channels" in given:
        if int(given["in_channels"]) <= 0:
            raise InvalidInput("in_channels must be positive")
        shape = (int(given["in_channels"]), *shape[1:])
    num_classes = spec.num_classes
    if "num_classes" in given:
        num_classes = int(given["num_classes"])
        if num_classes <= 0:
            raise InvalidInput("num_classes must be positive")
    return replace(spec, input_shape=shape, num_classes=num_classes)


def _load_file(file: str, path: str) -> Any:
    """Import a Python file given by path (``nets/mynet.py``) as a module; its folder goes on ``sys.path`` so
    that it can import its neighbours."""
    import importlib.util

    p = Path(file).expanduser().resolve()
    if not p.is_file():
        raise InvalidInput(f"cannot import {path!r}: file not found: {file}")
    import hashlib

    name = f"deploykit_user_{p.stem}_{hashlib.sha256(str(p).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    if str(p.parent) not in sys.path:
        sys.path.insert(0, str(p.parent))
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot import {path!r}: {file} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any import-time failure in user code is reported, not raised
        del sys.modules[name]
        raise InvalidInput(f"cannot import {file!r} for {path!r}: {type(exc).__name__}: {exc}") from None
    return module


def _load_import_path(path: str, overrides: dict[str, Any]) -> tuple[ModelSpec, Builder]:
    """Resolve ``package.module:Attr`` (a class or factory) from the current directory or sys.path."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InvalidInput(f"bad import path {path!r}: expected package.module:ClassOrFactory")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module_name.endswith(".py"):
        module = _load_file(module_name, path)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise InvalidInput(
                f"cannot import {module_name!r} for {path!r}: {exc} (the current folder {os.getcwd()} is on the "
                f"path; for a module elsewhere set PYTHONPATH=DIR, or give the file: path/to/file.py:{attr})"
            ) from None
        except Exception as exc:  # any import-time failure in user code is reported, not raised
            raise InvalidInput(f"cannot import {module_name!r} for {path!r}: {type(exc).__name__}: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise InvalidInput(f"module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise InvalidInput(f"{path!r} is not a class or factory")
    if overrides.get("input_shape") is None:
        raise InvalidInput(f"{path!r} is a user model: give its per-sample input shape, e.g. --input-shape 3x32x32")
    shape = parse_shape(overrides["input_shape"])
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes_classes = "num_classes" in params
    spec = ModelSpec(
        name=path,
        family="user",
        source=f"import:{path}",
        input_shape=shape,
        num_classes=int(overrides.get("num_classes") or 0),
        description=(inspect.getdoc(target) or "").split("\n")[0],
        overridable=frozenset({"input_shape", "image_size", "in_channels"} | ({"num_classes"} if takes_classes else set())),
    )

    def build(s: ModelSpec) -> nn.Module:
        kwargs = {"num_classes": s.num_classes} if takes_classes and s.num_classes else {}
        try:
            model = target(**kwargs)
        except Exception as exc:
            raise BuildError(f"building {path!r} failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(model, nn.Module):
            raise InvalidInput(f"{path!r} returned {type(model).__name__}, not an nn.Module")
        return model

    return spec, build


def _has_lazy(model: nn.Module) -> bool:
    from torch.nn.modules.lazy import LazyModuleMixin

    return any(isinstance(m, LazyModuleMixin) for m in model.modules())


def create_model(
    name: str,
    *,
    device: str | torch.device = "meta",
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
    input_shape: Sequence[int] | str | None = None,
    weights: str | os.PathLike[str] | None = None,
    strict_weights: bool = True,
) -> tuple[nn.Module, ModelSpec]:
    """Build registered model ``name`` (or ``package.module:Attr``) in eval mode on ``device``.

    Returns ``(model, spec)``; ``spec`` reflects the overrides. Without ``weights`` the weights are freshly
    initialised (on ``"meta"`` they do not exist at all, which is all profiling needs). ``weights`` is a
    safetensors or PyTorch file, or a torchvision weight name (``DEFAULT``, ``IMAGENET1K_V1``) for the
    torchvision models; it is loaded after the model is built (see :func:`deploykit.models.weights.load_weights`,
    ``strict_weights`` is its ``strict``) and recorded in ``spec.weights``. On ``"meta"`` the weights are read and
    checked against the model (keys, shapes) but not materialised.
    Lazy layers (the d2l models use ``nn.LazyConv2d`` as the book does) are materialised with one forward pass
    on a batch of one, so an impossible input shape raises :class:`~deploykit.errors.ShapeError` here.

    >>> model, spec = create_model("resnet18", num_classes=10)
    >>> spec.input_shape, spec.num_classes
    ((3, 224, 224), 10)
    """
    overrides = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size, "input_shape": input_shape}
    if ":" in name:
        spec, builder = _load_import_path(name, overrides)
        spec = _apply_overrides(spec, {k: v for k, v in overrides.items() if k != "input_shape" and k in spec.overridable})
    else:
        base = get_model_spec(name)
        spec = _apply_overrides(base, overrides)
        builder = _REGISTRY[name][1]
    with torch.device(device):
        model = builder(spec).eval()  # eval first: BatchNorm in training mode rejects the batch of one below
        if _has_lazy(model):
            run_with_layer_context(model, torch.zeros(spec.batch_shape(1)), spec.name)
    if weights is not None:
        from deploykit.models.weights import load_weights

        tv_prefix = "torchvision.models."
        record = load_weights(
            model,
            weights,
            strict=strict_weights,
            torchvision_model=spec.source[len(tv_prefix):] if spec.source.startswith(tv_prefix) else None,
            model_name=spec.name,
        )
        spec = replace(spec, weights=record)
    return model.eval(), spec
