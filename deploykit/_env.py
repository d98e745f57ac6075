"""Environment fingerprint recorded with every result: what ran, where, with which libraries.

Nothing here imports an optional backend eagerly; a missing package is recorded as ``None``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any


def package_version(dist: str) -> str | None:
    """Installed version of distribution ``dist`` or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_uuid(props: Any) -> str | None:
    """The ``GPU-...`` (or ``MIG-...``) UUID nvidia-smi knows a device by, from torch's device properties.

    torch's ``uuid`` prints without nvidia-smi's ``GPU-`` prefix. The UUID, unlike an index, names the same GPU
    for torch and nvidia-smi whatever ``CUDA_VISIBLE_DEVICES`` renumbers.
    """
    raw = getattr(props, "uuid", None)
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def _nvidia_smi(uuid: str | None) -> dict[str, str] | None:
    """Clocks, power limit and temperature of the GPU with ``uuid`` as nvidia-smi reports them (read only, never
    set); ``None`` without nvidia-smi or without a UUID (never another GPU's figures)."""
    exe = shutil.which("nvidia-smi")
    if exe is None or not uuid:
        return None
    fields = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu"
    try:
        out = subprocess.run(
            [exe, f"--id={uuid}", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    values = [v.strip() for v in out[0].split(",")]
    return dict(zip(fields.split(","), values, strict=False))


def _deploykit_version() -> str:
    from deploykit import __version__

    return __version__


def environment(device: str | None = None) -> dict[str, Any]:
    """Describe this machine and the library versions; include GPU details when CUDA is available.

    ``device`` ("cpu", "cuda", "cuda:1") selects which GPU is described; by default the current one.
    """
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
        "onnx": package_version("onnx"),
        "onnxruntime": package_version("onnxruntime") or package_version("onnxruntime-gpu"),
        "onnxruntime_gpu": package_version("onnxruntime-gpu"),
        "tensorrt": package_version("tensorrt") or package_version("tensorrt-cu12") or package_version("tensorrt-cu13"),
        "deploykit": _deploykit_version(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": None,
    }
    if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
        dev = torch.device(device if device and str(device).startswith("cuda") else "cuda")
        props = torch.cuda.get_device_properties(dev)
        env["gpu"] = {
            "name": props.name,
            "compute_capability": f"{props.major}.{props.minor}",
            "total_memory_bytes": int(props.total_memory),
            "multiprocessors": int(props.multi_processor_count),
            "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "uuid": gpu_uuid(props),
            "nvidia_smi": _nvidia_smi(gpu_uuid(props)),
        }
    return env


def device_name(env: dict[str, Any]) -> str:
    """The device a result was measured on: the GPU name, or ``cpu:<model>`` without a GPU."""
    gpu = env.get("gpu")
    if gpu:
        return str(gpu["name"])
    return f"cpu:{env.get('cpu', 'unknown')}"
