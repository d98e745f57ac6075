"""Lazy re-exports for package ``__init__`` modules: names import their module on first use.

Keeps ``import deploykit`` (and ``deploykit --help``) free of torch, onnx and friends until they are needed::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"profile_model": "deploykit.profile"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Module-level ``__getattr__``, ``__dir__`` and the sorted ``__all__`` for ``package``.

    A name exported from a submodule of the same name (``deploykit.profile.roofline`` the function, from
    ``deploykit.profile.roofline`` the module) is bound now: importing that submodule anywhere would otherwise set
    the package's attribute to the module itself, and ``from package import name`` would then return the module.
    """
    for name, module in exports.items():
        if module == f"{package}.{name}":
            setattr(sys.modules[package], name, getattr(importlib.import_module(module), name))

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__, sorted(exports)
