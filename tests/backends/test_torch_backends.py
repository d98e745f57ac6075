"""PyTorch-native runners: eager, channels-last, CUDA-graph replay, torch.compile."""

from __future__ import annotations

import copy

import pytest
import torch

from deploykit.backends.torch_backends import (
    COMPILE_MODES,
    ChannelsLastRunner,
    CompileRunner,
    CudaGraphRunner,
    EagerRunner,
    default_compile_mode,
    first_tensor,
    torch_dtype,
)
from deploykit.errors import BackendUnavailable, InvalidInput
from deploykit.models import create_model


@pytest.fixture(scope="module")
def lenet() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model, spec = create_model("lenet", device="cpu")
    x = torch.randn(spec.batch_shape(4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    return model, x, ref


def test_torch_dtype() -> None:
    assert torch_dtype("fp16") is torch.float16
    assert torch_dtype("bf16") is torch.bfloat16
    assert torch_dtype(torch.float32) is torch.float32
    with pytest.raises(InvalidInput, match="unknown precision 'fp8'"):
        torch_dtype("fp8")


def test_first_tensor() -> None:
    t = torch.zeros(1)
    assert first_tensor(t) is t
    assert first_tensor((t, 1)) is t
    assert first_tensor({"logits": t}) is t
    with pytest.raises(TypeError):
        first_tensor([1, 2])


def test_default_compile_mode() -> None:
    assert default_compile_mode("cuda") == "max-autotune"
    assert default_compile_mode("cpu") == "default"
    assert set(COMPILE_MODES) >= {"default", "max-autotune", "max-autotune-no-cudagraphs"}


def test_eager_runner_matches_the_model_exactly(
    lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    model, x, ref = lenet
    runner = EagerRunner(copy.deepcopy(model), "cpu")
    assert not runner.is_active
    with runner:
        assert runner.is_active
        out = runner.infer(runner.prepare_input(x))
        assert not out.requires_grad
    assert not runner.is_active
    assert torch.equal(out, ref)
    assert runner.info["cuda_graphs"] is False
    assert EagerRunner.enqueues_on_current_stream


def test_channels_last_runner_stages_nhwc_input() -> None:
    torch.manual_seed(0)
    model, spec = create_model("lenet", device="cpu", in_channels=3)  # C > 1: NCHW and NHWC strides differ
    x = torch.randn(spec.batch_shape(4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    runner = ChannelsLastRunner(copy.deepcopy(model), "cpu")
    with runner:
        staged = runner.prepare_input(x)
        assert staged.is_contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous(memory_format=torch.channels_last)
        out = runner.infer(staged)
        out2 = runner.infer(x)  # an NCHW input is converted inside infer, same result
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out2, out)
    assert runner.info["memory_format"] == "channels_last"


def test_channels_last_rejects_non_4d_input() -> None:
    model, spec = create_model("mnist1d-cnn", device="cpu")
    runner = ChannelsLastRunner(model, "cpu")
    with runner, pytest.raises(InvalidInput, match="4-D"):
        runner.prepare_input(torch.zeros(spec.batch_shape(2)))


def test_bf16_eager_is_close_to_fp32(lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, ref = lenet
    runner = EagerRunner(copy.deepcopy(model), "cpu", precision="bf16")
    with runner:
        xin = runner.prepare_input(x)
        assert xin.dtype is torch.bfloat16
        out = runner.infer(xin)
    assert out.dtype is torch.bfloat16
    assert float((out.float() - ref).abs().max() / ref.abs().max()) < 0.05


def test_deactivate_moves_the_model_back_to_cpu(
    lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    model, x, ref = lenet
    runner = EagerRunner(copy.deepcopy(model), "cpu")
    runner.activate()
    runner.deactivate()
    runner.activate()  # a runner can be activated again
    assert torch.equal(runner.infer(x), ref)
    runner.deactivate()


def test_cuda_graph_runner_needs_cuda(lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    runner = CudaGraphRunner(copy.deepcopy(lenet[0]), "cpu")
    with pytest.raises(BackendUnavailable, match="cuda-graph needs a CUDA device"):
        runner.activate()
    assert not runner.is_active


def test_eager_on_cuda_without_cuda_is_unavailable(
    lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        EagerRunner(copy.deepcopy(lenet[0]), "cuda").activate()


def test_compile_runner_rejects_unknown_mode(
    lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    with pytest.raises(InvalidInput, match="unknown compile mode"):
        CompileRunner(lenet[0], "cpu", mode="turbo")


@pytest.mark.slow
def test_compile_runner_on_cpu_matches_eager_and_uses_its_cache(
    lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, x, ref = lenet
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache = str(tmp_path)
    first = CompileRunner(copy.deepcopy(model), "cpu", cache_dir=cache)
    with first:
        out = first.infer(first.prepare_input(x))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert first.info["compile_mode"] == "default"
    assert first.info["fxgraph_cache_hits"] == 0
    assert first.info["graphs"] == 1  # one graph: no graph breaks
    second = CompileRunner(copy.deepcopy(model), "cpu", cache_dir=cache)
    with second:
        second.infer(x)
    assert second.info["fxgraph_cache_hits"] >= 1  # compiled code came from the on-disk cache


# ----------------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_replay_matches_eager(
    lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor], precision: str
) -> None:
    model, x, _ = lenet
    eager = EagerRunner(copy.deepcopy(model), "cuda", precision=precision)
    with eager:
        want = eager.infer(eager.prepare_input(x)).clone()
    runner = CudaGraphRunner(copy.deepcopy(model), "cuda", precision=precision)
    with runner:
        staged = runner.prepare_input(x)
        assert staged.data_ptr() == runner.prepare_input(x).data_ptr()  # one static buffer
        out = runner.infer(staged).clone()
        # a different input is copied into the static buffer and replayed
        x2 = (x * 2).to("cuda", torch_dtype(precision))
        out2 = runner.infer(x2).clone()
        with torch.no_grad():
            want2 = runner.model(x2)
    tol = {"fp32": 1e-4, "fp16": 1e-2}[precision]
    torch.testing.assert_close(out, want, rtol=tol, atol=tol)
    torch.testing.assert_close(out2, want2, rtol=tol, atol=tol)
    assert runner.info["cuda_graphs"] is True


@pytest.mark.gpu
def test_channels_last_on_cuda_fp16(lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, ref = lenet
    runner = ChannelsLastRunner(copy.deepcopy(model), "cuda", precision="fp16")
    with runner:
        out = runner.infer(runner.prepare_input(x)).float().cpu()
    assert float((out - ref).abs().max() / ref.abs().max()) < 3e-2


@pytest.mark.gpu
@pytest.mark.slow
def test_compile_on_cuda_with_cuda_graph_trees(
    lenet: tuple[torch.nn.Module, torch.Tensor, torch.Tensor], tmp_path: object
) -> None:
    model, x, ref = lenet
    runner = CompileRunner(copy.deepcopy(model), "cuda", mode="reduce-overhead", cache_dir=str(tmp_path))
    with runner:
        xin = runner.prepare_input(x)
        for _ in range(3):  # CUDA-graph trees: warm-up, record, replay
            out = runner.infer(xin).float().cpu()
    assert runner.uses_cudagraphs
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-3)  # TF32 allowed
