"""Roofline analysis of a :class:`ModelProfile` on a :class:`DevicePreset`.

Per layer: the time floor is ``max(flops / peak, traffic_bytes / bandwidth)``; the layer is *compute-bound*
when the first term is the larger, *memory-bound* otherwise. The peak is the matrix (tensor-core) peak for
rows that do MACs and the vector peak for the others. The model's floor is the sum of the layers' floors
(layers run one after another, unfused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploykit.profile.devices import DevicePreset
from deploykit.profile.types import LayerProfile, ModelProfile


@dataclass(frozen=True)
class LayerRoofline:
    """One layer's roofline numbers. ``bound`` is ``"compute"``, ``"memory"`` or ``"-"`` (no work)."""

    name: str
    bound: str
    time_s: float
    compute_time_s: float
    memory_time_s: float
    peak_flops: float
    share: float


@dataclass(frozen=True)
class RooflineProfile:
    """Roofline of a whole model: per-layer rows in profile order, the floor and the ridge point."""

    device: DevicePreset
    precision: str
    layers: tuple[LayerRoofline, ...]

    @property
    def floor_s(self) -> float:
        return sum(r.time_s for r in self.layers)

    @property
    def ridge_flop_per_byte(self) -> float:
        return self.device.ridge_point(self.precision)

    @property
    def memory_bound_share(self) -> float:
        """Fraction of the roofline floor spent in memory-bound layers."""
        total = self.floor_s
        return sum(r.time_s for r in self.layers if r.bound == "memory") / total if total else 0.0

    def by_name(self) -> dict[str, LayerRoofline]:
        return {r.name: r for r in self.layers}

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device.key,
            "device_name": self.device.name,
            "precision": self.precision,
            "bandwidth_gbs": self.device.bandwidth_gbs,
            "peak_matrix_tflops": self.device.peak_flops(self.precision, True) / 1e12,
            "peak_vector_tflops": self.device.peak_flops(self.precision, False) / 1e12,
            "ridge_flop_per_byte": self.ridge_flop_per_byte,
            "floor_ms": self.floor_s * 1e3,
            "memory_bound_share": self.memory_bound_share,
            "source": self.device.source,
            "layers": [
                {"name": r.name, "bound": r.bound, "time_ms": r.time_s * 1e3, "share": r.share,
                 "compute_time_ms": r.compute_time_s * 1e3, "memory_time_ms": r.memory_time_s * 1e3}
                for r in self.layers
            ],
        }


def layer_roofline(layer: LayerProfile, device: DevicePreset, precision: str) -> tuple[str, float, float, float, float]:
    """``(bound, time_s, compute_time_s, memory_time_s, peak_flops)`` for one layer."""
    peak = device.peak_flops(precision, matrix=layer.macs > 0)
    t_c = layer.flops / peak
    t_m = layer.traffic_bytes / device.bandwidth_bytes_per_s
    if layer.flops == 0 and layer.traffic_bytes == 0:
        return "-", 0.0, 0.0, 0.0, peak
    return ("compute" if t_c >= t_m else "memory"), max(t_c, t_m), t_c, t_m, peak


def roofline(profile: ModelProfile, device: DevicePreset, precision: str | None = None) -> RooflineProfile:
    """Roofline of ``profile`` on ``device`` at ``precision`` (default: the profile's dtype)."""
    prec = precision or profile.dtype
    device.ridge_point(prec)  # raises InvalidInput early when the device lacks this precision
    raw = [(layer.name, *layer_roofline(layer, device, prec)) for layer in profile.layers]
    total = sum(t for _, _, t, _, _, _ in raw)
    rows = tuple(
        LayerRoofline(name=n, bound=b, time_s=t, compute_time_s=tc, memory_time_s=tm, peak_flops=pk,
                      share=t / total if total else 0.0)
        for n, b, t, tc, tm, pk in raw
    )
    return RooflineProfile(device=device, precision=prec, layers=rows)
