"""OrtRunner: the CPU provider here; the CUDA provider with io-binding, a user stream and CUDA graphs on a GPU."""

from __future__ import annotations

import pytest
import torch

from deploykit.backends.ort import OrtRunner
from deploykit.errors import ArtifactError, BackendUnavailable, InvalidInput
from deploykit.export import export_module
from deploykit.models import create_model


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory):
    """lenet (seed 0) and its dynamic-batch fp32 and fp16 exports."""
    torch.manual_seed(0)
    model, spec = create_model("lenet", device="cpu")
    folder = tmp_path_factory.mktemp("ort")
    fp32 = export_module(model, spec, out_dir=folder, dynamic_batch=True, device="cpu", validate_batches=(1,))
    fp16 = export_module(
        model, spec, out_dir=folder, dynamic_batch=True, precision="fp16", device="cpu", validate_batches=(1,)
    )
    return model, spec, fp32, fp16


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.float().cpu() - ref.float().cpu()).abs().max() / ref.abs().max())


@pytest.mark.parametrize("io_binding", [True, False])
def test_cpu_matches_eager_at_several_batches(lenet, io_binding: bool) -> None:
    model, spec, fp32, _ = lenet
    with OrtRunner(fp32.path, io_binding=io_binding, threads=1) as runner:
        assert runner.is_active and runner.info["provider"] == "CPUExecutionProvider"
        assert runner.info["io_binding"] is io_binding and runner.stream is None
        for b in (1, 5):
            x = runner.prepare_input(torch.randn(spec.batch_shape(b)))
            y = runner.infer(x)
            assert y.shape == (b, 10) and y.dtype == torch.float32 and y.device.type == "cpu"
            with torch.inference_mode():
                assert _rel_err(y, model(x)) < 1e-5
    assert not runner.is_active


def test_cpu_fp16_graph_takes_fp16(lenet) -> None:
    model, spec, _, fp16 = lenet
    with OrtRunner(fp16.path) as runner:
        assert runner.input_dtype == torch.float16
        x = runner.prepare_input(torch.randn(spec.batch_shape(3)))
        assert x.dtype == torch.float16
        y = runner.infer(x)
        assert y.dtype == torch.float16
        with torch.inference_mode():
            assert _rel_err(y, model(x.float())) < 1e-2
        assert len(runner.infer_all(x)) == 1


def test_bad_calls(lenet, tmp_path) -> None:
    _, spec, fp32, _ = lenet
    runner = OrtRunner(fp32.path)
    with pytest.raises(InvalidInput, match="activate"):
        runner.infer(torch.randn(spec.batch_shape(1)))
    with runner:
        with pytest.raises(InvalidInput, match="float32 input, got float16"):
            runner.infer(torch.randn(spec.batch_shape(1)).half())
        with pytest.raises(InvalidInput, match="takes input batchx1x28x28"):
            runner.infer(torch.randn(1, 1, 32, 32))
        with pytest.raises(InvalidInput, match="contiguous"):
            runner.infer(torch.randn(1, 1, 28, 56)[..., ::2])
    with pytest.raises(InvalidInput, match="CUDA graphs need a CUDA device"):
        OrtRunner(fp32.path, cuda_graph=True)
    with pytest.raises(InvalidInput, match="threads"):
        OrtRunner(fp32.path, threads=0)
    with pytest.raises(ArtifactError, match="not found"):
        OrtRunner(tmp_path / "none.onnx").activate()


def test_cuda_without_onnxruntime_gpu_says_how_to_install(lenet, monkeypatch) -> None:
    import onnxruntime

    _, _, fp32, _ = lenet
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailable, match=r"has no CUDA provider.*onnxruntime-gpu.*replaces"):
        OrtRunner(fp32.path, device="cuda").activate()


def test_cuda_without_a_gpu(lenet, monkeypatch) -> None:
    _, _, fp32, _ = lenet
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        OrtRunner(fp32.path, device="cuda").activate()


# ------------------------------------------------------------------------------------------------------ GPU
def _need_cuda_provider() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("needs onnxruntime-gpu (the CUDA execution provider)")


@pytest.mark.gpu
def test_cuda_io_binding_on_the_runner_stream(lenet) -> None:
    _need_cuda_provider()
    model, spec, fp32, _ = lenet
    ref_model = model.to("cuda")
    with OrtRunner(fp32.path, device="cuda") as runner:
        assert runner.info["provider"] == "CUDAExecutionProvider" and runner.info["io_binding"] is True
        assert isinstance(runner.stream, torch.cuda.Stream)
        assert runner.stream.cuda_stream != torch.cuda.default_stream().cuda_stream
        for b in (1, 7):
            x = runner.prepare_input(torch.randn(spec.batch_shape(b)))
            y = runner.infer(x)
            assert y.device.type == "cuda" and y.shape == (b, 10)
            with torch.inference_mode():
                ref = ref_model(x)
            torch.cuda.synchronize()
            assert _rel_err(y, ref) < 1e-3  # TF32 may be on in both


@pytest.mark.gpu
def test_cuda_graph_replays_into_fixed_buffers(lenet) -> None:
    _need_cuda_provider()
    model, spec, fp32, _ = lenet
    ref_model = model.to("cuda")
    with OrtRunner(fp32.path, device="cuda", cuda_graph=True) as runner:
        outs = []
        for _ in range(4):
            x = runner.prepare_input(torch.randn(spec.batch_shape(2)))
            y = runner.infer(x)
            with torch.inference_mode():
                ref = ref_model(x)
            torch.cuda.synchronize()
            assert _rel_err(y, ref) < 1e-3
            outs.append(y.data_ptr())
        assert len(set(outs)) == 1
        with pytest.raises(InvalidInput, match="captured for input"):
            runner.infer(runner.prepare_input(torch.randn(spec.batch_shape(3))))


@pytest.mark.gpu
def test_fp16_validated_with_the_cuda_provider(tmp_path) -> None:
    _need_cuda_provider()
    torch.manual_seed(0)
    model, spec = create_model("resnet18", device="cpu", image_size=64)
    art = export_module(model, spec, out_dir=tmp_path, precision="fp16", device="cuda")
    v = art.manifest["validation"]
    assert v["passed"] is True and v["provider"] == "CUDAExecutionProvider"
    assert art.manifest["environment"]["gpu"] is not None
    cov = v["fp16_coverage"]
    assert cov["fp16_nodes"] > cov["fp32_nodes"]
    assert any("fp16 arithmetic of" in line and "CUDAExecutionProvider" in line for line in v["validated"])
    with OrtRunner(art.path, device="cuda") as runner:
        y = runner.infer(runner.prepare_input(torch.randn(spec.batch_shape(4))))
        assert y.dtype == torch.float16 and y.device.type == "cuda"


def _bf16_graph(path) -> None:
    """A real bfloat16-input ONNX graph: y = float(x) * 2 (bf16 in, fp32 out), checked by onnx.checker."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["xf", "two"], ["y"]),
        ],
        "bf16",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def test_bf16_input_is_bound_by_onnx_type(tmp_path) -> None:
    # torch.bfloat16 had no io-binding element type (a KeyError); it is bound with the ONNX enum value.
    path = tmp_path / "bf16.onnx"
    _bf16_graph(path)
    x = torch.tensor([[1.5, -2.0, 3.25, 0.0078125]] * 3, dtype=torch.bfloat16)
    with OrtRunner(path, threads=1) as runner:
        assert runner.input_dtype == torch.bfloat16
        y = runner.infer(runner.prepare_input(x))
    assert y.dtype == torch.float32
    assert torch.equal(y, x.float() * 2)
    with OrtRunner(path, io_binding=False, threads=1) as runner, pytest.raises(InvalidInput, match="io_binding=True"):
        runner.infer(x)


def test_cuda_session_options_ask_for_true_fp32(lenet) -> None:
    # ONNX Runtime's CUDA provider defaults to TF32 (use_tf32=1): every deploykit CUDA session turns it off.
    _, _, fp32, _ = lenet
    for graph in (False, True):
        opts = OrtRunner(fp32.path, device="cuda:0", cuda_graph=graph).cuda_provider_options(1234)
        assert opts["use_tf32"] == "0"
        assert opts["user_compute_stream"] == "1234" and opts["has_user_compute_stream"] == "1"
        assert opts["enable_cuda_graph"] == ("1" if graph else "0")
    with pytest.raises(InvalidInput, match="handle 0"):
        OrtRunner(fp32.path, device="cuda:0").cuda_provider_options(0)


def test_every_cuda_session_is_true_fp32_on_its_device(lenet, monkeypatch) -> None:
    # make_session's CUDA branch with a stand-in for onnxruntime-gpu (not installed here): what it is asked for.
    import types

    from deploykit.backends import ort as ort_mod

    asked: list = []

    class Session:
        def __init__(self, path, sess_options=None, providers=None):
            asked.append(providers)

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    real = ort_mod.import_onnxruntime()
    fake = types.SimpleNamespace(SessionOptions=real.SessionOptions, GraphOptimizationLevel=real.GraphOptimizationLevel,
                                 InferenceSession=Session)
    monkeypatch.setattr(ort_mod, "require_cuda_provider", lambda *a: fake)
    _, _, fp32, _ = lenet
    ort_mod.make_session(fp32.path, torch.device("cuda", 1))
    ort_mod.make_session(fp32.path, torch.device("cuda", 0), cuda_options={"use_tf32": 1})  # an explicit choice wins
    (name, opts), cpu = asked[0]
    assert name == "CUDAExecutionProvider" and cpu == "CPUExecutionProvider"
    assert opts == {"device_id": "1", "use_tf32": "0"}
    assert asked[1][0][1] == {"device_id": "0", "use_tf32": "1"}
