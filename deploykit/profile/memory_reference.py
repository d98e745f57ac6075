"""The reference the memory model is tested against: PyTorch's ``MemTracker`` on real tensors (CPU or CUDA)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from deploykit.errors import BackendUnavailable, InvalidInput
from deploykit.models.registry import create_model
from deploykit.precision import Precision
from deploykit.profile.optimizers import make_optimizer, train_step


@dataclass(frozen=True)
class ReferenceMemory:
    """What ``torch.distributed._tools.mem_tracker.MemTracker`` measures on real tensors (CPU or CUDA).

    MemTracker follows tensor storages like this module does, on real kernels: it is the ground truth the
    meta-device model is tested against. On CUDA it rounds every storage up to 512 bytes.

    Attributes:
        inference_peak_bytes: peak of the forward minus parameters, buffers and the input.
        training_resident_bytes: parameters, buffers, optimizer state, input and targets before the step.
        training_peak_bytes: peak of everything during one steady-state step.
        training_peak_breakdown: MemTracker's categories at that peak.
    """

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    device: str
    optimizer: str | None
    foreach: bool | None
    inference_peak_bytes: int
    training_resident_bytes: int
    training_peak_bytes: int
    training_peak_breakdown: Mapping[str, int]

    @property
    def training_peak_above_resident_bytes(self) -> int:
        return self.training_peak_bytes - self.training_resident_bytes

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["input_shape"] = list(self.input_shape)
        d["training_peak_breakdown"] = dict(self.training_peak_breakdown)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceMemory:
        kw = {f.name: d[f.name] for f in fields(cls)}
        kw["input_shape"] = tuple(d["input_shape"])
        kw["training_peak_breakdown"] = dict(d["training_peak_breakdown"])
        return cls(**kw)

def _memtracker() -> Any:
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError as exc:  # torch built without distributed support
        raise BackendUnavailable(f"torch.distributed._tools.mem_tracker is not available: {exc}") from None
    return MemTracker

def _snapshot(tracker: Any, kind: str, device: torch.device) -> dict[str, int]:
    snap = tracker.get_tracker_snapshot(kind).get(device, {})
    return {getattr(k, "value", str(k)): int(v) for k, v in snap.items()}

_TORCH_DTYPES = Precision.names(Precision.FP32, Precision.TF32, Precision.FP16, Precision.BF16)

def memtracker_reference(
    model: str,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    device: str = "cpu",
    optimizer: str | None = "adam",
    foreach: bool | None = None,
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> ReferenceMemory:
    """Measure inference and training-step memory with PyTorch's ``MemTracker`` on a real model.

    The model is built with real (random) weights on ``device``; the inference forward runs under
    ``no_grad`` in eval mode; the training step is the one :func:`training_memory` models (a first untracked
    step creates the optimizer state, the second is measured). ``optimizer=None`` skips training (the
    training fields are then 0). This allocates real memory and takes real time: vgg19 with Adam needs
    about 3 GB on the CPU.
    """

    MemTracker = _memtracker()
    if dtype not in _TORCH_DTYPES:
        raise InvalidInput(f"MemTracker reference supports {', '.join(_TORCH_DTYPES)}, not {dtype!r}")
    torch_dtype = Precision(dtype).torch_dtype
    dev = torch.device(device)
    module, spec = create_model(
        model, device=dev, num_classes=num_classes, in_channels=in_channels,
        image_size=image_size, input_shape=input_shape,
    )
    module = module.to(torch_dtype)
    x = torch.randn(spec.batch_shape(batch_size), device=dev, dtype=torch_dtype)
    tracker = MemTracker()
    tracker.track_external(module, x)
    with torch.no_grad(), tracker:
        out = module(x)
        del out
    peak = _snapshot(tracker, "peak", dev)
    inference = peak.get("Total", 0) - peak.get("Parameter", 0) - peak.get("Buffer", 0) - peak.get("Other", 0)
    del tracker
    resident = train_peak = 0
    breakdown: dict[str, int] = {}
    if optimizer is not None:
        module.train()
        target = torch.zeros(batch_size, dtype=torch.long, device=dev)
        opt = make_optimizer(optimizer, module.parameters(), foreach=foreach)
        train_step(module, opt, x, target)
        tracker = MemTracker()
        tracker.track_external(module, opt, x, target)
        resident = _snapshot(tracker, "current", dev).get("Total", 0)
        with tracker:
            train_step(module, opt, x, target)
        breakdown = _snapshot(tracker, "peak", dev)
        train_peak = breakdown.pop("Total", 0)
        del tracker, opt
    return ReferenceMemory(
        model=spec.name,
        input_shape=tuple(x.shape),
        dtype=dtype,
        device=str(dev),
        optimizer=optimizer,
        foreach=foreach,
        inference_peak_bytes=inference,
        training_resident_bytes=resident,
        training_peak_bytes=train_peak,
        training_peak_breakdown=breakdown,
    )
