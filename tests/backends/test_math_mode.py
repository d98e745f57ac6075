"""fp32 math (deploykit.backends.math_mode): the flags and options that make fp32 mean IEEE fp32 on CUDA.

Flags and provider options only: these run without a GPU and check what is set, not what a GPU computes (the
numerical consequence is checked by the ``gpu`` tests of export validation and the bench sweep).
"""

from __future__ import annotations

import pytest
import torch

from deploykit.backends import math_mode
from deploykit.backends.math_mode import (
    clear_tensorrt_tf32,
    fp32_math_record,
    ort_cuda_options,
    torch_fp32_math,
    torch_math,
    true_fp32,
)

IEEE = {"matmul": "ieee", "conv": "ieee", "rnn": "ieee"}


@pytest.fixture(autouse=True)
def _restore_flags():
    saved = {op: torch._C._get_fp32_precision_getter("cuda", op) for op in ("all", "matmul", "conv", "rnn")}
    yield
    for op, value in saved.items():
        torch._C._set_fp32_precision_setter("cuda", op, value)
    # and the legacy flags must stay readable (torch raises on a legacy/new mix; torch.export reads them)
    assert isinstance(torch.backends.cudnn.allow_tf32, bool)
    assert isinstance(torch.backends.cuda.matmul.allow_tf32, bool)


def test_torch_defaults_are_tf32_for_cudnn_convolutions() -> None:
    # The reason for this module: in torch 2.14 an "fp32" cuDNN convolution is TF32 unless told otherwise.
    assert torch_fp32_math()["conv"] == "tf32"


def test_true_fp32_sets_ieee_and_restores_the_exact_previous_state() -> None:
    torch.backends.cuda.matmul.fp32_precision = "tf32"  # a user's own choice
    before = {op: torch._C._get_fp32_precision_getter("cuda", op) for op in ("matmul", "conv", "rnn")}
    with true_fp32() as state:
        assert state == IEEE == torch_fp32_math()
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert {op: torch._C._get_fp32_precision_getter("cuda", op) for op in ("matmul", "conv", "rnn")} == before
    assert torch_fp32_math()["matmul"] == "tf32"


def test_legacy_flags_stay_readable_inside_the_context() -> None:
    # torch.export and dynamo read the legacy flags: an export or a compile inside true_fp32 (the bench sweep on
    # CUDA runs every cell in it) must not meet "a mix of the legacy and new APIs"
    with true_fp32() as state:
        assert state == IEEE
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is False
    with torch_math(tf32=True) as state:
        assert state == {"matmul": "tf32", "conv": "tf32", "rnn": "tf32"}
        assert torch.backends.cudnn.allow_tf32 is True


def test_restored_legacy_flags_stay_readable() -> None:
    # Mixing the legacy and new APIs makes torch raise when a legacy flag is read; restoring must not leave that.
    with true_fp32():
        pass
    assert torch.backends.cudnn.allow_tf32 is True
    assert torch.backends.cuda.matmul.allow_tf32 is False


def test_legacy_false_reads_as_ieee() -> None:
    torch.backends.cudnn.allow_tf32 = False
    try:
        assert torch_fp32_math()["conv"] == "ieee"
    finally:
        # back through the legacy switch too: restoring only the new-API strings would leave a mix that makes
        # every later legacy read raise -- torch.export reads one, and the exports of later tests would fail
        torch.backends.cudnn.allow_tf32 = True


def test_tf32_on_request_and_restored_after_an_error() -> None:
    with pytest.raises(RuntimeError), torch_math(tf32=True) as state:
        assert state == {"matmul": "tf32", "conv": "tf32", "rnn": "tf32"}
        raise RuntimeError("boom")
    assert torch_fp32_math()["matmul"] == "ieee"


def test_ort_and_tensorrt_switches() -> None:
    for p in ("fp32", "fp16", "bf16"):
        assert ort_cuda_options(p) == {"use_tf32": "0"}
    from tests.fakes.fake_tensorrt import FakeTensorRT

    for version in ("10.13.0.35", "11.1.0.1"):
        trt = FakeTensorRT(version)
        config = trt.Builder(None).create_builder_config()
        assert "TF32" in config.flags  # TensorRT's default
        clear_tensorrt_tf32(config, trt)
        assert "TF32" not in config.flags


def test_record_says_what_fp32_meant() -> None:
    with true_fp32():
        rec = fp32_math_record("cuda:0")
    assert rec["policy"] == math_mode.FP32_MATH == "ieee"
    assert rec["torch"] == IEEE and rec["onnxruntime_cuda"] == {"use_tf32": "0"}
    assert "TF32 cleared" in rec["tensorrt"]
    assert fp32_math_record("cpu")["device_type"] == "cpu"
