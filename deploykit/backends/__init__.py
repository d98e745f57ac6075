"""Backends: an artifact or module -> a :class:`Runner` with ``activate`` / ``infer`` / ``deactivate``."""

from deploykit.backends.base import Runner

__all__ = ["Runner"]
