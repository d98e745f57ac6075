"""Paired A/B timing (deploykit.bench.paired): ratios of interleaved calls, the median's interval, the verdict."""

from __future__ import annotations

import itertools

import pytest

from deploykit.bench.paired import median_ci, paired_ratios, paired_verdict
from deploykit.errors import InvalidInput


class FakeClock:
    """Nanoseconds; each call of a timed function advances it by that function's cost times the load."""

    def __init__(self) -> None:
        self.now = 0
        self.load = 1.0

    def __call__(self) -> int:
        return self.now

    def work(self, ms: float):
        def fn() -> None:
            self.now += int(ms * 1e6 * self.load)
        return fn


def test_interleaving_cancels_a_load_that_changes_between_rounds() -> None:
    clock = FakeClock()
    loads = itertools.cycle([1.0, 4.0, 2.0, 0.5])  # the machine's load jumps between rounds

    def baseline() -> None:
        clock.load = next(loads)  # the load of this round, shared by everything timed in it
        clock.now += int(10e6 * clock.load)

    ratios = paired_ratios(baseline, {"same": clock.work(10), "slower": clock.work(13)}, pairs=8, warmup=0,
                           clock=clock)
    # the baseline runs first in even rounds and last in odd ones: the load it sets is seen by both sides either way
    assert ratios["same"][::2] == pytest.approx([1.0] * 4)
    assert ratios["slower"][::2] == pytest.approx([1.3] * 4)


def test_median_ci_uses_order_statistics() -> None:
    med, lo, hi = median_ci(list(range(1, 10)))  # n = 9: k = 2 (P(X <= 1) = 10/512 < 2.5%)
    assert (med, lo, hi) == (5, 2, 8)
    assert median_ci([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)  # too few for 95%: the whole range


def test_verdict_needs_a_material_and_significant_change() -> None:
    assert paired_verdict([1.0, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0]).status == "unchanged"
    assert paired_verdict([1.15, 1.16, 1.14, 1.15, 1.17, 1.13, 1.15, 1.16, 1.14]).status == "regression"
    # a median above 1.10 whose interval reaches below 1 is not called a regression (noise, not a slowdown)
    assert paired_verdict([0.7, 0.8, 0.9, 1.2, 1.2, 1.3, 1.4, 1.5, 1.6]).status == "unchanged"
    assert paired_verdict([0.8, 0.81, 0.79, 0.8, 0.8, 0.82, 0.78, 0.8, 0.8]).status == "improvement"


def test_verdict_refuses_unusable_ratios() -> None:
    with pytest.raises(InvalidInput):
        paired_verdict([1.0, float("inf"), 1.0])
    with pytest.raises(InvalidInput):
        paired_verdict([1.0, 0.0, 1.0])
    with pytest.raises(InvalidInput):
        paired_ratios(lambda: None, {"b": lambda: None}, pairs=2)
