"""Shared fixtures, the skip rules for the ``gpu`` and ``trt`` markers, and ``--full-zoo``.

Registry-wide sweeps run one model per family by default (see ``zoo_selection.py``); ``pytest --full-zoo``
runs them over every registered model (the nightly workflow does).
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker is one process on one core: one intra-op thread each, instead of every worker
    # starting one thread per core and the workers fighting over the cores.
    torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full-zoo",
        action="store_true",
        default=False,
        help="run the registry-wide sweeps (export, MemTracker, reference counters) over every registered "
        "model; by default they take one model per family",
    )
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files of tests/report/test_golden.py from the current output",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_trt = pytest.mark.skip(reason="needs TensorRT (pip install 'deploykit[tensorrt]') and a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
        if "trt" in item.keywords and not (HAS_TRT and HAS_CUDA):
            item.add_marker(skip_trt)
    if not config.getoption("--full-zoo"):
        keep = [i for i in items if i.get_closest_marker("full_zoo") is None]
        dropped = [i for i in items if i.get_closest_marker("full_zoo") is not None]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory):
    """One data-set cache folder (MNIST-1D is generated into it once) for the tests of a worker."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def trained_m1d(tmp_path_factory: pytest.TempPathFactory, data_cache):
    """mnist1d-cnn trained briefly on real MNIST-1D (1,000 samples, 8 epochs: well above chance, far from
    converged), as a safetensors file; trained once per worker for the evaluate and INT8 tests."""
    from deploykit.train import TrainOptions, train_model

    out = tmp_path_factory.mktemp("weights") / "m1d.safetensors"
    r = train_model("mnist1d-cnn", "mnist1d", TrainOptions(epochs=8, threads=1), output=out, cache_dir=data_cache,
                    limit=1000)
    assert r.test_top1 > 0.4
    return out
