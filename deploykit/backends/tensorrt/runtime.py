"""TensorRT itself and the GPU: lazy import, version, availability, and the CUDA seams the executor uses.

``tensorrt`` and torch are imported inside the functions: importing this module needs neither. ``device_guard``,
``new_stream``, ``current_stream`` and ``current_gpu`` are the only CUDA calls of the TensorRT code (builder,
executor, runner, calibrator); the fake-TensorRT tests replace them here to drive the same code on a CPU.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Any

from deploykit.errors import BackendUnavailable, InvalidInput

INSTALL_HINT = "pip install 'deploykit[tensorrt]'"

#: Oldest TensorRT this module is written for (the name-based tensor API, ``execute_async_v3``).
MIN_TENSORRT = (10, 0)

def tensorrt_status() -> str | None:
    """``None`` when TensorRT and a CUDA GPU are usable here, else a one-line reason saying what is missing."""
    if importlib.util.find_spec("tensorrt") is None:
        return f"TensorRT is not installed ({INSTALL_HINT})"
    import torch

    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA GPU and none is available"
    return None

def import_tensorrt() -> Any:
    """``import tensorrt``, or :class:`BackendUnavailable` naming the install command."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(f"TensorRT is not installed ({INSTALL_HINT})") from None
    except OSError as exc:  # the wheel is there but libnvinfer cannot be loaded
        raise BackendUnavailable(f"TensorRT is installed but cannot be loaded: {exc}") from None
    return trt

def parse_trt_version(text: str) -> tuple[int, int, int]:
    """``"10.13.0.35"`` -> ``(10, 13, 0)``. The branches of this module gate on these numbers, never on
    ``hasattr`` (``trt.__version__`` exists in every TensorRT Python package)."""
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if not m:
        raise InvalidInput(f"cannot read a TensorRT version from {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)

@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for or loaded on."""

    name: str
    compute_capability: str
    cuda: str | None
    index: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.compute_capability, "cuda": self.cuda, "index": self.index}

def current_gpu(device: str | Any = "cuda") -> GpuInfo:
    """Name and compute capability of ``device`` (via torch); :class:`BackendUnavailable` without CUDA."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        raise InvalidInput(f"TensorRT runs on a CUDA device, not {dev}")
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs a CUDA GPU and none is available")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return GpuInfo(props.name, f"{props.major}.{props.minor}", torch.version.cuda, int(index), f"cuda:{index}")

def device_guard(device: Any) -> Any:
    """``torch.cuda.device(device)``: TensorRT builds and deserializes on the current CUDA device.

    This and the two stream helpers below are the only CUDA calls of the executor; the fake-TensorRT tests
    replace them to drive the same code on a CPU-only machine.
    """
    import torch

    return torch.cuda.device(device)

def new_stream(device: Any) -> Any:
    """A new (non-default) ``torch.cuda.Stream`` on ``device``."""
    import torch

    return torch.cuda.Stream(device)

def current_stream(device: Any) -> Any:
    """torch's current stream on ``device`` (the caller's stream)."""
    import torch

    return torch.cuda.current_stream(device)
