"""The environment fingerprint names the selected GPU, never GPU 0 by default (no GPU needed: nvidia-smi and the
device properties are stood in for; the GPU test runs the real thing)."""

from __future__ import annotations

import subprocess
import types

import pytest

from deploykit import _env


def test_gpu_uuid_takes_nvidia_smis_form() -> None:
    assert _env.gpu_uuid(types.SimpleNamespace(uuid="58b6f8d2-1c2b-4d4e-9a1f-0123456789ab")) == (
        "GPU-58b6f8d2-1c2b-4d4e-9a1f-0123456789ab"
    )
    assert _env.gpu_uuid(types.SimpleNamespace(uuid="MIG-1234")) == "MIG-1234"
    assert _env.gpu_uuid(types.SimpleNamespace()) is None


def test_nvidia_smi_is_asked_about_the_device_by_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "NVIDIA H200, 580.65, 1980 MHz, 1980 MHz, 3201 MHz, 700.00 W, 31\n", "")

    monkeypatch.setattr(_env.shutil, "which", lambda exe: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(_env.subprocess, "run", run)
    got = _env._nvidia_smi("GPU-abc")
    assert "--id=GPU-abc" in seen[0]
    assert got is not None and got["name"] == "NVIDIA H200" and got["temperature.gpu"] == "31"
    # without a UUID nothing is reported rather than another GPU's clocks
    assert _env._nvidia_smi(None) is None and len(seen) == 1


@pytest.mark.gpu
def test_environment_describes_the_selected_gpu() -> None:
    import torch

    last = torch.cuda.device_count() - 1
    env = _env.environment(f"cuda:{last}")
    props = torch.cuda.get_device_properties(last)
    assert env["gpu"]["name"] == props.name and env["gpu"]["uuid"] == _env.gpu_uuid(props)
    if env["gpu"]["nvidia_smi"] is not None:
        assert env["gpu"]["nvidia_smi"]["name"] == props.name
