"""Compare a benchmark result with a baseline: the noise-aware regression rule behind ``deploykit check``.

Analysis only (it returns a :class:`CheckReport`); :mod:`deploykit.report.check` renders it.

The rule (BENCHMARKING.md):

1. Cells are matched by ``(model, backend, precision, batch)``; both files must come from the same device
   (GPU name, or CPU model), the same NVIDIA driver and the same measurement regime (transfers, cuDNN
   autotuning, device type; CPU threads on the CPU) and the same schema -- otherwise the files are not comparable
   (:class:`~deploykit.errors.ArtifactError`, exit 2). Different library versions (torch, ONNX Runtime,
   TensorRT, CUDA, cuDNN) are allowed -- detecting what they change is the point -- and listed.
2. Per cell the statistic is the median of the repeat medians and the noise IQR/median across repeats, as
   recorded. With ``change = current / baseline − 1`` and
   ``threshold = max(tolerance, 2 × (noise_current + noise_baseline))`` a cell is a **regression** when
   ``change > threshold`` and an **improvement** when ``change < −threshold``; otherwise unchanged. A noisy
   measurement widens its own threshold instead of raising false alarms; a cell whose noise is above 25% is
   marked *unreliable* (still judged by the widened threshold).
3. A cell that was correct and is now wrong (output beyond tolerance of eager) is a regression (``wrong``);
   a cell that ran and now fails with an error or out-of-memory is a regression (``broken``). Cells only in
   the baseline (not run, or skipped now) are listed as ``missing``; cells only in the current file as
   ``new``. Neither fails the check.

``deploykit check`` exits 1 when any cell is a regression, ``wrong`` or ``broken``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from deploykit.bench.results import COMPARABLE_REGIME_KEYS, BenchResult, CellResult, fp32_math_policy
from deploykit.bench.timing import UNUSABLE, TimingStats
from deploykit.errors import ArtifactError, InvalidInput

#: Default tolerance: 10% slower than the baseline before anything is called a regression.
DEFAULT_TOLERANCE = 0.10

#: Statuses that fail the check.
FAILING = ("regression", "wrong", "broken")

#: Library versions that may differ (reported, not refused).
_VERSION_KEYS = ("torch", "torchvision", "onnxruntime", "onnxruntime_gpu", "tensorrt", "onnx", "python")


def parse_tolerance(text: str | float) -> float:
    """``"10%"`` -> 0.10, ``"0.1"`` -> 0.10; a bare number ≥ 1 is read as a percentage (``"5"`` -> 0.05)."""
    pct = False
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = text.strip()
        pct = s.endswith("%")
        try:
            value = float(s.rstrip("%").strip())
        except ValueError:
            raise InvalidInput(f"bad tolerance {text!r}: use e.g. 10% or 0.1") from None
    if pct or value >= 1.0:
        value /= 100.0
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise InvalidInput(f"bad tolerance {text!r}: must be between 0% and 100%")
    return value


@dataclass(frozen=True)
class CellComparison:
    """One matched key. ``change`` is ``current/baseline − 1`` (positive = slower); times in ms."""

    model: str
    backend: str
    precision: str
    batch: int
    status: str  # regression | improvement | unchanged | wrong | broken | missing | new | not run
    baseline_ms: float | None = None
    current_ms: float | None = None
    change: float | None = None
    threshold: float | None = None
    noise_baseline: float | None = None
    noise_current: float | None = None
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model, self.backend, self.precision, self.batch)

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CheckReport:
    """The outcome of :func:`compare_results`."""

    comparisons: tuple[CellComparison, ...]
    tolerance: float
    device: str
    warnings: tuple[str, ...] = ()

    def by_status(self, *statuses: str) -> list[CellComparison]:
        return [c for c in self.comparisons if c.status in statuses]

    @property
    def regressions(self) -> list[CellComparison]:
        return self.by_status(*FAILING)

    @property
    def improvements(self) -> list[CellComparison]:
        return self.by_status("improvement")

    @property
    def failed(self) -> bool:
        return bool(self.regressions)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.comparisons:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tolerance": self.tolerance,
            "device": self.device,
            "failed": self.failed,
            "counts": self.counts(),
            "warnings": list(self.warnings),
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


def _driver(r: BenchResult) -> str | None:
    gpu = r.environment.get("gpu") or {}
    smi = gpu.get("nvidia_smi") or {}
    return smi.get("driver_version")


def check_comparable(current: BenchResult, baseline: BenchResult) -> list[str]:
    """Raise :class:`ArtifactError` if the two files cannot be compared; return warnings on version changes."""
    if current.device != baseline.device:
        raise ArtifactError(
            f"different devices: current {current.device!r}, baseline {baseline.device!r} "
            "(compare against the baseline recorded on the same device)"
        )
    d_cur, d_base = _driver(current), _driver(baseline)
    if d_cur != d_base:
        raise ArtifactError(f"different NVIDIA drivers: current {d_cur}, baseline {d_base}")
    keys = list(COMPARABLE_REGIME_KEYS)
    if current.regime.get("device_type") == "cpu":
        keys += ["cpu_threads", "ort_threads"]  # on the CPU the thread count is part of what was measured
    for k in keys:
        if current.regime.get(k) != baseline.regime.get(k):
            raise ArtifactError(
                f"different measurement regime {k!r}: current {current.regime.get(k)!r}, baseline {baseline.regime.get(k)!r}"
            )
    if current.regime.get("device_type") == "cuda":
        cur_math, base_math = fp32_math_policy(current.regime), fp32_math_policy(baseline.regime)
        if cur_math != base_math:
            raise ArtifactError(
                f"different fp32 math: current {cur_math}, baseline {base_math} (fp32 cells with TF32 are not "
                "comparable with true-fp32 ones: record a new baseline)"
            )
    warnings = []
    for k in _VERSION_KEYS:
        a, b = current.environment.get(k), baseline.environment.get(k)
        if a != b:
            warnings.append(f"{k}: baseline {b}, current {a}")
    gcur, gbase = current.environment.get("gpu") or {}, baseline.environment.get("gpu") or {}
    for k in ("cuda_runtime", "cudnn"):
        if gcur.get(k) != gbase.get(k):
            warnings.append(f"{k}: baseline {gbase.get(k)}, current {gcur.get(k)}")
    return warnings


def compare_cell(current: CellResult, baseline: CellResult, tolerance: float) -> CellComparison:
    """Apply the rule of the module docstring to one matched pair of cells."""
    base: dict[str, Any] = {
        "model": current.model,
        "backend": current.backend,
        "precision": current.precision,
        "batch": current.batch,
    }
    if not baseline.ok:
        if not current.ok:
            return CellComparison(
                **base, status="not run", note=f"{current.status}: {current.reason or ''}".strip()
            )
        return CellComparison(
            **base, status="new", current_ms=current.median_ms, note=f"baseline cell {baseline.status}"
        )
    b_ms = baseline.median_ms
    if current.status == "skipped" or (current.status == "ok" and current.timing is None):
        return CellComparison(
            **base, status="missing", baseline_ms=b_ms, note=f"skipped now: {current.reason or ''}".strip()
        )
    if current.status in ("error", "oom"):
        return CellComparison(
            **base,
            status="broken",
            baseline_ms=b_ms,
            note=f"{current.status}: {current.reason or ''}".strip(),
        )
    assert current.timing is not None and baseline.timing is not None and b_ms is not None
    c_ms = current.timing.median_ms
    n_cur, n_base = current.timing.noise, baseline.timing.noise
    threshold = max(tolerance, 2.0 * (n_cur + n_base))
    change = c_ms / b_ms - 1.0 if b_ms > 0 else math.inf
    if change > threshold:
        status = "regression"
    elif change < -threshold:
        status = "improvement"
    else:
        status = "unchanged"
    notes = []
    if n_cur > UNUSABLE or n_base > UNUSABLE:
        notes.append("unreliable: noise > 25%")
    if baseline.info.get("baseline_runs", 1) > 1:
        notes.append(f"baseline: {baseline.info['baseline_runs']} runs pooled")
    if current.correct is False and baseline.correct is not False:
        status = "wrong"
        notes.append(f"output now wrong (rel err {current.max_rel_error} > {current.tolerance})")
    return CellComparison(
        **base,
        status=status,
        baseline_ms=b_ms,
        current_ms=c_ms,
        change=change,
        threshold=threshold,
        noise_baseline=n_base,
        noise_current=n_cur,
        note="; ".join(notes),
    )


def _usable(repeats: tuple[tuple[float, ...], ...]) -> bool:
    return all(math.isfinite(v) and v > 0 for r in repeats for v in r)


def pool_baselines(baselines: Sequence[BenchResult]) -> BenchResult:
    """One baseline made of several runs of the same code (separate processes): per cell, the repeats of every
    run that measured it are pooled, so its median is the median over all their repeat medians and its noise
    (IQR/median across those repeats) includes the drift *between* processes -- other load, clocks, memory
    placement -- that one run's repeats cannot see. The runs must be comparable (:func:`check_comparable`).

    A cell is correct in the pooled baseline only if it was correct in every run that measured it;
    ``info["baseline_runs"]`` says how many runs it pools.
    """
    if not baselines:
        raise InvalidInput("no baseline given")
    first = baselines[0]
    if len(baselines) == 1:
        return first
    for other in baselines[1:]:
        check_comparable(other, first)
    keys: list[tuple[str, str, str, int]] = []
    for r in baselines:
        keys += [c.key for c in r.cells if c.key not in keys]
    cells = []
    for key in keys:
        found = [c for r in baselines if (c := r.cell(*key)) is not None]
        ok = [c for c in found if c.ok and c.timing is not None]
        if not ok:
            cells.append(found[-1])
            continue
        repeats = [rep for c in ok for rep in c.timing.repeats_ms]  # type: ignore[union-attr]
        correct = None if all(c.correct is None for c in ok) else all(c.correct is not False for c in ok)
        cells.append(
            replace(
                ok[-1],
                timing=TimingStats.from_repeats(repeats),
                correct=correct,
                info={**ok[-1].info, "baseline_runs": len(ok)},
            )
        )
    return replace(first, cells=tuple(cells), spec={"pooled_from": len(baselines)})


def compare_results(
    current: BenchResult,
    baseline: BenchResult | Sequence[BenchResult],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> CheckReport:
    """Compare ``current`` with ``baseline`` cell by cell (see the module docstring for the rule).

    ``baseline`` may be several runs of the same code: they are pooled (:func:`pool_baselines`), which puts the
    drift between processes into the baseline's noise and so into the threshold.

    Raises :class:`~deploykit.errors.ArtifactError` when the files are not comparable (device, driver, regime).

    >>> report = compare_results(load_results("new.json"), load_results("base.json"))   # doctest: +SKIP
    >>> report.exit_code, [c.key for c in report.regressions]                           # doctest: +SKIP
    """
    if not 0.0 <= tolerance < 1.0:
        raise InvalidInput("tolerance must be between 0 and 1 (0.10 = 10%)")
    runs = [baseline] if isinstance(baseline, BenchResult) else list(baseline)
    for name, result in [("current", current)] + [("baseline", r) for r in runs]:
        bad = [c for c in result.cells if c.timing is not None and not _usable(c.timing.repeats_ms)]
        if bad:
            raise ArtifactError(
                f"{name} has unusable timings (non-finite, zero or negative samples) in {len(bad)} cell(s): "
                + ", ".join(f"{c.model}/{c.backend}/{c.precision}/b{c.batch}" for c in bad[:5])
            )
    baseline = pool_baselines(runs)
    warnings = check_comparable(current, baseline)
    cur = {c.key: c for c in current.cells}
    base = {c.key: c for c in baseline.cells}
    if not set(cur) & set(base):
        raise ArtifactError(
            "the two files have no (model, backend, precision, batch) cell in common: nothing to compare"
        )
    out: list[CellComparison] = []
    for key, b in base.items():
        c = cur.get(key)
        if c is None:
            m, be, p, bs = key
            out.append(
                CellComparison(
                    m, be, p, bs, status="missing", baseline_ms=b.median_ms, note="not in the current run"
                )
            )
        else:
            out.append(compare_cell(c, b, tolerance))
    for key, c in cur.items():
        if key not in base:
            m, be, p, bs = key
            out.append(
                CellComparison(m, be, p, bs, status="new", current_ms=c.median_ms, note="not in the baseline")
            )
    order = {
        "wrong": 0,
        "broken": 1,
        "regression": 2,
        "improvement": 3,
        "missing": 4,
        "new": 5,
        "not run": 6,
        "unchanged": 7,
    }
    out.sort(key=lambda c: (order.get(c.status, 9), c.key))
    return CheckReport(
        comparisons=tuple(out), tolerance=tolerance, device=current.device, warnings=tuple(warnings)
    )
