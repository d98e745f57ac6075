"""The roofline maths in closed form, on a device with round ceilings (1 TFLOP/s matrix, 0.5 TFLOP/s vector,
100 GB/s: ridge 10 FLOP/B)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deploykit.profile import custom_device, profile_module, roofline

DEVICE = custom_device(1.0, 100.0, vector_tflops=0.5)


def test_each_bound_time_share_and_floor_in_closed_form() -> None:
    # Linear(64 -> 64, no bias) at batch 32: 32*64*64 = 131,072 MACs = 262,144 FLOPs; traffic
    # (32*64 in + 64*64 weight + 32*64 out) * 4 B = 32,768 B -> 8 FLOP/B < ridge 10: memory-bound,
    # time = 32,768 / 1e11 = 327.68 ns (compute: 262,144 / 1e12 = 262.144 ns).
    # ReLU (not in place) on 32x64: 2,048 FLOPs on the vector peak (4.096 ns); traffic 2 * 8,192 B = 163.84 ns:
    # memory-bound. Flatten is a view: no work, bound "-".
    # Linear(64 -> 2048, no bias) at batch 32: 4,194,304 MACs = 8,388,608 FLOPs; traffic
    # (2,048 + 131,072 + 65,536) * 4 = 794,624 B -> 10.56 FLOP/B > 10: compute-bound, 8,388.608 ns.
    net = nn.Sequential(nn.Linear(64, 64, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2048, bias=False))
    prof = profile_module(net, torch.zeros(32, 64, device="meta"), name="toy")
    roof = roofline(prof, DEVICE)
    rows = roof.by_name()
    assert roof.ridge_flop_per_byte == pytest.approx(10.0)

    fc0, relu, flat, fc3 = rows["0"], rows["1"], rows["2"], rows["3"]
    assert (fc0.bound, relu.bound, flat.bound, fc3.bound) == ("memory", "memory", "-", "compute")
    assert fc0.compute_time_s == pytest.approx(262_144e-12)
    assert fc0.memory_time_s == fc0.time_s == pytest.approx(32_768 / 1e11)
    assert relu.peak_flops == 0.5e12 and relu.compute_time_s == pytest.approx(2_048 / 0.5e12)
    assert relu.time_s == pytest.approx(16_384 / 1e11)
    assert flat.time_s == 0.0
    assert fc3.peak_flops == 1e12 and fc3.time_s == fc3.compute_time_s == pytest.approx(8_388_608e-12)
    assert fc3.memory_time_s == pytest.approx(794_624 / 1e11)

    floor = (32_768 + 16_384) / 1e11 + 8_388_608e-12
    assert roof.floor_s == pytest.approx(floor)
    assert fc3.share == pytest.approx(8_388_608e-12 / floor)
    assert roof.memory_bound_share == pytest.approx((32_768 + 16_384) / 1e11 / floor)
    assert sum(r.share for r in roof.layers) == pytest.approx(1.0)


def test_halving_the_bytes_halves_the_memory_term_only() -> None:
    net = nn.Sequential(nn.Linear(64, 64, bias=False))
    x = torch.zeros(32, 64, device="meta")
    fp32 = roofline(profile_module(net, x, dtype="fp32"), DEVICE).layers[0]
    fp16 = roofline(profile_module(net, x, dtype="fp16"), DEVICE).layers[0]
    assert fp16.memory_time_s == pytest.approx(fp32.memory_time_s / 2)
    assert fp16.compute_time_s == pytest.approx(fp32.compute_time_s)  # one peak for every precision here


def test_h200_preset_is_the_h100s_compute_with_h200_memory() -> None:
    from deploykit.profile.devices import get_device

    h100, h200 = get_device("h100"), get_device("H200-SXM")
    assert h200.key == "h200" and h200.bandwidth_gbs == 4800  # 4.8 TB/s HBM3e
    # dense tensor figures: the datasheet's sparse 1,979 (FP16/BF16), 989 (TF32), 3,958 (INT8) halved
    assert h200.matrix_tflops == h100.matrix_tflops
    assert h200.peak_flops("fp16", True) == pytest.approx(989.4e12)
    assert h200.vector_tflops == h100.vector_tflops
    # more bandwidth for the same compute: the ridge point moves left by 3350 / 4800
    assert h200.ridge_point("fp16") == pytest.approx(h100.ridge_point("fp16") * 3350 / 4800)
