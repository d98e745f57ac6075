"""FAKE TensorRT — a stand-in module for tests only. It is NOT TensorRT and verifies nothing about TensorRT.

TensorRT cannot be installed on the machines that run deploykit's CI, so this fake mimics the *shape* of the
TensorRT 10.x / 11.x Python API that deploykit calls (names, signatures, return conventions such as
``build_serialized_network`` returning ``None`` on failure, ``BuilderFlag.FP16`` missing in 11.x, the engine
inspector's 10.x ``"Bindings"`` vs 11.x ``"I/O Tensors"`` JSON). Tests use it to check deploykit's call order
and its version branches. Passing tests with this fake say nothing about whether the real TensorRT accepts
the calls: only the tests marked ``trt`` do that.

The fake "engine" computes ``out[n, k] = sum(x[n]) * (k + 1)`` (reading and writing the bound addresses with
ctypes, so it works on CPU tensors), which lets tests check that inputs and outputs were bound correctly.
"""

from __future__ import annotations

import ctypes
import json
import types
from typing import Any

import numpy as np

FAKE_NUM_CLASSES = 4


class _Enum:
    """A pybind11-like enum member: has ``.name`` and converts with ``int()``."""

    def __init__(self, owner: str, name: str, value: int) -> None:
        self.name, self.value, self._owner = name, value, owner

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"{self._owner}.{self.name}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Enum) and (other._owner, other.name) == (self._owner, self.name)

    def __hash__(self) -> int:
        return hash((self._owner, self.name))


def _enum(owner: str, *names: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{n: _Enum(owner, n, i) for i, n in enumerate(names)})


def fake_reference(x: Any) -> Any:
    """What the fake engine computes, as a torch function (a correct reference for validation tests)."""
    import torch

    s = x.reshape(x.shape[0], -1).float().sum(1, keepdim=True)
    return s * torch.arange(1, FAKE_NUM_CLASSES + 1, dtype=torch.float32, device=x.device)


class FakeTensorRT(types.ModuleType):
    """A module object to put in ``sys.modules["tensorrt"]``. ``calls`` logs the API calls in order.

    Options: ``silent_fp32`` (the inspector reports fp32 whatever was asked — the real-world bug deploykit must
    catch), ``parse_error`` (the parser fails on a node), ``build_returns_none``, ``wrong_output`` (the engine
    adds 1 to every output, so validation must fail).
    """

    def __init__(
        self,
        version: str = "10.13.0.35",
        *,
        silent_fp32: bool = False,
        parse_error: bool = False,
        build_returns_none: bool = False,
        wrong_output: bool = False,
    ) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.major = int(version.split(".")[0])
        self.calls: list[str] = []
        self.silent_fp32 = silent_fp32
        self.parse_error = parse_error
        self.build_returns_none = build_returns_none
        self.wrong_output = wrong_output
        fake = self

        self.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH", "STRONGLY_TYPED")
        if self.major >= 11:  # 11.x: EXPLICIT_BATCH removed, STRONGLY_TYPED kept (ignored)
            self.NetworkDefinitionCreationFlag = types.SimpleNamespace(
                STRONGLY_TYPED=_Enum("NetworkDefinitionCreationFlag", "STRONGLY_TYPED", 1)
            )
        flags = ["TF32", "REFIT", "SPARSE_WEIGHTS"]
        if self.major == 10:  # precision flags exist only in 10.x
            flags += ["FP16", "BF16", "INT8", "FP8", "OBEY_PRECISION_CONSTRAINTS"]
        self.BuilderFlag = _enum("BuilderFlag", *flags)
        self.MemoryPoolType = _enum("MemoryPoolType", "WORKSPACE", "DLA_MANAGED_SRAM")
        self.ProfilingVerbosity = _enum("ProfilingVerbosity", "LAYER_NAMES_ONLY", "NONE", "DETAILED")
        self.TensorIOMode = _enum("TensorIOMode", "NONE", "INPUT", "OUTPUT")
        self.DataType = _enum("DataType", "FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8", "BF16", "INT64")
        self.LayerInformationFormat = _enum("LayerInformationFormat", "ONELINE", "JSON")

        class ILogger:
            Severity = _enum("Severity", "INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")

            def __init__(self) -> None:
                fake.calls.append("ILogger.__init__")

        class IProfiler:
            def __init__(self) -> None:
                fake.calls.append("IProfiler.__init__")

        self.ILogger = ILogger
        self.IProfiler = IProfiler
        if self.major == 10:

            class IInt8EntropyCalibrator2:
                def __init__(self) -> None:
                    fake.calls.append("IInt8EntropyCalibrator2.__init__")

            self.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

        self.Builder = lambda logger: _Builder(fake, logger)
        self.OnnxParser = lambda network, logger: _Parser(fake, network, logger)
        self.Runtime = lambda logger: _Runtime(fake, logger)

    def log(self, call: str) -> None:
        self.calls.append(call)


# --------------------------------------------------------------------------------------------- build side
class _Tensor:
    def __init__(self, name: str, shape: tuple[int, ...], dtype: str) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype


class _Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[_Tensor] = []
        self.outputs: list[_Tensor] = []
        self.graph_dtype = "float32"

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> _Tensor:
        return self.inputs[i]


class _ParserError:
    def node(self) -> int:
        return 3

    def node_name(self) -> str:
        return "/layer1/conv/Conv"

    def node_operator(self) -> str:
        return "Conv"

    def desc(self) -> str:
        return "unsupported attribute"

    def code(self) -> str:
        return "UNSUPPORTED_NODE"


class _Parser:
    def __init__(self, fake: FakeTensorRT, network: _Network, logger: Any) -> None:
        fake.log("OnnxParser")
        self.fake, self.network = fake, network
        self.errors: list[_ParserError] = []

    def parse_from_file(self, path: str) -> bool:
        import onnx

        self.fake.log("OnnxParser.parse_from_file")
        if self.fake.parse_error:
            self.errors.append(_ParserError())
            return False
        model = onnx.load(path, load_external_data=False)
        inits = {t.name for t in model.graph.initializer}
        names = {1: "float32", 10: "float16", 16: "bfloat16"}
        for vi in model.graph.input:
            if vi.name in inits:
                continue
            dims = tuple(d.dim_value if d.dim_value > 0 else -1 for d in vi.type.tensor_type.shape.dim)
            self.network.inputs.append(_Tensor(vi.name, dims, names.get(vi.type.tensor_type.elem_type, "float32")))
        for vi in model.graph.output:
            self.network.outputs.append(_Tensor(vi.name, (-1, FAKE_NUM_CLASSES), names.get(vi.type.tensor_type.elem_type, "float32")))
        dtypes = [t.data_type for t in model.graph.initializer if t.data_type in names]
        self.network.graph_dtype = names[max(set(dtypes), key=dtypes.count)] if dtypes else self.network.inputs[0].dtype
        self.network.qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> _ParserError:
        return self.errors[i]


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, name: str, mn: Any, op: Any, mx: Any) -> None:
        self.shapes[name] = (tuple(mn), tuple(op), tuple(mx))


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.entries = int(data.decode() or 0) if data else 0

    def serialize(self) -> bytes:
        return str(self.entries + 1).encode()


class _Config:
    def __init__(self, fake: FakeTensorRT) -> None:
        self.fake = fake
        self.flags: set[str] = {"TF32"}
        self.profiles: list[_Profile] = []
        self.pool: dict[str, int] = {}
        self.builder_optimization_level = 3
        self.profiling_verbosity = fake.ProfilingVerbosity.LAYER_NAMES_ONLY
        self.cache: _TimingCache | None = None
        self._calibrator: Any = None
        self.calibration_profile: _Profile | None = None

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.fake.log(f"config.set_memory_pool_limit({pool.name}, {size})")
        self.pool[pool.name] = size

    def set_flag(self, flag: Any) -> None:
        self.fake.log(f"config.set_flag({flag.name})")
        self.flags.add(flag.name)

    def clear_flag(self, flag: Any) -> None:
        self.fake.log(f"config.clear_flag({flag.name})")
        self.flags.discard(flag.name)

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.fake.log("config.add_optimization_profile")
        self.profiles.append(profile)
        return len(self.profiles) - 1

    @property
    def int8_calibrator(self) -> Any:
        if self.fake.major >= 11:
            raise AttributeError("'IBuilderConfig' object has no attribute 'int8_calibrator' (removed in 11.0)")
        return self._calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, value: Any) -> None:
        if self.fake.major >= 11:
            raise AttributeError("'IBuilderConfig' object has no attribute 'int8_calibrator' (removed in 11.0)")
        self.fake.log("config.int8_calibrator")
        self._calibrator = value

    def set_calibration_profile(self, profile: _Profile) -> bool:
        if self.fake.major >= 11:
            raise AttributeError("set_calibration_profile was removed in 11.0")
        self.fake.log("config.set_calibration_profile")
        self.calibration_profile = profile
        return True

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        self.fake.log(f"config.create_timing_cache({len(data)} bytes)")
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.fake.log(f"config.set_timing_cache(ignore_mismatch={ignore_mismatch})")
        self.cache = cache
        return True

    def get_timing_cache(self) -> _TimingCache:
        assert self.cache is not None
        return self.cache


class _HostMemory:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data


class _Builder:
    def __init__(self, fake: FakeTensorRT, logger: Any) -> None:
        fake.log("Builder")
        self.fake = fake

    def create_network(self, flags: int = 0) -> _Network:
        self.fake.log(f"Builder.create_network({flags})")
        return _Network(flags)

    def create_builder_config(self) -> _Config:
        self.fake.log("Builder.create_builder_config")
        return _Config(self.fake)

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> _HostMemory | None:
        self.fake.log("Builder.build_serialized_network")
        if self.fake.build_returns_none:
            return None
        strong = bool(network.flags & (1 << 1))
        if self.fake.major >= 11:
            strong = True
        if config._calibrator is not None:  # run the calibrator like TensorRT does: get_batch until None
            names = [t.name for t in network.inputs]
            while config._calibrator.get_batch(names) is not None:
                self.fake.log("calibrator.get_batch")
        if strong:
            compute = {"float16": "HALF", "bfloat16": "BF16"}.get(network.graph_dtype, "FLOAT")
            if getattr(network, "qdq", False):
                compute = "INT8"
        elif "INT8" in config.flags:
            compute = "INT8"
        elif "FP16" in config.flags:
            compute = "HALF"
        elif "BF16" in config.flags:
            compute = "BF16"
        else:
            compute = "FLOAT"
        if self.fake.silent_fp32:
            compute = "FLOAT"
        plan = {
            "fake_tensorrt_plan": True,
            "version": self.fake.__version__,
            "strongly_typed": strong,
            "flags": sorted(config.flags),
            "compute": compute,
            "inputs": [{"name": t.name, "dtype": t.dtype, "profile": config.profiles[0].shapes[t.name]} for t in network.inputs],
            "outputs": [{"name": t.name, "dtype": t.dtype} for t in network.outputs],
            "opt_level": config.builder_optimization_level,
            "verbosity": config.profiling_verbosity.name,
        }
        return _HostMemory(json.dumps(plan).encode())


# ------------------------------------------------------------------------------------------ runtime side
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8}
_TRT_OF = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16"}
_LAYERS = ("conv1 + relu", "pool", "fc")


class _Runtime:
    def __init__(self, fake: FakeTensorRT, logger: Any) -> None:
        fake.log("Runtime")
        self.fake, self.logger = fake, logger

    def deserialize_cuda_engine(self, data: bytes) -> _Engine | None:
        self.fake.log("Runtime.deserialize_cuda_engine")
        try:
            plan = json.loads(bytes(data).decode())
        except ValueError:
            return None
        if plan.get("version") != self.fake.__version__:
            self.logger.log(self.fake.ILogger.Severity.ERROR, "The engine plan file is not compatible with this version")
            return None
        return _Engine(self.fake, plan)


class _Engine:
    def __init__(self, fake: FakeTensorRT, plan: dict[str, Any]) -> None:
        self.fake, self.plan = fake, plan
        self.io = [(t["name"], True, t) for t in plan["inputs"]] + [(t["name"], False, t) for t in plan["outputs"]]

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]

    def _entry(self, name: str) -> tuple[str, bool, dict[str, Any]]:
        return next(e for e in self.io if e[0] == name)

    def get_tensor_mode(self, name: str) -> Any:
        return self.fake.TensorIOMode.INPUT if self._entry(name)[1] else self.fake.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return getattr(self.fake.DataType, _TRT_OF[self._entry(name)[2]["dtype"]])

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        _, is_in, t = self._entry(name)
        if is_in:
            mn, _, mx = t["profile"]
            return tuple(-1 if a != b else a for a, b in zip(mn, mx, strict=True))
        return (-1, FAKE_NUM_CLASSES)

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[list[int]]:
        assert profile_index == 0
        return [list(s) for s in self._entry(name)[2]["profile"]]

    def create_execution_context(self) -> _Context:
        self.fake.log("ICudaEngine.create_execution_context")
        return _Context(self)

    def create_engine_inspector(self) -> _Inspector:
        self.fake.log("ICudaEngine.create_engine_inspector")
        return _Inspector(self)


class _Context:
    def __init__(self, engine: _Engine) -> None:
        self.engine, self.fake = engine, engine.fake
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.profiler: Any = None
        self.enqueue_emits_profile = True

    def set_input_shape(self, name: str, shape: Any) -> bool:
        self.fake.log(f"context.set_input_shape({name}, {tuple(shape)})")
        mn, _, mx = self.engine._entry(name)[2]["profile"]
        shape = tuple(shape)
        if len(shape) != len(mn) or any(s < a or s > b for s, a, b in zip(shape, mn, mx, strict=True)):
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        self.fake.log(f"context.get_tensor_shape({name})")
        _, is_in, _ = self.engine._entry(name)
        if is_in:
            return self.shapes.get(name, self.engine.get_tensor_shape(name))
        first = self.engine.plan["inputs"][0]["name"]
        if first not in self.shapes:
            return (-1, FAKE_NUM_CLASSES)
        return (self.shapes[first][0], FAKE_NUM_CLASSES)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.fake.log(f"context.set_tensor_address({name})")
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.fake.log(f"context.execute_async_v3({stream_handle})")
        plan = self.engine.plan
        inp, out = plan["inputs"][0], plan["outputs"][0]
        if inp["name"] not in self.shapes or set(self.addresses) != {t[0] for t in self.engine.io}:
            return False
        shape = self.shapes[inp["name"]]
        in_dt = np.dtype(_NP[_TRT_OF[inp["dtype"]]])
        n_in = int(np.prod(shape)) * in_dt.itemsize
        x = np.frombuffer((ctypes.c_char * n_in).from_address(self.addresses[inp["name"]]), dtype=in_dt).reshape(shape)
        y = x.reshape(shape[0], -1).astype(np.float64).sum(1, keepdims=True) * np.arange(1, FAKE_NUM_CLASSES + 1)
        if self.fake.wrong_output:
            y = y + 1.0
        y = np.ascontiguousarray(y.astype(_NP[_TRT_OF[out["dtype"]]]))
        ctypes.memmove(self.addresses[out["name"]], y.ctypes.data, y.nbytes)
        if self.profiler is not None and self.enqueue_emits_profile:
            for i, layer in enumerate(_LAYERS):
                self.profiler.report_layer_time(layer, 0.1 * (i + 1))
        return True


class _Inspector:
    def __init__(self, engine: _Engine) -> None:
        self.engine, self.fake = engine, engine.fake
        self.execution_context: _Context | None = None

    def get_engine_information(self, fmt: Any) -> str:
        self.fake.log("EngineInspector.get_engine_information")
        plan, ctx = self.engine.plan, self.execution_context
        if plan["verbosity"] != "DETAILED":
            return json.dumps({"Layers": list(_LAYERS), "Bindings": [e[0] for e in self.engine.io]})
        first = plan["inputs"][0]["name"]
        shapes_known = ctx is not None and first in ctx.shapes
        words = {"FLOAT": ("Float", "FP32"), "HALF": ("Half", "FP16"), "BF16": ("BF16", "BF16"), "INT8": ("Int8", "Int8")}
        dtype_word, fmt_word = words[plan["compute"]]

        def tensor(name: str) -> dict[str, Any]:
            if not shapes_known:
                if self.fake.major >= 11:
                    return {"Name": name, "Dimensions": [-1], "Format": "N/A due to dynamic shapes", "DataType": "N/A"}
                return {"Name": name, "Dimensions": [-1], "Format/Datatype": "N/A due to dynamic shapes"}
            if self.fake.major >= 11:
                return {"Name": name, "Dimensions": [1], "Format": f"Row major linear {fmt_word} format (kLINEAR)",
                        "DataType": dtype_word}
            return {"Name": name, "Dimensions": [1], "Format/Datatype": f"Row major linear {fmt_word} format"}

        layers = [
            {"Name": "Reformatting CopyNode for Input Tensor 0", "LayerType": "Reformat",
             "Inputs": [tensor(first)], "Outputs": [tensor("reformatted")]},
            {"Name": "conv1 + relu", "LayerType": "CaskConvolution", "Inputs": [tensor("reformatted")],
             "Outputs": [tensor("t1")], "TacticName": "sm90_xmma_fprop_fake", "Metadata": "[ONNX Layer: /conv1/Conv]\x1f[ONNX Layer: /relu/Relu]"},
            {"Name": "pool", "LayerType": "CaskPooling", "Inputs": [tensor("t1")], "Outputs": [tensor("t2")],
             "TacticName": "pool_fake", "Metadata": "[ONNX Layer: /pool/GlobalAveragePool]"},
            {"Name": "fc", "LayerType": "CaskGemm", "Inputs": [tensor("t2")], "Outputs": [tensor(plan["outputs"][0]["name"])],
             "TacticName": "gemm_fake", "Metadata": "[ONNX Layer: /fc/Gemm]"},
        ]
        if self.fake.major >= 11:
            io = [{"Name": e[0], "IOMode": "Input" if e[1] else "Output", "DataType": words[_TRT_OF[e[2]["dtype"]]][0],
                   "Dimensions": [-1], "Location": "Device", "IsShapeInferenceIO": False} for e in self.engine.io]
            return json.dumps({"Layers": layers, "I/O Tensors": io})
        return json.dumps({"Layers": layers, "Bindings": [e[0] for e in self.engine.io]})


# ------------------------------------------------------------------------------------------- test helpers
class FakeStream:
    """Stands in for ``torch.cuda.Stream`` when the fake engine runs on CPU tensors."""

    cuda_stream = 0

    def wait_stream(self, other: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass


def install_fake_tensorrt(monkeypatch: Any, version: str = "10.13.0.35", **options: Any) -> FakeTensorRT:
    """Put a :class:`FakeTensorRT` in ``sys.modules["tensorrt"]`` and point the three CUDA seams of deploykit.backends.tensorrt.runtime and
    ``current_gpu`` at CPU stand-ins (a fake GPU named ``"Fake GPU"``, compute capability 9.0, device ``cpu``)."""
    import contextlib
    import sys

    import deploykit.backends.tensorrt.runtime as rt

    fake = FakeTensorRT(version, **options)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(rt, "device_guard", lambda device: contextlib.nullcontext())
    stream = FakeStream()
    monkeypatch.setattr(rt, "new_stream", lambda device: stream)
    monkeypatch.setattr(rt, "current_stream", lambda device: stream)
    monkeypatch.setattr(rt, "current_gpu", lambda device="cuda": rt.GpuInfo("Fake GPU", "9.0", "13.0", 0, "cpu"))
    return fake


def make_tiny_onnx(path: Any, *, dtype: str = "float32", batch: int | str = "N", qdq: bool = False) -> Any:
    """A real, checker-valid ONNX file: Conv(3->4, 3x3) -> GlobalAveragePool -> Flatten, input (batch, 3, 8, 8).

    ``dtype`` is ``"float32"`` or ``"float16"`` (weights and I/O); ``qdq`` wraps the input in
    QuantizeLinear/DequantizeLinear; ``batch`` is an int (fixed) or a name (dynamic).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[dtype]
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(dtype), "conv.weight")
    nodes = []
    x_name = "input"
    inits = [w]
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.05, dtype=np.float32), "scale"),
                  numpy_helper.from_array(np.array(0, dtype=np.int8), "zero")]
        nodes += [helper.make_node("QuantizeLinear", ["input", "scale", "zero"], ["xq"], name="q"),
                  helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xdq"], name="dq")]
        x_name = "xdq"
    nodes += [
        helper.make_node("Conv", [x_name, "conv.weight"], ["c"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["logits"], name="/flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", elem, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", elem, [batch, 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path
