"""The TensorRT engine and its manifest are one artifact: a crash at any step of writing them leaves the old
pair or the new one. Built with the FAKE TensorRT (tests/fakes/fake_tensorrt.py): this checks deploykit's file
handling only, nothing about TensorRT."""

from __future__ import annotations

import hashlib

import pytest
from fakes.fake_tensorrt import install_fake_tensorrt, make_tiny_onnx

from deploykit import _io
from deploykit.export.tensorrt import build_engine, load_engine_manifest


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(tmp_path / "cache"))


class Crash(BaseException):
    """Stands in for kill -9 at a step."""


@pytest.mark.parametrize(
    ("step", "survivor"),
    [("before-manifest", "old"), ("before-rename", "old"), ("after-rename", "new"), ("done", "new")],
)
def test_a_crash_at_every_step_leaves_one_complete_engine_pair(tmp_path, monkeypatch, step, survivor) -> None:
    install_fake_tensorrt(monkeypatch)
    onnx_path = make_tiny_onnx(tmp_path / "t.onnx")
    old = build_engine(onnx_path, validate=False, max_batch=4)
    old_sha = old.manifest["engine_sha256"]

    def crash(name: str) -> None:
        if name == step:
            raise Crash(name)

    monkeypatch.setattr(_io, "_pair_step", crash)
    with pytest.raises(Crash):
        build_engine(onnx_path, validate=False, max_batch=8)
    monkeypatch.setattr(_io, "_pair_step", lambda name: None)
    (tmp_path / "ref").mkdir()
    ref = build_engine(make_tiny_onnx(tmp_path / "ref" / "t.onnx"), validate=False, max_batch=8)
    new_sha = ref.manifest["engine_sha256"]
    assert new_sha != old_sha
    manifest = load_engine_manifest(old.path, check=False)  # checks size and sha256
    expected = old_sha if survivor == "old" else new_sha
    assert manifest["engine_sha256"] == expected == hashlib.sha256(old.path.read_bytes()).hexdigest()
    assert manifest["profile"] == (old if survivor == "old" else ref).manifest["profile"]
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
