"""Findings: the answers a profile gives to the classic questions, as data (the CLI renders them).

Which layers hold the parameters, do the FLOPs, allocate the activations, move the bytes; which layers are
memory-bound on the chosen device and how much of the roofline time they take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploykit.profile.roofline import RooflineProfile
from deploykit.profile.types import LayerProfile, ModelProfile

#: Module classes whose parameters count as "fully connected".
FC_TYPES = frozenset({"Linear", "LazyLinear", "Bilinear"})


@dataclass(frozen=True)
class Ranked:
    """A layer and its value for one metric, with its share of the model total."""

    name: str
    op: str
    value: float
    share: float


@dataclass(frozen=True)
class Findings:
    top_params: tuple[Ranked, ...]
    top_flops: tuple[Ranked, ...]
    top_act_bytes: tuple[Ranked, ...]
    top_traffic_bytes: tuple[Ranked, ...]
    slowest: tuple[Ranked, ...]
    memory_bound: tuple[Ranked, ...]
    memory_bound_share: float
    fc_params: int
    fc_param_share: float

    def to_dict(self) -> dict[str, Any]:
        def rows(items: tuple[Ranked, ...]) -> list[dict[str, Any]]:
            return [{"name": r.name, "op": r.op, "value": r.value, "share": r.share} for r in items]

        return {
            "top_params": rows(self.top_params),
            "top_flops": rows(self.top_flops),
            "top_act_bytes": rows(self.top_act_bytes),
            "top_traffic_bytes": rows(self.top_traffic_bytes),
            "slowest_on_roofline": rows(self.slowest),
            "memory_bound": rows(self.memory_bound),
            "memory_bound_share": self.memory_bound_share,
            "fc_params": self.fc_params,
            "fc_param_share": self.fc_param_share,
        }


def is_fully_connected(row: LayerProfile) -> bool:
    """A fully connected layer: an ``nn.Linear``-like module row, a functional ``linear`` / ``addmm``, or in an
    ONNX profile a ``Gemm`` / ``MatMul`` node with a weight initializer (parameters), which is what a Linear
    exports to."""
    return row.op in FC_TYPES or row.op in {"linear", "addmm"} or (row.op in {"Gemm", "MatMul"} and row.params > 0)


def _top(profile: ModelProfile, attr: str, n: int) -> tuple[Ranked, ...]:
    total = sum(getattr(r, attr) for r in profile.layers)
    ranked = sorted(profile.layers, key=lambda r: getattr(r, attr), reverse=True)[:n]
    return tuple(
        Ranked(r.name, r.op, float(getattr(r, attr)), getattr(r, attr) / total if total else 0.0)
        for r in ranked
        if getattr(r, attr) > 0
    )


def findings(profile: ModelProfile, roof: RooflineProfile, top: int = 3) -> Findings:
    """Rank the layers of ``profile`` on each metric (``top`` of each) and list the memory-bound ones."""
    times = roof.by_name()
    ops = {r.name: r.op for r in profile.layers}
    by_time = sorted(roof.layers, key=lambda r: r.time_s, reverse=True)
    slowest = tuple(Ranked(r.name, ops[r.name], r.time_s, r.share) for r in by_time[:top] if r.time_s > 0)
    mem = tuple(
        Ranked(r.name, ops[r.name], times[r.name].time_s, times[r.name].share)
        for r in sorted(roof.layers, key=lambda r: r.time_s, reverse=True)
        if r.bound == "memory"
    )
    fc = sum(r.params for r in profile.layers if is_fully_connected(r))
    return Findings(
        top_params=_top(profile, "params", top),
        top_flops=_top(profile, "flops", top),
        top_act_bytes=_top(profile, "act_bytes", top),
        top_traffic_bytes=_top(profile, "traffic_bytes", top),
        slowest=slowest,
        memory_bound=mem,
        memory_bound_share=roof.memory_bound_share,
        fc_params=fc,
        fc_param_share=fc / profile.total_params if profile.total_params else 0.0,
    )
