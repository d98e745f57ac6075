"""The one protocol every backend implements (after Polygraphy's ``BaseRunner``).

A runner is a context manager: ``activate()`` acquires the device, compiles or deserializes; ``infer(x)``
takes a tensor on ``runner.device`` and returns the output tensor on the same device, without host copies;
``deactivate()`` releases what ``activate`` took. Nothing touches the GPU before ``activate``. Timing is not
the runner's job (see :mod:`deploykit.bench`).
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Any

import torch


class Runner(abc.ABC):
    """Base class for all backends.

    Subclasses set ``name`` (the backend name used on the command line, e.g. ``"ort"``) and implement
    ``_activate``, ``infer`` and ``_deactivate``. ``info`` collects facts worth recording with a result
    (provider, compile time in seconds, whether CUDA graphs are used, ...).
    """

    name: str = "runner"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.info: dict[str, Any] = {}
        self.is_active = False

    def activate(self) -> None:
        if self.is_active:
            return
        self._activate()
        self.is_active = True

    def deactivate(self) -> None:
        if not self.is_active:
            return
        try:
            self._deactivate()
        finally:
            self.is_active = False

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Run one batch. ``x`` lives on ``self.device``; so does the result."""

    def _deactivate(self) -> None:
        return None

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()
