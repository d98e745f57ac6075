"""Benchmarks: (runner, spec) -> measured cells. All timing lives in :mod:`deploykit.bench.timing`; the regression
rule of ``deploykit check`` (a result against a baseline) in :mod:`deploykit.bench.regression`.

Names load on first use, so reading or comparing result files does not import torch.

>>> from deploykit.bench import BenchSpec, TimingOptions, run_bench
>>> spec = BenchSpec(models=("lenet",), backends=("eager", "ort"), batches=(1, 8),
...                  timing=TimingOptions(iterations=20, repeats=5))
>>> result = run_bench(spec)                          # doctest: +SKIP
>>> result.save("benchmarks/results/lenet-cpu.json")  # doctest: +SKIP
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BACKENDS": "deploykit.bench.spec",
    "NOISY": "deploykit.bench.timing",
    "PRECISIONS": "deploykit.bench.spec",
    "SCHEMA": "deploykit.bench.results",
    "SCHEMA_VERSION": "deploykit.bench.results",
    "UNUSABLE": "deploykit.bench.timing",
    "BenchResult": "deploykit.bench.results",
    "BenchSpec": "deploykit.bench.spec",
    "CellEvent": "deploykit.bench.sweep",
    "CellResult": "deploykit.bench.results",
    "CheckReport": "deploykit.bench.regression",
    "compare_results": "deploykit.bench.regression",
    "parse_tolerance": "deploykit.bench.regression",
    "TimingOptions": "deploykit.bench.timing",
    "TimingStats": "deploykit.bench.timing",
    "compare_outputs": "deploykit.bench.sweep",
    "load_results": "deploykit.bench.results",
    "load_suite": "deploykit.bench.spec",
    "merge_results": "deploykit.bench.results",
    "output_tolerance": "deploykit.bench.sweep",
    "run_bench": "deploykit.bench.sweep",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
