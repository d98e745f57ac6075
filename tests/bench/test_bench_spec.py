"""bench_spec(): command-line values over a suite over the device defaults (BenchSpec.with_overrides)."""

from __future__ import annotations

import pytest

from deploykit.bench.spec import DEFAULTS, BenchSpec, bench_spec
from deploykit.bench.timing import TimingOptions
from deploykit.errors import InvalidInput
from deploykit.precision import Precision


def test_defaults_for_the_device_without_a_suite() -> None:
    spec = bench_spec(None, models=("lenet",), device="cpu")
    assert (spec.backends, spec.precisions, spec.batches) == tuple(
        DEFAULTS["cpu"][k] for k in ("backends", "precisions", "batches")
    )
    assert spec.timing == TimingOptions() and spec.seed == 0 and spec.threads is None
    with pytest.raises(InvalidInput, match=r"give at least one MODEL \(or --suite FILE\)"):
        bench_spec(None, device="cpu")


def test_given_values_override_the_suite_and_none_keeps_it() -> None:
    suite = BenchSpec(models=("nin",), backends=("eager", "ort"), batches=(1, 8), device="cpu", seed=3,
                      threads=2, timing=TimingOptions(iterations=9, repeats=6), name="s")
    spec = bench_spec(suite, models=None, timing={"repeats": 5, "iterations": None},
                      batches=(4,), precisions=(Precision.FP16,), seed=None, threads=1)
    assert spec.models == ("nin",) and spec.backends == ("eager", "ort") and spec.name == "s"
    assert (spec.batches, spec.precisions, spec.seed, spec.threads) == ((4,), ("fp16",), 3, 1)
    assert (spec.timing.iterations, spec.timing.repeats) == (9, 5)
    assert bench_spec(suite, models=("lenet",)).models == ("lenet",)
