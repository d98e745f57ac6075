"""The bench cache under faults: a crash before the record, a corrupt or foreign record, a torn artifact, a
cache folder that cannot be written. Each must end with a valid artifact, made again if needed, never a cell
that fails forever. (Exports use the TorchScript exporter here for speed; the cache logic is the same.)"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import deploykit.export as export_api
from deploykit import _io
from deploykit.bench.cache import RECORD, BenchCache
from deploykit.bench.cells import CellContext, cached_onnx
from deploykit.models import ModelSpec


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.fixture(autouse=True)
def _fast_export(monkeypatch):
    monkeypatch.setattr(export_api, "export_module",
                        functools.partial(export_api.export_module, exporter="torchscript"))


def _ctx(root: Path) -> CellContext:
    spec = ModelSpec(name="tiny", family="test", source="tests", input_shape=(8,), num_classes=3)
    return CellContext(model_name="tiny", spec=spec, module=Tiny().eval(), precision="fp32", batch=1,
                       device=torch.device("cpu"), cache=BenchCache(root))


class Crash(BaseException):
    pass


def test_a_crash_before_the_record_is_made_again_then_cached(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(BenchCache, "record", staticmethod(lambda folder, data: (_ for _ in ()).throw(Crash())))
    with pytest.raises(Crash):
        cached_onnx(_ctx(tmp_path), "fp32")
    monkeypatch.undo()
    monkeypatch.setattr(export_api, "export_module",
                        functools.partial(export_api.export_module, exporter="torchscript"))
    art, hit = cached_onnx(_ctx(tmp_path), "fp32")  # no record: exported again, complete
    assert not hit and export_api.load_onnx_artifact(art.path).path == art.path
    art2, hit2 = cached_onnx(_ctx(tmp_path), "fp32")
    assert hit2 and art2.path == art.path


def test_a_crash_inside_the_pair_swap_is_made_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_io, "_pair_step", lambda s: (_ for _ in ()).throw(Crash()) if s == "before-rename" else None)
    with pytest.raises(Crash):
        cached_onnx(_ctx(tmp_path), "fp32")
    monkeypatch.setattr(_io, "_pair_step", lambda s: None)
    art, hit = cached_onnx(_ctx(tmp_path), "fp32")
    assert not hit and export_api.load_onnx_artifact(art.path).manifest["sha256"]


@pytest.mark.parametrize("content", [b"\xff\xfe", b"[1, 2]", b"[" * 50000 + b"]" * 50000, b'{"path": 3}', b"{"])
def test_a_corrupt_record_is_ignored_and_rewritten(tmp_path: Path, content: bytes) -> None:
    art, _ = cached_onnx(_ctx(tmp_path), "fp32")
    (art.path.parent / RECORD).write_bytes(content)
    art2, hit = cached_onnx(_ctx(tmp_path), "fp32")
    assert not hit and art2.path == art.path
    assert json.loads((art.path.parent / RECORD).read_text())["path"] == str(art.path)


def test_a_torn_artifact_behind_a_record_is_made_again(tmp_path: Path) -> None:
    art, _ = cached_onnx(_ctx(tmp_path), "fp32")
    art.path.write_bytes(art.path.read_bytes()[:100])  # truncated behind the cache's back
    art2, hit = cached_onnx(_ctx(tmp_path), "fp32")
    assert not hit and export_api.load_onnx_artifact(art2.path).manifest["sha256"] == art.manifest["sha256"]


def test_a_cache_that_cannot_be_written_falls_back_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "onnx").write_text("a file in the way")
    ctx = _ctx(tmp_path)
    art, hit = cached_onnx(ctx, "fp32")
    assert not hit and export_api.load_onnx_artifact(art.path)
    assert not str(art.path).startswith(str(tmp_path))
    assert len(ctx.notes) == 1 and "not writable" in ctx.notes[0] and "fresh temporary folder" in ctx.notes[0]
    assert (tmp_path / "onnx").read_text() == "a file in the way"


def test_a_read_only_cache_folder_falls_back(tmp_path: Path, monkeypatch) -> None:
    real = _io.make_temporary

    def read_only(target, suffix=None):
        if str(target).startswith(str(tmp_path)):
            raise _io.ArtifactError(f"cannot write {target}: read-only file system")
        return real(target, suffix)

    monkeypatch.setattr("deploykit.bench.cache.make_temporary", read_only)
    monkeypatch.setattr(_io, "make_temporary", read_only)
    ctx = _ctx(tmp_path)
    art, _ = cached_onnx(ctx, "fp32")
    assert os.path.isfile(art.path) and not str(art.path).startswith(str(tmp_path))
    assert "read-only" in ctx.notes[0]
