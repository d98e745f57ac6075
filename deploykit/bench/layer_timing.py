"""Measured per-layer time: kernel time attributed to the profiler's rows with ``torch.profiler``.

Each row of :func:`deploykit.profile.profile_module` runs inside ``torch.profiler.record_function``; the
profiler correlates every CUDA kernel with the host op that launched it. :func:`attribute_time` walks the
recorded events and adds each kernel's duration to the innermost row label enclosing its launching op: the
**GPU kernel time of each row**, averaged over the iterations. (``key_averages()`` is not used: in torch 2.14 it
groups by name *and* device type, so a label yields a CPU row and a ``gpu_user_annotation`` row -- the GPU span
from the first to the last kernel, launch gaps included -- and a dict keyed by name keeps whichever comes last.)
Launch gaps between kernels are in no row: the sum of the rows is compared with the end-to-end forward latency
timed with CUDA events (without the profiler), and the difference is reported as overhead. On the CPU the same
walk attributes each op's self CPU time (used by the tests; the CLI measures on CUDA only).

With the device's measured ceilings (:mod:`deploykit.bench.ceilings`), each row gets achieved FLOP/s and
achieved bandwidth (``flops / time``, ``traffic_bytes / time``) and their fractions of the ceilings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deploykit.backends.math_mode import torch_math
from deploykit.errors import BackendUnavailable, InvalidInput
from deploykit.precision import Precision
from deploykit.profile.types import ModelProfile

_TORCH_DTYPES = Precision.names(Precision.FP32, Precision.TF32, Precision.FP16, Precision.BF16)


@dataclass(frozen=True)
class LayerTimes:
    """Measured time of each profile row (milliseconds per forward pass), and the end-to-end latency."""

    model: str
    device_name: str
    dtype: str
    batch_size: int
    method: str
    iterations: int
    layer_ms: Mapping[str, float]
    end_to_end_ms: float
    unattributed_rows: tuple[str, ...] = field(default=())

    @property
    def layers_total_ms(self) -> float:
        return sum(self.layer_ms.values())

    @property
    def overhead_ms(self) -> float:
        """End-to-end latency not spent in any row's kernels (launch gaps, host overhead)."""
        return self.end_to_end_ms - self.layers_total_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "device_name": self.device_name, "dtype": self.dtype, "batch_size": self.batch_size,
            "method": self.method, "iterations": self.iterations, "end_to_end_ms": self.end_to_end_ms,
            "layers_total_ms": self.layers_total_ms, "layer_ms": dict(self.layer_ms),
            "unattributed_rows": list(self.unattributed_rows),
        }


@dataclass(frozen=True)
class AchievedLayer:
    """Achieved throughput of one row against measured ceilings (fractions are 0..1, may exceed 1 when a
    layer's working set stays in L2 and beats the DRAM copy bandwidth)."""

    name: str
    time_ms: float
    achieved_tflops: float
    achieved_gbs: float
    flops_fraction: float | None
    bandwidth_fraction: float | None


def achieved(profile: ModelProfile, times: LayerTimes, ceilings: Any | None) -> tuple[AchievedLayer, ...]:
    """Per row: achieved TFLOP/s and GB/s from the profile's counts and the measured time, and their fractions
    of the ceilings (matmul ceiling of the profile's precision for rows with MACs; copy bandwidth)."""
    out = []
    for row in profile.layers:
        ms = times.layer_ms.get(row.name)
        if not ms:
            continue
        s = ms / 1e3
        tflops = row.flops / s / 1e12
        gbs = row.traffic_bytes / s / 1e9
        ff = bf = None
        if ceilings is not None:
            peak = ceilings.peak_flops(profile.dtype) if row.macs else None
            ff = tflops * 1e12 / peak if peak else None
            bf = gbs / ceilings.copy_gbs if ceilings.copy_gbs else None
        out.append(AchievedLayer(row.name, ms, tflops, gbs, ff, bf))
    return tuple(out)


def _is_host(event: Any) -> bool:
    """A host (CPU) event of the profiler's tree: not a kernel, not a ``gpu_user_annotation`` span."""
    from torch.autograd import DeviceType

    return event.device_type == DeviceType.CPU and not getattr(event, "is_async", False)


def attribute_time(events: Iterable[Any], labels: Collection[str], *, device: bool) -> dict[str, float]:
    """Microseconds per label: the time of the work done inside each ``record_function`` label.

    ``events`` are the profiler's ``FunctionEvent`` objects (``prof.events()``): host events with ``cpu_parent``
    links, ``kernels`` (the device kernels each op launched, correlated by the profiler) and
    ``self_cpu_time_total``. With ``device`` every kernel's duration goes to the innermost label among its
    launching op and that op's ancestors (a label nested in another keeps its own kernels); without it, each host
    event's self CPU time does. Device-side events (kernels, ``gpu_user_annotation`` spans) are not counted
    themselves: their time arrives through the host op that launched them. Labels with no work are absent.
    """
    wanted = set(labels)
    totals: dict[str, float] = {}
    for ev in events:
        if not _is_host(ev):
            continue
        if device:
            own = float(sum(k.duration for k in getattr(ev, "kernels", ()) or ()))
        else:
            own = float(ev.self_cpu_time_total)
        if own <= 0:
            continue
        node = ev
        while node is not None and not (node.name in wanted and _is_host(node)):
            node = node.cpu_parent
        if node is not None:
            totals[node.name] = totals.get(node.name, 0.0) + own
    return totals


def measure_layers(
    model: str,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    device: str = "cuda",
    iterations: int = 20,
    warmup: int = 10,
    seed: int = 0,
    **overrides: Any,
) -> tuple[ModelProfile, LayerTimes]:
    """Profile ``model`` on real tensors on ``device`` and measure each row's time.

    Returns the profile of that very run (same row names) and the :class:`LayerTimes`. ``dtype`` sets the
    model and input dtype (``tf32``: fp32 with TF32 matmuls/convolutions allowed; ``fp32`` forbids TF32).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from deploykit.bench.timing import CudaEventTimer, HostTimer, median
    from deploykit.models import create_model
    from deploykit.profile.counter import profile_module

    if dtype not in _TORCH_DTYPES:
        raise InvalidInput(f"measured timing supports {', '.join(_TORCH_DTYPES)}; got {dtype!r}")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise BackendUnavailable("--measure needs a CUDA GPU and none is available (the profile itself runs without one)")
    if cuda and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    torch.manual_seed(seed)
    module, spec = create_model(model, device=dev, **overrides)
    tdtype = Precision(dtype).torch_dtype
    module = module.to(tdtype)
    x = torch.randn(spec.batch_shape(batch_size), device=dev, dtype=tdtype)
    # fp32 is true fp32 (deploykit.backends.math_mode); tf32 allows TF32 in matmuls and convolutions.
    on_device = torch.cuda.device(dev) if cuda else contextlib.nullcontext()
    with torch_math(tf32=dtype == "tf32"), on_device, torch.inference_mode():
        for _ in range(warmup):
            module(x)
        if cuda:
            torch.cuda.synchronize(dev)
        timer = CudaEventTimer(torch.cuda.current_stream(dev)) if cuda else HostTimer()
        e2e = median(timer.time(lambda: module(x), iterations))
        labels: dict[str, str] = {}
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        prof_result = None
        with profile(activities=activities) as prof:
            for i in range(iterations):
                got: dict[str, str] = {}
                result = profile_module(module, x, name=spec.name, dtype=dtype, spec=spec.to_dict(),
                                        row_scope=record_function, labels=got, unfused_attention=False)
                if i == 0:
                    prof_result, labels = result, got
            if cuda:
                torch.cuda.synchronize(dev)
    assert prof_result is not None
    per_label = attribute_time(prof.events(), labels, device=cuda)
    layer_ms = {labels[k]: v / 1e3 / iterations for k, v in per_label.items()}
    missing = tuple(r.name for r in prof_result.layers if r.name not in layer_ms and r.traffic_bytes)
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    method = ("torch.profiler: CUDA kernel time summed per row (kernels under each record_function label)" if cuda
              else "torch.profiler: self CPU time summed per row (ops under each record_function label)")
    return prof_result, LayerTimes(
        model=spec.name, device_name=name, dtype=dtype, batch_size=batch_size, method=method,
        iterations=iterations, layer_ms=layer_ms, end_to_end_ms=e2e, unattributed_rows=missing,
    )
