from __future__ import annotations

from pathlib import Path

import pytest

from deploykit.bench.ceilings import Ceilings, cache_path, load_cached
from deploykit.bench.layer_timing import LayerTimes, achieved, measure_layers
from deploykit.profile import profile_model


def test_rows_get_times_with_the_profilers_names_on_cpu() -> None:
    profile, times = measure_layers("lenet", device="cpu", iterations=3, warmup=1)
    assert [r.name for r in profile.layers] == [r.name for r in profile_model("lenet").layers]
    computing = [r.name for r in profile.layers if r.traffic_bytes]
    assert set(computing) <= set(times.layer_ms)
    assert all(times.layer_ms[n] > 0 for n in computing)
    assert times.unattributed_rows == ()
    assert times.end_to_end_ms > 0 and times.iterations == 3


def test_functional_rows_are_timed_too() -> None:
    _, times = measure_layers("d2l-resnet18", device="cpu", iterations=1, warmup=0, image_size=32)
    assert "net.b2.0/add_" in times.layer_ms


def test_achieved_closed_form() -> None:
    profile = profile_model("lenet")
    conv1 = profile.layer("conv1")
    relu1 = profile.layer("relu1")
    # 1 ms for conv1: achieved = flops / 1e-3 s; 2 ms for relu1
    times = LayerTimes("lenet", "fake", "fp32", 1, "test", 1, {"conv1": 1.0, "relu1": 2.0}, 3.0)
    ceil = Ceilings("fake", copy_gbs=100.0, matmul_tflops={"fp32": 10.0}, copy_bytes=1, matmul_n=1,
                    torch_version="x", cuda_version=None)
    got = {a.name: a for a in achieved(profile, times, ceil)}
    assert got["conv1"].achieved_tflops == pytest.approx(conv1.flops / 1e-3 / 1e12)
    assert got["conv1"].flops_fraction == pytest.approx(conv1.flops / 1e-3 / 10e12)
    assert got["conv1"].bandwidth_fraction == pytest.approx(conv1.traffic_bytes / 1e-3 / 100e9)
    assert got["relu1"].flops_fraction is None  # no MACs: no matmul ceiling applies
    assert got["relu1"].achieved_gbs == pytest.approx(relu1.traffic_bytes / 2e-3 / 1e9)
    assert times.overhead_ms == pytest.approx(0.0)


def test_ceilings_cache_round_trip(tmp_path: Path) -> None:
    c = Ceilings("NVIDIA H100 80GB HBM3", 2990.0, {"fp16": 735.0}, 1 << 30, 8192, "2.11.0", "13.0")
    path = cache_path(c.device_name, c.torch_version, tmp_path)
    assert path.parent == tmp_path / "ceilings" and " " not in path.name
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 1, "broken": true}')
    assert load_cached(path) is None
    import json

    path.write_text(json.dumps(c.to_dict()))
    assert load_cached(path) == c
    assert c.peak_flops("fp16") == 735e12 and c.peak_flops("int8") is None


@pytest.mark.gpu
def test_measure_layers_on_cuda() -> None:
    from deploykit.bench.ceilings import device_ceilings

    _, times = measure_layers("resnet18", device="cuda", dtype="fp16", iterations=5)
    assert times.layer_ms["conv1"] > 0
    assert 0 < times.layers_total_ms <= times.end_to_end_ms * 1.5
    ceil = device_ceilings()
    assert ceil.copy_gbs > 100 and ceil.matmul_tflops["fp16"] > 10
