"""The training loop: it lowers the loss on real data, is reproducible from its seed, writes loadable weights
atomically, refuses bad options, and the CLI exits with the documented codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deploykit.cli.app import app
from deploykit.errors import InvalidInput
from deploykit.models import create_model
from deploykit.train import TrainOptions, TrainProgress, TrainResult, train_model

FAST = TrainOptions(epochs=4, batch_size=50, threads=1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-cache")


def test_training_on_a_subset_lowers_the_loss_and_writes_weights(tmp_path: Path, cache: Path) -> None:
    seen: list[TrainProgress] = []
    out = tmp_path / "w.safetensors"
    r = train_model("mnist1d-cnn", "mnist1d", FAST, output=out, progress=seen.append, cache_dir=cache, limit=400)
    assert r.final_train_loss < 0.8 * r.initial_train_loss
    assert r.history[-1].train_loss < r.history[0].train_loss
    assert len(r.history) == 4 and r.threads == 1
    # 400 samples / 50 = 8 steps per epoch, reported after each step and once more per finished epoch
    assert len(seen) == 4 * 8 + 4 and sum(p.epoch_done is not None for p in seen) == 4
    model, spec = create_model("mnist1d-cnn", device="cpu", weights=out)
    assert spec.weights is not None and r.weights is not None and spec.weights.sha256 == r.weights["sha256"]
    from deploykit.data import load_data

    test = load_data("mnist1d", (1, 40), cache_dir=cache, limit=400).test
    with torch.no_grad():
        acc = float((model(test.x).argmax(1) == test.y).float().mean())
    assert acc == pytest.approx(r.test_top1)
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["deploykit"])
    assert meta["model"] == "mnist1d-cnn" and meta["data_test_sha256"] == r.data["test"]["sha256"]
    assert TrainResult.from_dict(json.loads(json.dumps(r.to_dict()))).to_dict() == r.to_dict()


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, cache: Path) -> None:
    opts = TrainOptions(epochs=1, batch_size=100, threads=1)
    a = train_model("mnist1d-cnn", "mnist1d", opts, output=tmp_path / "a.safetensors", cache_dir=cache, limit=300)
    b = train_model("mnist1d-cnn", "mnist1d", opts, output=tmp_path / "b.safetensors", cache_dir=cache, limit=300)
    c = train_model("mnist1d-cnn", "mnist1d", TrainOptions(epochs=1, batch_size=100, threads=1, seed=1),
                    output=tmp_path / "c.safetensors", cache_dir=cache, limit=300)
    assert a.weights and b.weights and c.weights
    assert a.weights["sha256"] == b.weights["sha256"] != c.weights["sha256"]


def test_sgd_on_a_single_set_npz_is_split_for_training(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    x = rng.normal(size=(200, 40)).astype(np.float32) + y[:, None] * 1.5  # separable: the loss must fall
    np.savez(tmp_path / "d.npz", x=x, y=y)
    r = train_model("mnist1d-cnn", tmp_path / "d.npz",
                    TrainOptions(epochs=3, batch_size=20, optimizer="sgd", lr=0.05, threads=1))
    assert (r.data["train"]["samples"], r.data["test"]["samples"]) == (160, 40)
    assert "80/20 stratified split, seed 0" in r.data["test"]["preprocessing"]
    assert r.final_train_loss < r.initial_train_loss and r.test_top1 > 0.9


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (TrainOptions(optimizer="lbfgs"), "unknown optimizer 'lbfgs'; choose from adam, sgd"),
        (TrainOptions(epochs=0), "epochs must be at least 1"),
        (TrainOptions(lr=0), "learning rate must be positive"),
        (TrainOptions(threads=0), "threads must be at least 1"),
    ],
)
def test_bad_options(options: TrainOptions, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        train_model("mnist1d-cnn", "mnist1d", options)


def test_divergence_is_reported(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(InvalidInput, match="training diverged at epoch 1"):
        train_model("mnist1d-cnn", "mnist1d", TrainOptions(epochs=1, optimizer="sgd", lr=1e30, threads=1),
                    cache_dir=cache, limit=200)


def _cli(*args: str):
    return CliRunner().invoke(app, ["train", *args])


def test_cli_trains_and_prints_the_summary(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(cache.parent / "cli-cache"))
    out = tmp_path / "w.safetensors"
    res = _cli("mnist1d-cnn", "--data", "mnist1d", "-o", str(out), "--epochs", "2", "--limit", "200", "--threads", "1")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "mnist1d-cnn on mnist1d: 200 train / 200 test samples of 1x40; adam lr 0.01, batch 100, 2 epochs, seed 0, 1 thread" in text
    assert "epoch 2/2: train loss" in text  # the log lines (no terminal here)
    assert f"wrote {out} (safetensors, 8 tensors, sha256" in text and out.is_file()
    res = _cli("mnist1d-cnn", "--data", "mnist1d", "-o", str(tmp_path / "j.safetensors"), "--epochs", "1",
               "--limit", "100", "--format", "json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["schema"] == "deploykit.train-result" and len(doc["history"]) == 1


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["lenet", "--data", "mnist1d"], 2, "mnist1d signals are 1x40"),
        (["mnist1d-cnn", "--data", "digits"], 2, "digits are 8x8 grey images"),
        (["mnist1d-cnn", "--data", "nope.npz"], 2, "data file not found"),
        (["mnist1d-cnn", "--data", "mnist1d", "--optimizer", "rmsprop"], 2, "unknown optimizer"),
        (["resnt18", "--data", "mnist1d"], 2, "did you mean resnet18"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], code: int, match: str,
                                             monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(cache.parent / "cli-cache"))
    monkeypatch.chdir(tmp_path)
    res = _cli(*args, "-o", str(tmp_path / "w.safetensors"), "--epochs", "1")
    assert res.exit_code == code
    assert match in res.output and "Traceback" not in res.output
    assert not (tmp_path / "w.safetensors").exists()


def test_cli_output_folder_is_refused_before_training(tmp_path: Path) -> None:
    res = _cli("mnist1d-cnn", "--data", "mnist1d", "-o", str(tmp_path))
    assert res.exit_code == 2 and "is a folder" in res.output
