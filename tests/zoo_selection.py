"""Which registered models the registry-wide sweeps (export, MemTracker, reference counters) run.

The default run — CI and the README's test command — takes one model per family, the cheapest to check on two
CPU cores, plus the torchvision ``resnet18`` and ``mobilenet_v3_large`` (BatchNorm folding, depthwise and
squeeze-excite blocks). ``pytest --full-zoo`` (the nightly workflow) takes every registered model; the other
members carry the ``full_zoo`` marker and are deselected without the option.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from deploykit.models import get_model_spec, list_models

#: One per family (``ModelSpec.family``); both forms of the cheap families (the book's and the classic one).
PER_FAMILY: frozenset[str] = frozenset(
    {
        "d2l-alexnet",  # alexnet
        "d2l-densenet",  # densenet
        "d2l-googlenet",  # googlenet
        "lenet",
        "d2l-lenet",  # lenet
        "mnist1d-cnn",  # mnist1d
        "mobilenet_v3_large",  # mobilenet
        "nin",
        "d2l-nin",  # nin
        "resnet18",  # resnet
        "d2l-vgg11",  # vgg
    }
)


def zoo_params(names: Iterable[str] | None = None, *, per_family: frozenset[str] = PER_FAMILY) -> list[object]:
    """``pytest.param`` per registered model (or per name in ``names``); those outside ``per_family`` are marked
    ``full_zoo`` and run only with ``--full-zoo``."""
    chosen = list(names) if names is not None else list_models()
    return [n if n in per_family else pytest.param(n, marks=pytest.mark.full_zoo) for n in chosen]


def families_covered(per_family: frozenset[str] = PER_FAMILY) -> set[str]:
    """The families the default selection covers (a test checks that this is every family)."""
    return {get_model_spec(n).family for n in per_family}
