"""The backend registry: names, runners, availability, and a new backend reaching the benchmark without edits."""

from __future__ import annotations

import pytest
import torch

from deploykit.backends import registry
from deploykit.backends.base import Runner
from deploykit.backends.registry import (
    BackendInfo,
    backend_names,
    get_backend,
    list_backends,
    register_backend,
)
from deploykit.errors import InvalidInput


def test_built_in_backends_in_run_order() -> None:
    assert backend_names() == ("eager", "channels-last", "cuda-graph", "compile", "ort", "trt")
    for b in list_backends():
        cls = b.runner_class()
        assert issubclass(cls, Runner) and cls.name == b.name
        assert set(b.devices) <= {"cpu", "cuda"} and b.precisions


def test_unknown_name_suggests_and_duplicates_raise() -> None:
    with pytest.raises(InvalidInput, match=r"unknown backend 'ortt' \(did you mean ort"):
        get_backend("ortt")
    with pytest.raises(ValueError, match="already registered"):
        register_backend(get_backend("eager"))


def test_trt_status_asks_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    import deploykit.backends.tensorrt.runtime as rt

    monkeypatch.setattr(rt, "tensorrt_status", lambda: "no TensorRT here (test)")
    assert get_backend("trt").unavailable() == "no TensorRT here (test)"
    assert get_backend("eager").unavailable() is None


@pytest.fixture
def extra_backend():
    """A backend registered after import (as a new runtime would be): eager under another name."""
    info = register_backend(
        BackendInfo("eager-again", "test", "deploykit.backends.torch_backends:EagerRunner", ("cpu",),
                    get_backend("eager").precisions)
    )
    yield info
    registry._REGISTRY.pop(info.name)


def test_a_registered_backend_is_benchmarked_without_other_edits(extra_backend, tmp_path) -> None:
    from deploykit.bench import BenchSpec, TimingOptions, run_bench

    spec = BenchSpec(
        models=("lenet",), backends=("eager-again", "eager"), device="cpu", cache_dir=str(tmp_path),
        timing=TimingOptions(iterations=3, repeats=2, warmup_iters=1, warmup_window=1, warmup_seconds=0.5,
                             cell_seconds=2.0, min_iterations=1),
    )
    assert spec.backends == ("eager", "eager-again")
    torch.manual_seed(0)
    result = run_bench(spec)
    cell = next(c for c in result.cells if c.backend == "eager-again")
    assert cell.ok and cell.correct and cell.max_abs_error == 0.0
    with pytest.raises(InvalidInput, match="unknown backend"):
        BenchSpec(models=("lenet",), backends=("nope",))
