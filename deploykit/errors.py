"""The exceptions deploykit raises on purpose.

Every error a user can cause (a bad name, an impossible shape, a missing backend, a corrupt file) is a
:class:`DeploykitError`. The CLI prints its message as one line and exits with its ``exit_code``; any other
exception is a bug in deploykit.
"""

from __future__ import annotations

import re


class DeploykitError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InvalidInput(DeploykitError):
    """A bad argument or option: malformed shape, unknown dtype or device preset, bad import path."""

    exit_code = 2


class ModelNotFound(InvalidInput):
    """No registered model has this name; the message suggests the closest names."""


class ShapeError(InvalidInput):
    """The model cannot take this input shape; the message names the layer that fails and why."""


class BuildError(InvalidInput):
    """The user's model class or factory raised while building the model (on the device it was built on)."""


class BackendUnavailable(DeploykitError):
    """A backend or device is missing (no CUDA, no TensorRT, no onnxruntime-gpu); says what to install."""

    exit_code = 3


class ExportError(DeploykitError):
    """Exporting or building an artifact failed."""


class ValidationError(DeploykitError):
    """An artifact's outputs disagree with eager PyTorch beyond the tolerance."""


class ArtifactError(DeploykitError):
    """A file on disk is missing, corrupt, or does not match this machine (GPU, library version, schema), or
    an output file cannot be written."""

    exit_code = 2


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``"TypeName: first line of the message"`` (colour codes removed, cut at ``limit`` characters): how a
    third-party exception is quoted inside a one-line deploykit error."""
    text = _ANSI.sub("", str(exc)).strip()
    line = text.splitlines()[0].strip() if text else ""
    line = line if len(line) <= limit else line[: limit - 3] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
