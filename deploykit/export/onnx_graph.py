"""Module -> checked ONNX graph: the dynamo and TorchScript exporters, ``onnx.checker``, the graph's facts.

:func:`export_serialised` is the export step of :func:`deploykit.export.onnx.export_module` (see there for the
exporter choice, ``auto`` falling back to TorchScript, and the fp16 conversion).
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploykit.errors import ExportError, first_line

INPUT_NAME = "input"
_PROTOBUF_LIMIT = 2**31 - 1


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's first line (torch.onnx wraps the real reason in a generic TorchExportError)."""
    chain = [exc]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 20:
        chain.append(nxt)
    return first_line(chain[-1]) if len(chain) == 1 else f"{type(exc).__name__} <- {first_line(chain[-1])}"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' warnings, log records and prints (torch.export prints the graph to stderr on
    failure); only the CLI prints. The outcome is checked by onnx.checker and the numerical validation, and a
    failure's reason is kept. ``logging.disable`` and the redirections are process-wide; restored on exit.
    """
    import io
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def output_names(n: int) -> list[str]:
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


def _export_dynamo(
    module: nn.Module, example: torch.Tensor, names: list[str], dynamic: bool, opset: int | None
) -> Any:
    kwargs: dict[str, Any] = {
        "dynamo": True,
        "external_data": False,
        "input_names": [INPUT_NAME],
        "output_names": names,
        "opset_version": opset,
        "verbose": False,
        "optimize": True,
    }
    if dynamic:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    prog = torch.onnx.export(module, (example,), **kwargs)
    if prog is None:
        raise ExportError("torch.onnx.export(dynamo=True) returned no program")
    return prog.model_proto


def _export_torchscript(
    module: nn.Module, example: torch.Tensor, names: list[str], dynamic: bool, opset: int | None
) -> Any:
    import onnx

    axes = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic else None
    with tempfile.TemporaryDirectory(prefix="deploykit-ts-") as tmp:
        f = Path(tmp) / "model.onnx"
        kwargs: dict[str, Any] = {
            "dynamo": False,
            "input_names": [INPUT_NAME],
            "output_names": names,
            "dynamic_axes": axes,
            "do_constant_folding": True,
        }
        if opset is not None:
            kwargs["opset_version"] = opset
        torch.onnx.export(module, (example,), os.fspath(f), **kwargs)
        return onnx.load(os.fspath(f))


def _check(proto: Any) -> None:
    import onnx

    if proto.ByteSize() > _PROTOBUF_LIMIT:
        raise ExportError(
            f"the ONNX graph with embedded weights is {proto.ByteSize() / 1e9:.2f} GB, over protobuf's 2 GB limit "
            "(deploykit embeds weights in one file)"
        )
    onnx.checker.check_model(proto, full_check=True)


def _export_graph(
    module: nn.Module,
    example: torch.Tensor,
    names: list[str],
    dynamic: bool,
    opset: int | None,
    exporter: str,
) -> tuple[Any, dict[str, Any]]:
    """Export and check; returns ``(ModelProto, exporter record)``. ``auto`` = dynamo, TorchScript on failure."""
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    fns = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}
    failures: dict[str, str] = {}
    for name in order:
        t0 = time.perf_counter()
        with _quiet_exporter():
            try:
                proto = fns[name](module, example, names, dynamic, opset)
            except ExportError:
                raise
            except Exception as exc:  # torch.export / the translators raise many types
                failures[name] = f"export failed: {_root_cause(exc)}"
                continue
        try:
            _check(proto)
        except ExportError:
            raise
        except Exception as exc:  # onnx.checker.ValidationError, shape-inference errors
            failures[name] = f"onnx.checker rejected the graph: {_root_cause(exc)}"
            continue
        record = {
            "name": name,
            "torch": torch.__version__,
            "fallback_reason": failures.get("dynamo") if name != order[0] else None,
            "export_s": time.perf_counter() - t0,
        }
        return proto, record
    detail = "; ".join(f"{k}: {v}" for k, v in failures.items())
    raise ExportError(f"cannot export to ONNX ({detail})")


def _dtype_name(elem_type: int) -> str:
    import onnx

    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def _io(values: Sequence[Any], skip: frozenset[str] | set[str] = frozenset()) -> list[dict[str, Any]]:
    out = []
    for vi in values:
        if vi.name in skip:
            continue
        tt = vi.type.tensor_type
        dims: list[int | str | None] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        out.append({"name": vi.name, "shape": dims, "dtype": _dtype_name(tt.elem_type)})
    return out


def _opset(proto: Any) -> int:
    for op in proto.opset_import:
        if op.domain in ("", "ai.onnx"):
            return int(op.version)
    raise ExportError("the exported graph imports no default ONNX opset")


@dataclass(frozen=True)
class GraphFacts:
    """What the manifest records of an exported graph (the graph itself is serialised beside it)."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    opset: int
    exporter: dict[str, Any]


def export_serialised(
    cpu_module: nn.Module, example: torch.Tensor, names: list[str], precision: str, dynamic: bool,
    opset: int | None, exporter: str,
) -> tuple[bytes, GraphFacts]:
    """Export (fp16: a ``.half()`` copy) and check the graph; return it serialised and its facts."""
    export_mod = copy.deepcopy(cpu_module).half() if precision == "fp16" else cpu_module
    export_x = example.half() if precision == "fp16" and example.is_floating_point() else example
    proto, exporter_rec = _export_graph(export_mod, export_x, names, dynamic, opset, exporter)
    del export_mod
    blob = proto.SerializeToString()
    facts = GraphFacts(
        inputs=_io(proto.graph.input, {t.name for t in proto.graph.initializer}),
        outputs=_io(proto.graph.output),
        opset=_opset(proto),
        exporter=exporter_rec,
    )
    return blob, facts
