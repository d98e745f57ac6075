"""Exports with trained weights and real data, and the validation cases that must never read "passed": a model
that outputs zeros, one whose output does not depend on its input, an fp16 graph that underflows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from deploykit.backends.ort import OrtRunner
from deploykit.cli.app import app
from deploykit.data import load_data
from deploykit.errors import InvalidInput, ValidationError
from deploykit.export import export_module, export_onnx, load_onnx_artifact
from deploykit.models import ModelSpec, create_model, save_weights

NO_TRT = "TensorRT is not installed (pip install 'deploykit[tensorrt]')"


@pytest.fixture(autouse=True)
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    import deploykit.export.tensorrt as trt_mod

    monkeypatch.setattr(trt_mod, "tensorrt_status", lambda: NO_TRT)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mnist1d-cnn weights other than the export's default random ones (seed 7): a round trip that ignored the
    file would be caught."""
    torch.manual_seed(7)
    module, _ = create_model("mnist1d-cnn", device="cpu")
    path = tmp_path_factory.mktemp("weights") / "m1d.safetensors"
    save_weights(module, path)
    return path


@pytest.fixture(scope="module")
def test_split(cache: Path):
    return load_data("mnist1d", (1, 40), num_classes=10, cache_dir=cache, limit=300).test


def _spec(name: str) -> ModelSpec:
    return ModelSpec(name=name, family="test", source="tests", input_shape=(1, 8, 8), num_classes=4)


class ZeroHead(nn.Module):
    """A zero-initialised last layer (torchvision does this for some heads): 0 for every input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 4)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class IgnoresInput(nn.Module):
    """An output that does not depend on the input (a constant bias through a zero-weight layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 4)
        nn.init.zeros_(self.fc.weight)
        nn.init.normal_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class Tiny(nn.Module):
    """Logits around 1e-9 (random-init efficientnet_b0's are 4e-14): fp16 flushes them to zero."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * 1e-9


# ----------------------------------------------------------------------------------------- weights and data
def test_weights_round_trip_on_real_test_data(tmp_path: Path, weights: Path, test_split) -> None:
    art = export_onnx("mnist1d-cnn", out_dir=tmp_path, weights=weights, data=test_split, device="cpu",
                      dynamic_batch=True)
    m = art.manifest
    assert m["weights"]["source"] == str(weights) and m["weights"]["format"] == "safetensors"
    import hashlib

    assert m["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert m["model"]["weight_seed"] is None
    v = m["validation"]
    assert v["status"] == "passed" and v["inputs"]["kind"] == "data" and v["samples"] == len(test_split)
    assert v["inputs"]["sha256"] == test_split.sha256
    acc = v["accuracy"]
    assert acc["onnx"]["agreement"] == 1.0 and acc["onnx"]["samples"] == len(test_split)
    assert acc["onnx"]["top1"] == acc["eager"]["top1"]
    # Independently of the validator: the file's output equals eager PyTorch with the same weights loaded.
    module, _ = create_model("mnist1d-cnn", device="cpu", weights=weights)
    with torch.inference_mode():
        ref = module(test_split.x)
    with OrtRunner(art.path) as runner:
        got = runner.infer(test_split.x)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4 * float(ref.abs().max()))
    torch.manual_seed(0)  # the default random weights give other logits: the file really holds the given ones
    random_init, _ = create_model("mnist1d-cnn", device="cpu")
    with torch.inference_mode():
        assert float((random_init(test_split.x) - got).abs().max()) > 1e-2


def test_fixed_batch_graph_validates_every_sample_of_a_split(tmp_path: Path, weights: Path, test_split) -> None:
    part = test_split.subset(10)  # 10 samples in batches of 4: the last batch is padded, the padding dropped
    art = export_onnx("mnist1d-cnn", out_dir=tmp_path, weights=weights, data=part, device="cpu", batch_size=4)
    v = art.manifest["validation"]
    assert v["batch_sizes"] == [4, 4, 2] and v["samples"] == 10 and v["accuracy"]["onnx"]["samples"] == 10


def test_weights_that_do_not_fit_are_one_line_exit_2(tmp_path: Path, weights: Path) -> None:
    with pytest.raises(InvalidInput, match=r"do not fit lenet .*missing key"):
        export_onnx("lenet", out_dir=tmp_path, weights=weights, device="cpu")
    res = CliRunner().invoke(app, ["export", "lenet", "--weights", str(weights), "-o", str(tmp_path), "--format", "onnx"])
    assert res.exit_code == 2 and "do not fit lenet" in res.output and "Traceback" not in res.output
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_data_the_model_cannot_take_is_exit_2(tmp_path: Path, weights: Path) -> None:
    res = CliRunner().invoke(app, ["export", "lenet", "--data", "mnist1d", "-o", str(tmp_path), "--format", "onnx"])
    assert res.exit_code == 2 and "the model takes 1x28x28" in " ".join(res.output.split()), res.output
    res = CliRunner().invoke(app, ["export", "lenet", "--data-limit", "5", "-o", str(tmp_path), "--format", "onnx"])
    assert res.exit_code == 2 and "--data-limit needs --data" in res.output


# ------------------------------------------------------------------------------------------ never vacuous
def test_zero_output_model_is_inconclusive_never_passed(tmp_path: Path) -> None:
    torch.manual_seed(0)
    art = export_module(ZeroHead().eval(), _spec("zero"), out_dir=tmp_path, device="cpu")
    v = art.manifest["validation"]
    assert v["status"] == "inconclusive" and v["passed"] is None and v["max_abs_error"] == 0.0
    assert "all zeros" in v["reason"] and "--weights" in v["advice"] and "--data" in v["advice"]
    assert load_onnx_artifact(art.path).manifest == art.manifest  # written: nothing wrong was found


def test_output_independent_of_the_input_is_inconclusive(tmp_path: Path) -> None:
    torch.manual_seed(0)
    art = export_module(IgnoresInput().eval(), _spec("const"), out_dir=tmp_path, device="cpu", dynamic_batch=True)
    v = art.manifest["validation"]
    assert v["status"] == "inconclusive" and "same for every input" in v["reason"]


def test_fp16_underflow_fails_and_fp32_of_the_same_model_passes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    with pytest.raises(ValidationError, match=r"all zeros.*below fp16's smallest normal value"):
        export_module(Tiny().eval(), _spec("tiny"), out_dir=tmp_path, device="cpu", precision="fp16")
    failed = json.loads((tmp_path / "tiny-fp16.failed.onnx.json").read_text())
    assert failed["validation"]["status"] == "failed" and not (tmp_path / "tiny-fp16.onnx").exists()
    torch.manual_seed(0)
    ok = export_module(Tiny().eval(), _spec("tiny"), out_dir=tmp_path, device="cpu")
    assert ok.manifest["validation"]["status"] == "passed"  # fp32 checks 1e-9 outputs relative to their scale


def test_cli_prints_the_verdict_and_strict_makes_inconclusive_exit_1(tmp_path: Path) -> None:
    mod = tmp_path / "dk_zero_head.py"
    mod.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Zero(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(12, 3)\n"
        "        nn.init.zeros_(self.fc.weight)\n"
        "        nn.init.zeros_(self.fc.bias)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1))\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        args = ["export", "dk_zero_head:Zero", "--input-shape", "3x4", "--num-classes", "3", "--format", "onnx",
                "-o", str(tmp_path / "out")]
        res = CliRunner().invoke(app, args)
        text = " ".join(res.output.split())
        assert res.exit_code == 0, res.output
        assert "validation inconclusive" in text and "all zeros" in text and "to validate:" in text
        assert "validation passed" not in text
        strict = CliRunner().invoke(app, [*args, "--strict"])
        assert strict.exit_code == 1 and "--strict: the validation is inconclusive" in " ".join(strict.output.split())
        assert (tmp_path / "out" / "dk_zero_head-Zero.onnx").exists()  # written: inconclusive is not failed
    finally:
        sys.path.remove(str(tmp_path))
