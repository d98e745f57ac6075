from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


# ------------------------------------------------------------------------------- attribution of kernel time
def _recorded_trace() -> list:
    """A real profiler trace recorded on the CPU: two iterations of a label "outer" (a matmul) with a nested
    label "inner" (a relu), as ``prof.events()`` returns them (host events with their cpu_parent links)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    x = torch.randn(32, 32)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            with record_function("outer"):
                y = x @ x
                with record_function("inner"):
                    torch.relu(y)
    return list(prof.events())


def _as_on_cuda(events: list) -> list:
    """The same trace as the profiler records it on CUDA: kernels appended to the ops that launched them (what
    torch's kineto parsing does with the correlation ids) and a ``gpu_user_annotation`` device event per label
    occurrence, spanning from its first to its last kernel with launch gaps included."""
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import FunctionEvent

    out = list(events)
    for ev in events:
        if ev.name == "aten::mm":
            ev.append_kernel("sm90_xmma_gemm", 0, 30.0)
            ev.append_kernel("splitK_reduce", 0, 10.0)
        elif ev.name == "aten::clamp_min":
            ev.append_kernel("elementwise_kernel", 0, 5.0)
    for i, (name, span) in enumerate([("outer", 80.0), ("inner", 9.0)] * 2):
        out.append(FunctionEvent(id=10_000 + i, name=name, thread=0, start_us=0.0, end_us=span,
                                 device_type=DeviceType.CUDA, use_device="cuda", is_user_annotation=True,
                                 stack=[], input_shapes=[]))
    return out


def test_kernels_are_summed_under_each_label() -> None:
    from torch.autograd.profiler_util import EventList

    from deploykit.bench.layer_timing import attribute_time

    events = _as_on_cuda(_recorded_trace())
    got = attribute_time(events, {"outer", "inner"}, device=True)
    # per label: its own kernels only (the nested label keeps the relu's), over both iterations
    assert got == {"outer": pytest.approx(2 * 40.0), "inner": pytest.approx(2 * 5.0)}
    # The old reading: key_averages() has two rows per label (CPU and gpu_user_annotation) and the dict kept
    # the last one, here the annotation span with launch gaps (and "outer" would include "inner").
    averaged = EventList(events, use_device="cuda")
    averaged._tree_built = True  # the host tree was built by the profiler; the device rows have no children
    old: dict[str, float] = {}
    for row in averaged.key_averages():
        if row.key in ("outer", "inner"):
            old[row.key] = row.device_time_total
    assert sum(1 for row in averaged.key_averages() if row.key == "outer") == 2
    assert old == {"outer": pytest.approx(2 * 80.0), "inner": pytest.approx(2 * 9.0)} != got


def test_cpu_time_is_attributed_to_the_innermost_label() -> None:
    from deploykit.bench.layer_timing import attribute_time

    events = _recorded_trace()
    got = attribute_time(events, {"outer", "inner"}, device=False)
    by_name: dict[str, float] = {}
    for e in events:
        by_name[e.name] = by_name.get(e.name, 0.0) + e.self_cpu_time_total
    assert got["inner"] == pytest.approx(by_name["inner"] + by_name["aten::relu"] + by_name["aten::clamp_min"])
    assert got["outer"] == pytest.approx(sum(by_name.values()) - got["inner"])
    assert got["outer"] >= by_name["aten::mm"]
    assert attribute_time(events, {"no-such-label"}, device=False) == {}
