"""Benchmark results: one :class:`CellResult` per (model, backend, precision, batch), gathered in a
:class:`BenchResult` with the environment fingerprint and the measurement regime, and a versioned JSON round trip.

JSON layout (``schema == "deploykit.bench"``, ``schema_version == 1``)::

    {"schema": "deploykit.bench", "schema_version": 1, "created_utc": "...", "device": "NVIDIA H100 80GB HBM3",
     "environment": {...deploykit._env.environment()...}, "regime": {"transfers_included": false, ...},
     "spec": {...BenchSpec...}, "cells": [{"model": "resnet18", "backend": "eager", ..., "timing": {...}}]}

Raw samples are kept (``timing.repeats_ms``); every derived figure is recomputed from them on load.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deploykit._io import atomic_write_json
from deploykit.bench.timing import TimingStats, WarmupReport
from deploykit.errors import ArtifactError, first_line

SCHEMA = "deploykit.bench"
SCHEMA_VERSION = 1

#: Cell status values. ``ok`` cells have timing; the others carry a one-line ``reason``.
STATUSES = ("ok", "skipped", "oom", "error")


@dataclass(frozen=True)
class CellResult:
    """One measured (or skipped) cell of a sweep.

    Times are milliseconds (``first_call_ms``) or seconds (``prepare_s``: export / engine build / model
    placement before the first call; ``setup_s`` adds the first call, which is where ``torch.compile`` compiles).
    ``max_abs_error`` and ``max_rel_error`` compare this backend's output with eager fp32 on the same input;
    ``max_rel_error`` is ``max|out - ref| / max|ref|`` (relative to the output's scale, so near-zero logits do
    not blow it up) and ``correct`` is ``max_rel_error <= tolerance``. ``speedup_vs_eager`` divides the eager
    median of the same model, precision and batch by this cell's median.

    Memory (CUDA only) is the steady state of inference: ``peak_mem_bytes`` is the device memory the runner
    holds and uses while serving -- weights, buffers, activations and the workspaces of the kernels it settled
    on -- measured from a baseline read after the backend factory (export / engine build) with the peak
    statistics reset after the warm-up. For torch backends it is the caching allocator's peak over the timed
    calls; for ONNX Runtime / TensorRT (own allocators) the growth of device memory in use. The one-time cost
    before that -- cuDNN benchmark or max-autotune workspaces, the first call -- is ``setup_peak_mem_bytes``
    (from a baseline read before the factory; for non-torch backends sampled after activation, the first call
    and the warm-up, so it can miss a short-lived spike). ``peak_mem_method`` says which reading was used.
    """

    model: str
    backend: str
    precision: str
    batch: int
    status: str = "ok"
    reason: str | None = None
    timing: TimingStats | None = None
    warmup: WarmupReport | None = None
    timer: str | None = None
    first_call_ms: float | None = None
    prepare_s: float | None = None
    cache_hit: bool | None = None
    speedup_vs_eager: float | None = None
    peak_mem_bytes: int | None = None
    peak_mem_method: str | None = None
    setup_peak_mem_bytes: int | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    tolerance: float | None = None
    correct: bool | None = None
    top1_agreement: float | None = None
    cuda_graphs: bool = False
    transfers_included: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """``(model, backend, precision, batch)``: how cells are matched across result files."""
        return (self.model, self.backend, self.precision, self.batch)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.timing is not None

    @property
    def median_ms(self) -> float | None:
        return self.timing.median_ms if self.timing is not None else None

    @property
    def throughput_sps(self) -> float | None:
        """Samples per second at the median latency."""
        if self.timing is None or self.timing.median_ms <= 0:
            return None
        return self.batch * 1000.0 / self.timing.median_ms

    @property
    def setup_s(self) -> float | None:
        """Preparation plus the first call: the one-off cost (export, build, compile) before steady state."""
        if self.prepare_s is None and self.first_call_ms is None:
            return None
        return (self.prepare_s or 0.0) + (self.first_call_ms or 0.0) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "batch": self.batch,
            "status": self.status,
            "reason": self.reason,
            "median_ms": self.median_ms,
            "throughput_sps": self.throughput_sps,
            "speedup_vs_eager": self.speedup_vs_eager,
            "noise": self.timing.noise if self.timing else None,
            "correct": self.correct,
            "max_abs_error": _finite(self.max_abs_error),
            "max_rel_error": _finite(self.max_rel_error),
            "tolerance": self.tolerance,
            "top1_agreement": self.top1_agreement,
            "first_call_ms": self.first_call_ms,
            "prepare_s": self.prepare_s,
            "setup_s": self.setup_s,
            "cache_hit": self.cache_hit,
            "peak_mem_bytes": self.peak_mem_bytes,
            "peak_mem_method": self.peak_mem_method,
            "setup_peak_mem_bytes": self.setup_peak_mem_bytes,
            "cuda_graphs": self.cuda_graphs,
            "transfers_included": self.transfers_included,
            "timer": self.timer,
            "warmup": self.warmup.to_dict() if self.warmup else None,
            "timing": self.timing.to_dict() if self.timing else None,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        timing = TimingStats.from_dict(d["timing"]) if d.get("timing") else None
        warm = WarmupReport(**d["warmup"]) if d.get("warmup") else None
        status = d.get("status", "ok")
        if status not in STATUSES:
            raise ValueError(f"unknown cell status {status!r}")
        return cls(
            model=str(d["model"]),
            backend=str(d["backend"]),
            precision=str(d["precision"]),
            batch=int(d["batch"]),
            status=status,
            reason=d.get("reason"),
            timing=timing,
            warmup=warm,
            timer=d.get("timer"),
            first_call_ms=d.get("first_call_ms"),
            prepare_s=d.get("prepare_s"),
            cache_hit=d.get("cache_hit"),
            speedup_vs_eager=d.get("speedup_vs_eager"),
            peak_mem_bytes=d.get("peak_mem_bytes"),
            peak_mem_method=d.get("peak_mem_method"),
            setup_peak_mem_bytes=d.get("setup_peak_mem_bytes"),
            # files written before the keys were unified with the export's validation records say *_err
            max_abs_error=d.get("max_abs_error", d.get("max_abs_err")),
            max_rel_error=d.get("max_rel_error", d.get("max_rel_err")),
            tolerance=d.get("tolerance"),
            correct=d.get("correct"),
            top1_agreement=d.get("top1_agreement"),
            cuda_graphs=bool(d.get("cuda_graphs", False)),
            transfers_included=bool(d.get("transfers_included", False)),
            info=dict(d.get("info") or {}),
        )


def _finite(v: float | None) -> float | None:
    # JSON has no inf/nan; a non-finite error (a backend that produced NaN) is stored as null with correct=False.
    if v is None or math.isfinite(v):
        return v
    return None


@dataclass(frozen=True)
class BenchResult:
    """A whole sweep: the cells, the spec that produced them, where and how they were measured.

    ``device`` is the GPU name (``cpu:<model>`` on the CPU), ``environment`` the fingerprint from
    :func:`deploykit._env.environment`, ``regime`` the measurement conditions that make two files comparable
    (``transfers_included``, ``cudnn_benchmark``, TF32 switches, device type).
    """

    cells: tuple[CellResult, ...]
    device: str
    environment: dict[str, Any]
    regime: dict[str, Any]
    spec: dict[str, Any]
    created_utc: str

    def cell(self, model: str, backend: str, precision: str, batch: int) -> CellResult | None:
        """The cell with this key, or ``None``."""
        for c in self.cells:
            if c.key == (model, backend, precision, batch):
                return c
        return None

    def with_cells(self, cells: tuple[CellResult, ...]) -> BenchResult:
        return replace(self, cells=cells)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created_utc": self.created_utc,
            "device": self.device,
            "environment": self.environment,
            "regime": self.regime,
            "spec": self.spec,
            "cells": [c.to_dict() for c in self.cells],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchResult:
        """Rebuild from :meth:`to_dict` output; raises :class:`~deploykit.errors.ArtifactError` on a bad file."""
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ArtifactError(
                f"not a deploykit benchmark result (schema {_get(d, 'schema')!r}, expected {SCHEMA!r})"
            )
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                f"benchmark result schema version {version!r} is not supported (this deploykit reads {SCHEMA_VERSION})"
            )
        try:
            return cls(
                cells=tuple(CellResult.from_dict(c) for c in d["cells"]),
                device=str(d["device"]),
                environment=dict(d.get("environment") or {}),
                regime=dict(d.get("regime") or {}),
                spec=dict(d.get("spec") or {}),
                created_utc=str(d.get("created_utc", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"corrupt benchmark result: {first_line(exc)}") from None

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically and return the path.

        JSON has no ``NaN`` / ``Infinity``: a non-finite number is written as ``null`` and its place listed
        under ``"null_not_finite"`` (a file with such a timing sample is then refused on load, as unusable).
        """
        data = self.to_dict()
        nulled: list[str] = []
        data = _null_non_finite(data, "", nulled)
        if nulled:
            data["null_not_finite"] = nulled
        return atomic_write_json(path, data)


def _null_non_finite(obj: Any, where: str, nulled: list[str]) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        nulled.append(f"{where or '.'} was {obj}")
        return None
    if isinstance(obj, dict):
        return {k: _null_non_finite(v, f"{where}.{k}", nulled) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_null_non_finite(v, f"{where}[{i}]", nulled) for i, v in enumerate(obj)]
    return obj


def _cell_name(d: Any, i: int) -> str:
    if isinstance(d, dict):
        return f"{str(d.get('model'))[:60]}/{str(d.get('backend'))[:20]}/{str(d.get('precision'))[:10]}/b{d.get('batch')}"
    return f"cells[{i}]"


def validate_results_data(data: Any) -> None:
    """Check the shape of a parsed results file (the one place results files are validated).

    Raises :class:`ArtifactError` naming what is wrong: not an object, another schema or version, ``cells``
    not a list of objects, a cell without model/backend/precision/batch, timing samples that are not lists of
    numbers, and ``ok`` cells whose samples are non-finite, zero or negative (such a timing cannot be
    compared with anything: the cells are named).
    """
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ArtifactError(f"not a deploykit benchmark result (schema {_get(data, 'schema')!r}, expected {SCHEMA!r})")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ArtifactError(
            f"benchmark result schema version {version!r} is not supported (this deploykit reads {SCHEMA_VERSION})"
        )
    if not isinstance(data.get("device"), str):
        raise ArtifactError("corrupt benchmark result: 'device' is missing or not a string")
    for k in ("environment", "regime", "spec"):
        if data.get(k) is not None and not isinstance(data[k], dict):
            raise ArtifactError(f"corrupt benchmark result: {k!r} is not an object")
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ArtifactError("corrupt benchmark result: 'cells' is not a list of objects")
    unusable: list[str] = []
    for i, c in enumerate(cells):
        for k in ("model", "backend", "precision"):
            if not isinstance(c.get(k), str):
                raise ArtifactError(f"corrupt benchmark result: cells[{i}] has no {k!r} string")
        if not isinstance(c.get("batch"), int) or isinstance(c.get("batch"), bool) or c["batch"] < 1:
            raise ArtifactError(f"corrupt benchmark result: cells[{i}] 'batch' is not a positive integer")
        for k in ("info", "warmup"):
            if c.get(k) is not None and not isinstance(c[k], dict):
                raise ArtifactError(f"corrupt benchmark result: cells[{i}] {k!r} is not an object")
        timing = c.get("timing")
        if timing is None:
            continue
        reps = timing.get("repeats_ms") if isinstance(timing, dict) else None
        if (
            not isinstance(reps, list)
            or not reps
            or not all(isinstance(r, list) and r for r in reps)
        ):
            raise ArtifactError(
                f"corrupt benchmark result: {_cell_name(c, i)} timing.repeats_ms is not a list of sample lists"
            )
        samples = [v for r in reps for v in r]
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in samples):
            raise ArtifactError(f"corrupt benchmark result: {_cell_name(c, i)} has a timing sample that is not a number")
        if any(v is None or not math.isfinite(v) or v <= 0 for v in samples):
            unusable.append(_cell_name(c, i))
    if unusable:
        shown = ", ".join(unusable[:5]) + (f" and {len(unusable) - 5} more" if len(unusable) > 5 else "")
        raise ArtifactError(
            f"unusable timings (non-finite, zero or negative samples) in {len(unusable)} cell(s): {shown}"
        )


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def load_results(path: str | Path) -> BenchResult:
    """Read a results JSON written by :meth:`BenchResult.save`.

    Raises :class:`~deploykit.errors.ArtifactError` (exit code 2) when the file is missing, is not JSON, or
    has another schema or schema version.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{p} is not UTF-8 text (byte {exc.start}): not a results file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{p} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise ArtifactError(f"{p} is not a results file (JSON nested too deeply)") from None
    try:
        validate_results_data(data)
        return BenchResult.from_dict(data)
    except ArtifactError as exc:
        raise ArtifactError(f"{p}: {exc}") from None
    except RecursionError:
        raise ArtifactError(f"{p} is not a results file (nested too deeply)") from None


def add_speedups(cells: list[CellResult]) -> list[CellResult]:
    """Set ``speedup_vs_eager`` = eager median / cell median for the same model, precision and batch
    (``None`` where there is no eager timing to compare with). int8 cells (a Q/DQ graph: eager PyTorch has no
    int8 run) are compared with eager fp32 of the same model and batch."""
    eager = {(c.model, c.precision, c.batch): c.median_ms for c in cells if c.backend == "eager" and c.ok}
    out = []
    for c in cells:
        ref = eager.get((c.model, "fp32" if c.precision == "int8" else c.precision, c.batch))
        speedup = ref / c.median_ms if c.ok and ref and c.median_ms else None
        out.append(replace(c, speedup_vs_eager=speedup))
    return out


#: Regime keys two result files must share to be merged or compared.
COMPARABLE_REGIME_KEYS = ("device_type", "transfers_included", "cudnn_benchmark")


def fp32_math_policy(regime: dict[str, Any]) -> str:
    """What fp32 meant in a result's regime on CUDA: ``"ieee"`` (true fp32, :mod:`deploykit.backends.math_mode`)
    or ``"unrecorded"`` for a file written before sweeps recorded it (when cuDNN convolutions ran in TF32).
    fp32 timings of the two are not comparable: TF32 convolutions are several times faster."""
    rec = regime.get("fp32_math")
    return str(rec.get("policy")) if isinstance(rec, dict) and rec.get("policy") else "unrecorded"


def merge_results(results: list[BenchResult]) -> BenchResult:
    """Merge sweeps run in parts on the same device (one call per backend group, say) into one result.

    The files must share device, NVIDIA driver and regime (:data:`COMPARABLE_REGIME_KEYS`); a cell present in
    several files is taken from the last one (a re-run replaces). Regime entries that differ between parts
    (``compile_mode``) are dropped from the merged regime -- each cell's ``info`` still records its own -- and
    the parts' specs are kept under ``spec["merged_from"]``; speedups are recomputed against the merged eager
    cells. Raises :class:`ArtifactError` on a mismatch.
    """
    if not results:
        raise ArtifactError("nothing to merge")
    first = results[0]

    def driver(r: BenchResult) -> Any:
        return ((r.environment.get("gpu") or {}).get("nvidia_smi") or {}).get("driver_version")

    for r in results[1:]:
        if r.device != first.device:
            raise ArtifactError(
                f"cannot merge results from different devices: {first.device!r} and {r.device!r}"
            )
        if driver(r) != driver(first):
            raise ArtifactError(
                f"cannot merge results from different NVIDIA drivers: {driver(first)} and {driver(r)}"
            )
        for k in COMPARABLE_REGIME_KEYS:
            if r.regime.get(k) != first.regime.get(k):
                raise ArtifactError(
                    f"cannot merge results with different {k!r}: {first.regime.get(k)!r} and {r.regime.get(k)!r}"
                )
        if first.regime.get("device_type") == "cuda" and fp32_math_policy(r.regime) != fp32_math_policy(first.regime):
            raise ArtifactError(
                f"cannot merge results with different fp32 math: {fp32_math_policy(first.regime)} and "
                f"{fp32_math_policy(r.regime)}"
            )
    cells: dict[tuple[str, str, str, int], CellResult] = {}
    for r in results:
        for c in r.cells:
            cells.pop(c.key, None)
            cells[c.key] = c
    regime = {k: v for k, v in first.regime.items() if all(r.regime.get(k) == v for r in results)}
    return BenchResult(
        cells=tuple(add_speedups(list(cells.values()))),
        device=first.device,
        environment=results[-1].environment,
        regime=regime,
        spec={"merged_from": [r.spec for r in results]},
        created_utc=max(r.created_utc for r in results),
    )
