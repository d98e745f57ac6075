"""Paired A/B timing: a baseline and a candidate measured interleaved in one process, compared as ratios.

Separate runs drift apart (other load, clock changes, memory placement): on a shared machine the same code's
median moved by a factor of several between processes (``benchmarks/results/false-alarms-cpu.md``), which no
threshold built from one run's own repeats can cover. Measured in alternation -- A B B A A B ... -- the two
see the same load, and each pair's ratio ``t_B / t_A`` cancels what they share; alternating the order cancels
a drift that is linear within a pair. This is what asv's ``continuous`` and scikit-image's benchmark CI do.

The verdict (:func:`paired_verdict`): the median of the pair ratios with a distribution-free 95% confidence
interval (order statistics of the binomial); a **regression** when the median ratio is above ``1 + tolerance``
*and* the interval lies above 1 (material and significant), an **improvement** symmetrically, else unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploykit.errors import InvalidInput

__all__ = ["PairedVerdict", "median_ci", "paired_ratios", "paired_verdict"]


def paired_ratios(
    baseline: Callable[[], object],
    candidates: dict[str, Callable[[], object]],
    *,
    pairs: int = 15,
    calls: int = 1,
    warmup: int = 2,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, list[float]]:
    """Time ``baseline`` and each candidate ``pairs`` times, interleaved, and return per candidate the ratios
    ``t_candidate / t_baseline`` of each round (each time covers ``calls`` consecutive calls).

    In round ``i`` the order is reversed every other round (A B C, C B A, ...), so that a drift within a round
    falls on both sides equally. ``warmup`` untimed rounds come first.
    """
    if pairs < 3:
        raise InvalidInput(f"paired timing needs at least 3 pairs, got {pairs}")
    if calls < 1:
        raise InvalidInput(f"calls must be at least 1, got {calls}")
    fns: list[tuple[str, Callable[[], object]]] = [("__baseline__", baseline), *candidates.items()]

    def timed(fn: Callable[[], object]) -> float:
        t0 = clock()
        for _ in range(calls):
            fn()
        return (clock() - t0) / calls

    for _ in range(warmup):
        for _, fn in fns:
            fn()
    ratios: dict[str, list[float]] = {name: [] for name in candidates}
    for i in range(pairs):
        order = fns if i % 2 == 0 else fns[::-1]
        times = {name: timed(fn) for name, fn in order}
        base = times["__baseline__"]
        for name in candidates:
            ratios[name].append(times[name] / base if base > 0 else math.inf)
    return ratios


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """The median of ``values`` and a distribution-free confidence interval for it: the order statistics
    ``x_(k)``, ``x_(n-k+1)`` with ``k`` the largest rank whose binomial(n, 1/2) tail stays within
    ``(1 - confidence) / 2`` (the widest interval, ``min``..``max``, when ``n`` is too small for that)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise InvalidInput("no values")
    med = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    alpha = (1 - confidence) / 2
    k, tail = 0, 0.0
    for j in range(n):  # P(Binomial(n, 1/2) <= j)
        tail += math.comb(n, j) / 2**n
        if tail > alpha:
            break
        k = j + 1
    if k == 0:
        return med, xs[0], xs[-1]
    return med, xs[k - 1], xs[n - k]


@dataclass(frozen=True)
class PairedVerdict:
    """``status`` (regression | improvement | unchanged), the median ratio and its 95% interval, ``pairs``."""

    status: str
    ratio: float
    ci_low: float
    ci_high: float
    pairs: int
    tolerance: float

    @property
    def change(self) -> float:
        return self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def paired_verdict(ratios: list[float], tolerance: float = 0.10) -> PairedVerdict:
    """Judge candidate/baseline ratios (see the module docstring). Non-finite or non-positive ratios are
    :class:`InvalidInput`: they come from a broken clock or timing, not from a slower program."""
    if not all(math.isfinite(r) and r > 0 for r in ratios):
        raise InvalidInput("paired ratios must be positive and finite")
    med, lo, hi = median_ci(ratios)
    if med > 1 + tolerance and lo > 1:
        status = "regression"
    elif med < 1 / (1 + tolerance) and hi < 1:
        status = "improvement"
    else:
        status = "unchanged"
    return PairedVerdict(status, med, lo, hi, len(ratios), tolerance)
