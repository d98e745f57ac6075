"""Logits of a model and of an exported ONNX file on labelled data.

The eager fp32 reference and an ONNX Runtime run (padded to a fixed graph batch), shared by the INT8 export's
accuracy gate and :mod:`deploykit.evaluate` (which sits above export and re-exports these names).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploykit.data.base import LabelledData
from deploykit.errors import InvalidInput, first_line


@torch.no_grad()
def _eager_logits(module: nn.Module, data: LabelledData, device: torch.device, batch: int) -> torch.Tensor:
    """The reference: eager fp32 logits (TF32 off on CUDA); the caller's module is not moved or modified."""
    import copy

    from deploykit.backends.math_mode import true_fp32
    from deploykit.backends.torch_backends import first_tensor

    was_training = module.training
    module = module.eval() if device.type == "cpu" else copy.deepcopy(module).eval().to(device)
    outs = []
    with true_fp32():
        for x, _ in data.batches(batch):
            outs.append(first_tensor(module(x.to(device))).float().cpu())
    module.train(was_training)
    return torch.cat(outs)

def _onnx_graph(path: Path) -> Any:
    """The graph of an ONNX file (weights not loaded), or one :class:`InvalidInput` line."""
    import onnx

    try:
        return onnx.load(os.fspath(path), load_external_data=False).graph
    except Exception as exc:  # protobuf DecodeError, OSError
        raise InvalidInput(f"cannot read ONNX file {path}: {first_line(exc)}") from None

def _graph_input(path: Path) -> Any:
    graph = _onnx_graph(path)
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if not inputs:
        raise InvalidInput(f"{path} has no graph input")
    return inputs[0]

def _graph_batch(path: Path) -> int | None:
    """The fixed batch size of an ONNX file's input (``None``: dynamic)."""
    dims = _graph_input(path).type.tensor_type.shape.dim
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None

def _run_onnx(path: Path, data: LabelledData, device: torch.device, batch: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Logits of an ONNX file on ``data`` (padded to the graph's batch when it is fixed) and the runner's info."""
    from deploykit.backends.ort import OrtRunner

    fixed = _graph_batch(path)
    step = fixed or batch
    outs = []
    with OrtRunner(path, device) as runner:
        for x, _ in data.batches(step):
            n = x.shape[0]
            if fixed is not None and n < fixed:  # the last batch of a fixed-batch graph: pad, then drop the padding
                x = torch.cat([x, x.new_zeros((fixed - n, *x.shape[1:]))])
            y = runner.infer(runner.prepare_input(x.to(device)))
            outs.append(y[:n].float().cpu())
        info = dict(runner.info)
    return torch.cat(outs), info
