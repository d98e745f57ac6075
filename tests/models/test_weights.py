"""Loading weights: safetensors and torch files round trip, checkpoints unwrap, strict errors list the keys,
pickled code is refused, torchvision names resolve through torch hub's cache and fail offline in one line."""

from __future__ import annotations

import hashlib
import os
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch

from deploykit.errors import ArtifactError, InvalidInput
from deploykit.models import create_model
from deploykit.models.weights import WeightsRecord, load_weights, read_state_dict, save_weights


def _trained_like(name: str = "mnist1d-cnn", seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    model, _ = create_model(name, device="cpu")
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_round_trip_loads_every_tensor(tmp_path: Path) -> None:
    src = _trained_like()
    path = tmp_path / "w.safetensors"
    saved = save_weights(src, path, metadata={"model": "mnist1d-cnn"})
    assert saved.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    torch.manual_seed(2)  # a different initialisation, overwritten by the load
    model, spec = create_model("mnist1d-cnn", device="cpu", weights=path)
    assert _same(model, src)
    rec = spec.weights
    assert rec is not None and rec.format == "safetensors" and rec.sha256 == saved.sha256
    assert (rec.tensors, rec.loaded, rec.missing, rec.unexpected, rec.mismatched) == (8, 8, 0, 0, 0)
    assert spec.to_dict()["weights"]["sha256"] == saved.sha256
    assert WeightsRecord.from_dict(rec.to_dict()) == rec


def test_torch_checkpoint_is_unwrapped_and_module_prefix_stripped(tmp_path: Path) -> None:
    src = _trained_like()
    path = tmp_path / "ckpt.pt"
    torch.save(
        {"epoch": 7, "optimizer": {"lr": 0.1}, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}},
        path,
    )
    model = _trained_like(seed=3)
    rec = load_weights(model, path)
    assert _same(model, src)
    assert rec.format == "torch" and rec.loaded == 8
    assert rec.notes == ("checkpoint entry 'state_dict' unwrapped", "prefix 'module.' stripped")


def test_plain_state_dict_under_model_key(tmp_path: Path) -> None:
    src = _trained_like()
    path = tmp_path / "m.pth"
    torch.save({"model": src.state_dict(), "step": 3}, path)
    model = _trained_like(seed=4)
    load_weights(model, path)
    assert _same(model, src)


def test_strict_error_lists_first_keys_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_weights(_trained_like("mnist1d-cnn"), path)
    model, _ = create_model("lenet", device="cpu")
    with pytest.raises(InvalidInput) as err:
        load_weights(model, path, model_name="lenet")
    msg = str(err.value)
    assert "\n" not in msg and err.value.exit_code == 2
    assert "do not fit lenet (8 tensors in the file, 10 in the model)" in msg
    assert "6 missing keys (fc1.weight, fc1.bias, fc2.weight, fc2.bias, fc3.weight (+1 more))" in msg
    # safetensors stores its keys sorted
    assert "4 unexpected keys (conv3.bias, conv3.weight, linear.bias, linear.weight)" in msg
    assert "4 shape mismatches (conv1.bias (file 25, model 6), conv1.weight (file 25x1x5, model 6x1x5x5)," in msg


def test_strict_false_loads_what_fits_and_counts_the_rest(tmp_path: Path) -> None:
    src = _trained_like()
    state = dict(src.state_dict())
    state.pop("linear.bias")
    state["extra.weight"] = torch.zeros(3)
    state["conv1.bias"] = torch.zeros(7)
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    model = _trained_like(seed=5)
    before = model.linear.bias.clone()
    rec = load_weights(model, path, strict=False)
    assert (rec.loaded, rec.missing, rec.unexpected, rec.mismatched) == (6, 1, 1, 1)
    assert torch.equal(model.conv2.weight, src.conv2.weight)
    assert torch.equal(model.linear.bias, before)  # missing: left as it was
    with pytest.raises(InvalidInput, match=r"1 missing key \(linear\.bias\); 1 unexpected key"):
        load_weights(_trained_like(seed=5), path)


def test_pickled_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # what a malicious checkpoint does: run a command when unpickled
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Payload()}, path)
    with pytest.raises(InvalidInput, match=r"refusing to load .*evil\.pt: .*GLOBAL posix\.system.*holds Python objects or code"):
        load_weights(_trained_like(), path)
    assert not marker.exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(InvalidInput, match="weights_only=True"):
        read_state_dict(raw)
    assert not marker.exists()


def test_whole_module_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(_trained_like(), path)  # a pickled nn.Module: classes, not tensors
    with pytest.raises(InvalidInput, match="refusing to load"):
        load_weights(_trained_like(), path)


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        ("missing", ArtifactError, "weights file not found"),
        ("text", InvalidInput, "refusing to load .*no PyTorch file"),
        ("truncated", ArtifactError, "cannot read weights .*w.pt: "),
        ("bad-safetensors", ArtifactError, "cannot read safetensors file"),
    ],
)
def test_missing_and_corrupt_files(tmp_path: Path, content: str, error: type, match: str) -> None:
    path = tmp_path / ("w.safetensors" if content == "bad-safetensors" else "w.pt")
    if content == "text":
        path.write_bytes(b"not a checkpoint at all")
    elif content == "truncated":
        torch.save(_trained_like().state_dict(), path)
        path.write_bytes(path.read_bytes()[:1000])
    elif content == "bad-safetensors":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(error, match=match):
        load_weights(_trained_like(), path)


def test_non_tensor_checkpoint_and_nan_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(InvalidInput, match="is not a state_dict: entries epoch, lr are not tensors"):
        load_weights(_trained_like(), path)
    bad = dict(_trained_like().state_dict())
    bad["conv2.weight"] = bad["conv2.weight"].clone()
    bad["conv2.weight"][0, 0, 0] = float("nan")
    torch.save(bad, path)
    with pytest.raises(InvalidInput, match=r"non-finite values .* in conv2\.weight"):
        load_weights(_trained_like(), path)


def test_meta_device_checks_without_materialising(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(_trained_like(), path)
    model, spec = create_model("mnist1d-cnn", device="meta", weights=path)
    assert next(model.parameters()).is_meta
    assert spec.weights is not None and spec.weights.materialized is False and spec.weights.loaded == 8
    with pytest.raises(InvalidInput, match="do not fit lenet"):
        create_model("lenet", device="meta", weights=path)


def test_lazy_d2l_model_round_trip(tmp_path: Path) -> None:
    src = _trained_like("d2l-lenet")
    path = tmp_path / "d2l.safetensors"
    save_weights(src, path)
    model, _ = create_model("d2l-lenet", device="cpu", weights=path)
    assert _same(model, src)


def test_torchvision_name_needs_a_torchvision_model() -> None:
    with pytest.raises(InvalidInput, match="'DEFAULT' is a torchvision weight name, and lenet is not a torchvision model"):
        create_model("lenet", device="meta", weights="DEFAULT")


def test_torchvision_name_loads_from_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A local file where torchvision's weights API looks for IMAGENET1K_V1 (torch hub's cache): no network.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    src = _trained_like("resnet18")
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(src.state_dict(), cached)
    model, spec = create_model("resnet18", device="cpu", weights="DEFAULT")
    assert _same(model, src)
    rec = spec.weights
    assert rec is not None and rec.source == "ResNet18_Weights.IMAGENET1K_V1" and rec.format == "torchvision"
    assert rec.path == str(cached) and rec.sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    with pytest.raises(InvalidInput, match="has no torchvision weights 'IMAGENET1K_V9'; it has IMAGENET1K_V1, DEFAULT"):
        create_model("resnet18", device="meta", weights="IMAGENET1K_V9")
    with pytest.raises(InvalidInput, match=r"'VGG16_Weights\.DEFAULT' are not weights of resnet18"):
        create_model("resnet18", device="meta", weights="VGG16_Weights.DEFAULT")


def _no_network(url: str, *args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_torchvision_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    with pytest.raises(ArtifactError) as err:
        create_model("resnet18", device="meta", weights="IMAGENET1K_V1")
    msg = str(err.value)
    assert "\n" not in msg and err.value.exit_code == 2
    assert msg.startswith(
        "cannot download torchvision weights ResNet18_Weights.IMAGENET1K_V1 from "
        "https://download.pytorch.org/models/resnet18-f37072fd.pth (URLError:"
    )
    assert "this machine may be offline: fetch that file elsewhere and pass it with --weights resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg


def test_googlenet_quirks_follow_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's GoogLeNet weights carry the auxiliary heads and want transform_input=True."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    full = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    url = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.url
    cached = tmp_path / "hub" / "checkpoints" / os.path.basename(url)
    cached.parent.mkdir(parents=True)
    torch.save(full.state_dict(), cached)
    model, spec = create_model("googlenet", device="cpu", weights="IMAGENET1K_V1")
    assert model.transform_input is True and model.aux1 is None
    assert spec.weights is not None and spec.weights.unexpected == 0
    assert torch.equal(model.fc.weight, full.fc.weight)
