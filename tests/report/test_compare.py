"""``deploykit compare``: the summaries against independent computations (the real model's parameters, the
fully connected layers' parameters by hand, the profile's and memory model's own totals), the stage grouping,
the renderings, and the command through typer's CliRunner (plots, bad names, --measure without CUDA)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from deploykit.cli.app import app
from deploykit.errors import InvalidInput
from deploykit.models import create_model
from deploykit.profile import get_device, inference_memory, profile_model, roofline, training_memory
from deploykit.profile.compare import CompareOptions, compare_models, model_stages
from deploykit.report.compare import compare_markdown

# LeNet-5's three fully connected layers, 400-120-84-10, weights + biases (both lenet forms).
LENET_FC_PARAMS = (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
OPTIONS = CompareOptions(optimizer="sgd-momentum", memory_target="cpu")


@pytest.fixture(scope="module")
def lenets():
    return compare_models(["lenet", "d2l-lenet"], OPTIONS)


def _real_params(name: str) -> tuple[int, int]:
    """(all parameters, parameters of nn.Linear layers) of the model built on the CPU with real weights."""
    model, _ = create_model(name, device="cpu")
    fc = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters())
    return sum(p.numel() for p in model.parameters()), fc


@pytest.mark.parametrize("index,name", [(0, "lenet"), (1, "d2l-lenet")])
def test_params_and_fc_share_match_the_real_model(lenets, index: int, name: str) -> None:
    s = lenets.summaries[index]
    total, fc = _real_params(name)
    assert s.model == name
    assert s.params == total == 61706
    assert s.fc_params == fc == LENET_FC_PARAMS == 59134
    assert s.fc_param_share == pytest.approx(59134 / 61706)
    assert s.param_bytes == 4 * total


def test_macs_flops_memory_and_roofline_are_the_librarys_own_totals(lenets) -> None:
    dev = get_device("h100")
    for name, s in zip(("lenet", "d2l-lenet"), lenets.summaries, strict=True):
        prof = profile_model(name)
        assert (s.macs, s.flops, s.traffic_bytes) == (prof.total_macs, prof.total_flops, prof.total_traffic_bytes)
        roof = roofline(prof, dev)
        assert s.roofline_floor_s == pytest.approx(roof.floor_s)
        assert s.memory_bound_share == pytest.approx(roof.memory_bound_share)
        inf = inference_memory(name, target="cpu")
        assert (s.inference_peak_bytes, s.inference_total_bytes) == (inf.peak_bytes, inf.total_peak_bytes)
        tr = training_memory(name, optimizer="sgd-momentum", target="cpu")
        assert s.training_peak_bytes == tr.peak_bytes
    # LeNet-5 by hand: conv1 6@5x5 on 28x28 (pad 2), conv2 16@5x5 on 14x14 -> 10x10, then 400-120-84-10
    macs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert lenets.summaries[0].macs == lenets.summaries[1].macs == macs


def test_nin_and_vgg16_totals() -> None:
    c = compare_models(["nin", "vgg16"], CompareOptions(optimizer=None))
    nin, vgg = c.summaries
    assert (nin.params, vgg.params) == (7439608, 138357544)
    assert nin.fc_params == 0
    # torchvision VGG-16's classifier: 25088-4096-4096-1000
    assert vgg.fc_params == 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert vgg.training_peak_bytes is None and nin.findings.top_flops[0].name == "net.2.0"


def test_stages_cover_every_row_once_in_order() -> None:
    for name, expected in (("lenet", ["stage 1", "stage 2", "classifier"]),
                           ("vgg16", [f"stage {i}" for i in range(1, 6)] + ["classifier"]),
                           ("nin", [f"stage {i}" for i in range(1, 5)])):
        prof = profile_model(name)
        stages = model_stages(prof)
        assert [s.name for s in stages] == expected
        assert [r for s in stages for r in s.layers] == [r.name for r in prof.layers]
    vgg = model_stages(profile_model("vgg16"))
    assert vgg[0].resolution == (224, 224) and vgg[0].layers[-1] == "features.4"  # the max-pool closes it
    assert vgg[-1].layers[0] == "classifier.0"


def test_bad_options_raise_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="optimizer"):
        CompareOptions(optimizer="lion")
    with pytest.raises(InvalidInput, match="int8"):
        CompareOptions(dtype="int8")
    with pytest.raises(InvalidInput, match="unknown device preset"):
        compare_models(["lenet"], CompareOptions(gpu="h900"))


def test_markdown_has_one_column_per_model_and_ratios(lenets) -> None:
    text = compare_markdown(lenets)
    assert "|  | lenet | d2l-lenet |" in text
    assert "| parameters | 61.71 K | 61.71 K (1.00×) |" in text
    assert "| ↳ FC share of parameters | 95.8% | 95.8% |" in text
    assert "**d2l-lenet**" in text and "- most parameters: " in text


def test_plots_with_measured_layer_times(lenets, tmp_path: Path) -> None:
    from deploykit.report.compare import plot_comparison

    # measured times for one model only (as from --measure): its layers get hollow markers and a time panel
    measured = {"lenet": {r.name: 0.01 for r in lenets.profiles[0].layers if r.flops}}
    written = plot_comparison(lenets, tmp_path / "figs", measured_ms=measured)
    assert [w.name for w in written] == ["compare-roofline.png", "compare-lenet-layers.png", "compare-d2l-lenet-layers.png"]
    assert all(w.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for w in written)


# --- the command -------------------------------------------------------------------------------------------


def _run(*args: str):
    return CliRunner().invoke(app, ["compare", *args])


def test_cli_table() -> None:
    res = _run("lenet", "d2l-lenet")
    assert res.exit_code == 0, res.output
    for text in ("lenet", "d2l-lenet", "parameters", "FC share of parameters", "training step peak (adam)",
                 "roofline floor (h100, fp32)", "in memory-bound layers", "Findings", "most FLOPs"):
        assert text in res.output, text


def test_cli_json_and_plots(tmp_path: Path) -> None:
    res = _run("lenet", "d2l-lenet", "--format", "json", "--plot", str(tmp_path), "--gpu", "rtx3050-laptop",
               "-b", "4", "--optimizer", "none")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["settings"]["device_preset"] == "rtx3050-laptop" and doc["settings"]["batch_size"] == 4
    assert [m["model"] for m in doc["models"]] == ["lenet", "d2l-lenet"]
    assert doc["models"][0]["params"] == 61706 and doc["models"][0]["input_shape"] == [4, 1, 28, 28]
    assert doc["models"][0]["training_peak_bytes"] is None
    for name in ("compare-roofline.png", "compare-lenet-layers.png", "compare-d2l-lenet-layers.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name


def test_cli_markdown_to_file(tmp_path: Path) -> None:
    out = tmp_path / "cmp.md"
    res = _run("lenet", "d2l-lenet", "-f", "markdown", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "| parameters | 61.71 K | 61.71 K (1.00×) |" in out.read_text()


def test_cli_table_to_file(tmp_path: Path) -> None:
    out = tmp_path / "cmp.txt"
    res = _run("lenet", "d2l-lenet", "-o", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "FC share of parameters" in text and "Findings" in text and "\x1b[" not in text


@pytest.mark.parametrize("args,message", [
    (("lenet", "vgg17"), "vgg16"),           # unknown model: the closest names are suggested
    (("lenet", "d2l-lenet", "--format", "csv"), "unknown format"),
    (("lenet", "d2l-lenet", "--gpu", "h900"), "unknown device preset"),
    (("lenet", "d2l-lenet", "--optimizer", "lion"), "unknown optimizer"),
])
def test_cli_bad_input_is_one_clear_line(args: tuple[str, ...], message: str) -> None:
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cli_measure_without_cuda_fails_clearly() -> None:
    res = _run("lenet", "d2l-lenet", "--measure")
    assert res.exit_code == 3, res.output
    assert "CUDA" in res.output and "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)
