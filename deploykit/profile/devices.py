"""Roofline device presets: peak FLOP/s per precision and DRAM bandwidth, with their sources.

Two peaks per precision: ``matrix`` for work that runs on tensor cores / matrix units (convolution, linear,
matmul: rows with MACs) and ``vector`` for everything else (element-wise, normalisation, pooling) on the
CUDA cores. All tensor-core figures are **dense** (the datasheets' headline numbers with 2:4 sparsity are
halved). ``None`` means the device has no such unit for that precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from deploykit.errors import InvalidInput
from deploykit.precision import Precision

#: The keys of the peak tables: every :class:`~deploykit.precision.Precision` has one (``peak_key``).
PRECISIONS = tuple(dict.fromkeys(p.peak_key for p in Precision))


@dataclass(frozen=True)
class DevicePreset:
    """A device's ceilings. TFLOP/s (TOPS for int8) and GB/s (10^9 bytes per second)."""

    key: str
    name: str
    bandwidth_gbs: float
    matrix_tflops: Mapping[str, float | None]
    vector_tflops: Mapping[str, float | None]
    source: str
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())

    def peak_flops(self, precision: str, matrix: bool) -> float:
        """Peak FLOP/s for ``precision`` on the matrix units (``matrix=True``) or the vector units."""
        key = Precision.parse(precision).peak_key
        table = self.matrix_tflops if matrix else self.vector_tflops
        value = table.get(key)
        if value is None:
            raise InvalidInput(f"{self.name} has no {precision} support; choose another --dtype")
        return value * 1e12

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_gbs * 1e9

    def ridge_point(self, precision: str) -> float:
        """FLOP per byte at which the matrix roof meets the bandwidth roof."""
        return self.peak_flops(precision, True) / self.bandwidth_bytes_per_s


def _ampere_consumer(sms: int, boost_ghz: float) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Peaks of a GA10x GPU from its SM count and boost clock.

    Per SM and clock (NVIDIA Ampere GA102 whitepaper, table 9, RTX 3090 column divided by 82 SMs x 1.695
    GHz, e.g. 71 TFLOP/s / (82 x 1.695e9) = 511): 256 FP32 FLOP, 512 dense FP16/BF16 tensor FLOP with FP32
    accumulate (PyTorch's default; 1024 with FP16 accumulate), 256 TF32 tensor FLOP, 2048 dense INT8 tensor
    OPS; FP16 on the CUDA cores runs at the FP32 rate.
    """
    per_clock = sms * boost_ghz * 1e-3  # TFLOP/s per FLOP/clock/SM
    fp32 = 256 * per_clock
    matrix: dict[str, float | None] = {"fp32": fp32, "tf32": 256 * per_clock, "fp16": 512 * per_clock,
                                       "bf16": 512 * per_clock, "int8": 2048 * per_clock}
    vector: dict[str, float | None] = {"fp32": fp32, "tf32": fp32, "fp16": fp32, "bf16": fp32, "int8": fp32}
    return matrix, vector


_3050_MATRIX, _3050_VECTOR = _ampere_consumer(sms=16, boost_ghz=1.74)

PRESETS: dict[str, DevicePreset] = {
    p.key: p
    for p in (
        DevicePreset(
            key="h100",
            name="NVIDIA H100 SXM5 80GB",
            bandwidth_gbs=3350,
            matrix_tflops={"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "int8": 1978.9},
            vector_tflops={"fp32": 66.9, "tf32": 66.9, "fp16": 133.8, "bf16": 133.8, "int8": 66.9},
            source="NVIDIA H100 Tensor Core GPU datasheet (SXM5) and NVIDIA H100 (Hopper) architecture "
            "whitepaper, table 3; dense tensor figures (sparse / 2)",
            aliases=("h100-sxm", "h100-sxm5"),
        ),
        DevicePreset(
            key="h200",
            name="NVIDIA H200 SXM 141GB",
            bandwidth_gbs=4800,
            matrix_tflops={"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4, "int8": 1978.9},
            vector_tflops={"fp32": 66.9, "tf32": 66.9, "fp16": 133.8, "bf16": 133.8, "int8": 66.9},
            source="NVIDIA H200 Tensor Core GPU datasheet / product page, H200 SXM column: 141 GB HBM3e at "
            "4.8 TB/s, FP32 67 TFLOPS, TF32 tensor 989, BF16/FP16 tensor 1,979, INT8 tensor 3,958 TOPS (tensor "
            "figures with sparsity, halved here); the same GH100 die and clocks as the H100 SXM5 (so the same "
            "compute peaks, to the H100 whitepaper's precision), only the memory differs",
            notes="the H200 NVL (PCIe) has the same memory and lower clocks: not this preset",
            aliases=("h200-sxm", "h200-sxm5"),
        ),
        DevicePreset(
            key="h100-measured",
            name="NVIDIA H100 80GB (ceilings measured on the lent machine)",
            bandwidth_gbs=2990,
            matrix_tflops={"fp32": 52.0, "tf32": 380.0, "fp16": 735.0, "bf16": 793.0, "int8": None},
            vector_tflops={"fp32": 66.9, "tf32": 66.9, "fp16": 133.8, "bf16": 133.8, "int8": 66.9},
            source="measured 2026-11-22 on the project's lent H100: device-to-device copy (bytes read + "
            "written) and 8192^3 torch.matmul per dtype; vector peaks from the H100 datasheet",
            notes="what PyTorch kernels reach, not the datasheet",
        ),
        DevicePreset(
            key="a100",
            name="NVIDIA A100 80GB SXM",
            bandwidth_gbs=2039,
            matrix_tflops={"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0, "int8": 624.0},
            vector_tflops={"fp32": 19.5, "tf32": 19.5, "fp16": 78.0, "bf16": 39.0, "int8": 19.5},
            source="NVIDIA A100 Tensor Core GPU datasheet (80GB SXM) and NVIDIA A100 whitepaper, table 1; "
            "dense tensor figures",
            aliases=("a100-80gb",),
        ),
        DevicePreset(
            key="l4",
            name="NVIDIA L4",
            bandwidth_gbs=300,
            matrix_tflops={"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0, "int8": 242.5},
            vector_tflops={"fp32": 30.3, "tf32": 30.3, "fp16": 30.3, "bf16": 30.3, "int8": 30.3},
            source="NVIDIA L4 Tensor Core GPU datasheet; dense tensor figures (sparse / 2); Ada runs FP16 on "
            "the CUDA cores at the FP32 rate (Ada Lovelace architecture whitepaper)",
        ),
        DevicePreset(
            key="t4",
            name="NVIDIA T4",
            bandwidth_gbs=320,
            matrix_tflops={"fp32": 8.1, "tf32": None, "fp16": 65.0, "bf16": None, "int8": 130.0},
            vector_tflops={"fp32": 8.1, "tf32": None, "fp16": 16.2, "bf16": None, "int8": 8.1},
            source="NVIDIA T4 Tensor Core GPU datasheet (FP32 8.1, mixed FP16/FP32 65, INT8 130 TOPS, 320 GB/s); "
            "Turing has no TF32 or BF16; FP16 on CUDA cores at 2x FP32 (Turing architecture whitepaper)",
        ),
        DevicePreset(
            key="rtx4090",
            name="NVIDIA GeForce RTX 4090",
            bandwidth_gbs=1008,
            matrix_tflops={"fp32": 82.6, "tf32": 82.6, "fp16": 165.2, "bf16": 165.2, "int8": 660.6},
            vector_tflops={"fp32": 82.6, "tf32": 82.6, "fp16": 82.6, "bf16": 82.6, "int8": 82.6},
            source="NVIDIA Ada Lovelace GPU architecture whitepaper, appendix table (RTX 4090): FP16/BF16 "
            "tensor with FP32 accumulate 165.2 dense (330.3 with FP16 accumulate), TF32 82.6, INT8 660.6",
            aliases=("4090",),
        ),
        DevicePreset(
            key="rtx3050-laptop",
            name="NVIDIA GeForce RTX 3050 Laptop GPU (4 GB)",
            bandwidth_gbs=192,
            matrix_tflops=_3050_MATRIX,
            vector_tflops=_3050_VECTOR,
            source="GA107: 16 SMs (2048 CUDA cores), boost up to 1740 MHz at the highest TGP, 128-bit GDDR6 "
            "at 12 Gbps = 192 GB/s (NVIDIA RTX 3050 Laptop specifications); per-SM rates from the GA102 "
            "whitepaper (see _ampere_consumer)",
            notes="laptop clocks depend on the maker's power limit; peaks assume the 1740 MHz maximum boost",
            aliases=("3050", "rtx3050"),
        ),
        DevicePreset(
            key="cpu",
            name="generic 8-core AVX2 desktop CPU (assumption)",
            bandwidth_gbs=51.2,
            matrix_tflops={"fp32": 0.896, "tf32": 0.896, "fp16": 0.896, "bf16": 0.896, "int8": 3.58},
            vector_tflops={"fp32": 0.896, "tf32": 0.896, "fp16": 0.896, "bf16": 0.896, "int8": 3.58},
            source="assumption, not a datasheet: 8 cores x 3.5 GHz x 2 FMA units x 8 fp32 lanes x 2 FLOP; "
            "fp16/bf16 computed at fp32 rate; int8 VNNI 4x; dual-channel DDR4-3200 = 51.2 GB/s",
            notes="use --peak-tflops / --bandwidth-gbs for your own CPU",
        ),
    )
}

_ALIASES = {alias: key for key, p in PRESETS.items() for alias in p.aliases}


def get_device(key: str) -> DevicePreset:
    """The preset called ``key`` (case-insensitive, aliases allowed); :class:`InvalidInput` otherwise."""
    k = key.lower().replace("_", "-")
    k = _ALIASES.get(k, k)
    if k not in PRESETS:
        raise InvalidInput(f"unknown device preset {key!r}; choose from {', '.join(PRESETS)} or give --peak-tflops/--bandwidth-gbs")
    return PRESETS[k]


def custom_device(peak_tflops: float, bandwidth_gbs: float, vector_tflops: float | None = None) -> DevicePreset:
    """A device from the user's own ceilings: one matrix peak for every precision, one bandwidth."""
    if not (math.isfinite(peak_tflops) and math.isfinite(bandwidth_gbs) and peak_tflops > 0 and bandwidth_gbs > 0):
        raise InvalidInput(
            f"--peak-tflops and --bandwidth-gbs must be positive finite numbers, got {peak_tflops:g} and {bandwidth_gbs:g}"
        )
    if vector_tflops is not None and not (math.isfinite(vector_tflops) and vector_tflops > 0):
        raise InvalidInput(f"the vector peak must be a positive finite number, got {vector_tflops:g}")
    vec = vector_tflops if vector_tflops is not None else peak_tflops
    return DevicePreset(
        key="custom",
        name=f"custom ({peak_tflops:g} TFLOP/s, {bandwidth_gbs:g} GB/s)",
        bandwidth_gbs=bandwidth_gbs,
        matrix_tflops=dict.fromkeys(PRECISIONS, peak_tflops),
        vector_tflops=dict.fromkeys(PRECISIONS, vec),
        source="given on the command line",
    )
