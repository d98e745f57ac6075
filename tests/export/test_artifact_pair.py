"""The ONNX file and its manifest are one artifact: a crash at any step leaves the old pair or the new one.

Crashes are injected between the steps of ``deploykit._io.commit_pair`` (``_pair_step``), a full disk by
making a write fail; concurrent writers are two real processes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from torch import nn

from deploykit import _io
from deploykit.errors import ArtifactError
from deploykit.export import export_module, load_onnx_artifact
from deploykit.export.onnx import manifest_path_for
from deploykit.models import ModelSpec

REPO = Path(__file__).resolve().parents[2]


class Tiny(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


SPEC = ModelSpec(name="tiny", family="test", source="tests", input_shape=(1, 6, 6), num_classes=3)


def _export(folder: Path, seed: int) -> str:
    """Export weights ``seed``; return the file's sha256 (fast: TorchScript exporter, one validation batch)."""
    art = export_module(Tiny(seed), SPEC, out_dir=folder, device="cpu", exporter="torchscript",
                        validate_batches=(1,))
    return art.manifest["sha256"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _assert_complete_pair(folder: Path, expected_sha: str) -> None:
    art = load_onnx_artifact(folder / "tiny.onnx")  # checks size and sha256 against the manifest
    assert art.manifest["sha256"] == expected_sha == _sha(folder / "tiny.onnx")
    sess = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: torch.zeros(1, 1, 6, 6).numpy()})
    assert out.shape == (1, 3)
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]


class Crash(BaseException):
    """Stands in for kill -9 at a step (a BaseException: nothing catches it on the way out)."""


@pytest.mark.parametrize(
    ("step", "survivor"),
    [("before-manifest", "old"), ("before-rename", "old"), ("after-rename", "new"), ("done", "new")],
)
def test_a_crash_at_every_step_leaves_one_complete_pair(tmp_path: Path, monkeypatch, step, survivor) -> None:
    old_sha = _export(tmp_path, seed=1)

    def crash(name: str) -> None:
        if name == step:
            raise Crash(name)

    monkeypatch.setattr(_io, "_pair_step", crash)
    with pytest.raises(Crash):
        _export(tmp_path, seed=2)
    monkeypatch.undo()
    new_sha = _export(tmp_path / "reference", seed=2)
    assert new_sha != old_sha
    _assert_complete_pair(tmp_path, old_sha if survivor == "old" else new_sha)
    assert _visible(tmp_path) == ["reference", "tiny.onnx", "tiny.onnx.json"]
    # and the next export after the crash completes the new pair
    assert _export(tmp_path, seed=2) == new_sha
    _assert_complete_pair(tmp_path, new_sha)
    manifest = json.loads(manifest_path_for(tmp_path / "tiny.onnx").read_text())
    assert _io.PREVIOUS_KEY not in manifest


def test_a_crash_on_the_first_export_leaves_nothing_loadable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_io, "_pair_step", lambda name: (_ for _ in ()).throw(Crash(name)) if name == "before-rename" else None)
    with pytest.raises(Crash):
        _export(tmp_path, seed=1)
    monkeypatch.undo()
    with pytest.raises(ArtifactError, match="not found"):
        load_onnx_artifact(tmp_path / "tiny.onnx")
    sha = _export(tmp_path, seed=1)
    _assert_complete_pair(tmp_path, sha)


def test_a_full_disk_at_the_manifest_keeps_the_old_pair(tmp_path: Path, monkeypatch) -> None:
    old_sha = _export(tmp_path, seed=1)
    real_write = _io.atomic_write_bytes

    def full(path, data):  # the manifest's write hits ENOSPC
        if str(path).endswith(".onnx.json"):
            with _io.atomic_path(path):
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(_io, "atomic_write_bytes", full)
    with pytest.raises(ArtifactError, match="no space left"):
        _export(tmp_path, seed=2)
    monkeypatch.undo()
    _assert_complete_pair(tmp_path, old_sha)
    assert _visible(tmp_path) == ["tiny.onnx", "tiny.onnx.json"]


def test_a_full_disk_writing_the_graph_keeps_the_old_pair(tmp_path: Path, monkeypatch) -> None:
    old_sha = _export(tmp_path, seed=1)
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ArtifactError, match="No space left"):
        _export(tmp_path, seed=2)
    monkeypatch.setattr(os, "fsync", real_fsync)
    _assert_complete_pair(tmp_path, old_sha)


def test_a_pair_whose_file_was_swapped_is_refused(tmp_path: Path) -> None:
    _export(tmp_path / "a", seed=1)
    _export(tmp_path / "b", seed=2)
    os.replace(tmp_path / "b" / "tiny.onnx", tmp_path / "a" / "tiny.onnx")
    with pytest.raises(ArtifactError, match="sha256 differs"):
        load_onnx_artifact(tmp_path / "a" / "tiny.onnx")


def test_a_superseded_manifest_does_not_vouch_for_a_third_file(tmp_path: Path, monkeypatch) -> None:
    _export(tmp_path, seed=1)
    monkeypatch.setattr(_io, "_pair_step", lambda n: (_ for _ in ()).throw(Crash(n)) if n == "after-rename" else None)
    with pytest.raises(Crash):
        _export(tmp_path, seed=2)
    monkeypatch.undo()
    _export(tmp_path / "other", seed=3)
    os.replace(tmp_path / "other" / "tiny.onnx", tmp_path / "tiny.onnx")
    with pytest.raises(ArtifactError, match="sha256 differs"):
        load_onnx_artifact(tmp_path / "tiny.onnx")


def test_two_concurrent_exporters_leave_a_consistent_pair(tmp_path: Path) -> None:
    """Two real processes export different weights to the same target at once, several times each: both exit 0
    and the pair left is one of theirs, whole."""
    script = textwrap.dedent(
        f"""
        import sys, time, torch
        from deploykit import _io
        _io._pair_step = lambda step: time.sleep(0.05)  # widen the window between steps
        sys.path.insert(0, {str(REPO / 'tests' / 'export')!r})
        from test_artifact_pair import _export
        from pathlib import Path
        torch.set_num_threads(1)
        seed = int(sys.argv[1])
        for _ in range(4):
            print(_export(Path(sys.argv[2]), seed), flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(seed), str(tmp_path)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    shas = {line for out, _ in outs for line in out.split()}
    assert len(shas) == 2
    art = load_onnx_artifact(tmp_path / "tiny.onnx")
    assert art.manifest["sha256"] in shas
    assert _visible(tmp_path) == ["tiny.onnx", "tiny.onnx.json"]
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_writer_waits_for_the_folder_lock(tmp_path: Path) -> None:
    """commit_pair takes the folder's exclusive lock: while another holder has it, the swap does not start."""
    import threading

    tmp = tmp_path / ".x.bin.1.abcdefgh.tmp.bin"
    tmp.write_bytes(b"new")
    manifest = {"sha256": hashlib.sha256(b"new").hexdigest(), "bytes": 3}
    done = threading.Event()

    def writer() -> None:
        _io.commit_pair(tmp, tmp_path / "x.bin", tmp_path / "x.bin.json", manifest, sha_key="sha256",
                        size_key="bytes")
        done.set()

    with _io.folder_lock(tmp_path):
        t = threading.Thread(target=writer)
        t.start()
        assert not done.wait(0.5)
        assert not (tmp_path / "x.bin").exists() and not (tmp_path / "x.bin.json").exists()
    assert done.wait(10)
    t.join()
    assert (tmp_path / "x.bin").read_bytes() == b"new"
    assert json.loads((tmp_path / "x.bin.json").read_text()) == manifest
