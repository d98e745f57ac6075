"""``--weights`` on every command that builds a model: profile, compare and bench check the weights against the
model (strict, exit 2) and record them; bench runs and caches the given weights, never other ones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deploykit.bench.cells import CellContext, _artifact_key
from deploykit.bench.spec import BenchSpec
from deploykit.bench.sweep import run_bench
from deploykit.bench.timing import TimingOptions
from deploykit.cli.app import app
from deploykit.cli.compare import parse_weights
from deploykit.errors import InvalidInput
from deploykit.models import create_model, save_weights
from deploykit.profile import profile_model
from deploykit.profile.compare import CompareOptions, compare_models


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(7)
    module, _ = create_model("mnist1d-cnn", device="cpu")
    path = tmp_path_factory.mktemp("w") / "m1d.safetensors"
    save_weights(module, path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_profile_checks_and_records_weights(weights: Path) -> None:
    prof = profile_model("mnist1d-cnn", weights=weights)
    assert prof.spec["weights"]["sha256"] == _sha(weights) and prof.spec["weights"]["materialized"] is False
    assert prof.total_params == profile_model("mnist1d-cnn").total_params
    with pytest.raises(InvalidInput, match="do not fit lenet"):
        profile_model("lenet", weights=weights)
    res = CliRunner().invoke(app, ["profile", "lenet", "--weights", str(weights)])
    assert res.exit_code == 2 and "do not fit lenet" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["profile", "mnist1d-cnn", "--weights", str(weights), "-f", "json"])
    assert res.exit_code == 0 and _sha(weights) in res.output


def test_compare_takes_weights_per_model(weights: Path) -> None:
    assert parse_weights([f"mnist1d-cnn={weights}"], ["lenet", "mnist1d-cnn"]) == {"mnist1d-cnn": str(weights)}
    assert parse_weights([str(weights)], ["mnist1d-cnn"]) == {"mnist1d-cnn": str(weights)}
    with pytest.raises(InvalidInput, match="MODEL=PATH"):
        parse_weights([str(weights)], ["lenet", "mnist1d-cnn"])
    with pytest.raises(InvalidInput, match="MODEL=PATH"):
        parse_weights([f"nin={weights}"], ["lenet", "mnist1d-cnn"])
    c = compare_models(["lenet", "mnist1d-cnn"], CompareOptions(optimizer=None),
                       weights={"mnist1d-cnn": str(weights)})
    assert c.summaries[1].weights["sha256"] == _sha(weights) and c.summaries[0].weights is None
    assert "weights" in c.summaries[1].to_dict() and "weights" not in c.summaries[0].to_dict()
    res = CliRunner().invoke(app, ["compare", "lenet", "mnist1d-cnn", "--weights", f"lenet={weights}"])
    assert res.exit_code == 2 and "do not fit lenet" in res.output


def test_bench_runs_the_given_weights_and_keys_its_cache_on_them(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="fit one model"):
        BenchSpec(models=("lenet", "mnist1d-cnn"), weights=str(weights))
    fast = TimingOptions(iterations=3, repeats=2, warmup_iters=1, warmup_window=2, warmup_seconds=0.0, cell_seconds=5)
    r = run_bench(BenchSpec(models=("mnist1d-cnn",), backends=("eager",), timing=fast, threads=1,
                            weights=str(weights), cache_dir=str(tmp_path)))
    assert r.regime["weights"]["mnist1d-cnn"]["sha256"] == _sha(weights) and r.cells[0].ok
    assert r.spec["weights"] == str(weights)
    # an ONNX export cached for random weights is never reused for trained ones
    module, spec_w = create_model("mnist1d-cnn", device="cpu", weights=weights)
    _, spec_r = create_model("mnist1d-cnn", device="cpu")
    keys = [_artifact_key(CellContext("mnist1d-cnn", s, module, "fp32", 1, torch.device("cpu"), None), "fp32")[1]
            for s in (spec_w, spec_r)]  # type: ignore[arg-type]
    assert keys[0]["weights_sha256"] == _sha(weights) and keys[1]["weights_sha256"] is None
    with pytest.raises(InvalidInput, match="do not fit lenet"):
        run_bench(BenchSpec(models=("lenet",), backends=("eager",), timing=fast, weights=str(weights)))
    res = CliRunner().invoke(app, ["bench", "lenet", "mnist1d-cnn", "--weights", str(weights), "--no-save"])
    assert res.exit_code == 2 and "fit one model" in res.output
