"""Memory model: inference peak from tensor liveness, the memory of one training step, batch scaling.

Everything runs on the ``meta`` device (no activation memory exists, nothing is computed) and follows what
eager PyTorch does on the modelled device, allocation by allocation:

* **Liveness.** A ``TorchDispatchMode`` sees every ATen operator of the run. Each output whose storage is
  new (not an input's storage, not seen before, on the model's device) is an allocation of the storage's
  bytes at the requested dtype, counted once however many views share it. A weak reference on the storage
  frees it when its last reference dies: Python drops a tensor (``x = layer(x)`` rebinding), autograd
  releases a saved tensor after its backward node ran, an optimizer temporary goes out of scope. Python's
  reference counting works the same on meta tensors, so the order of allocations and frees is the real one
  (``torch.distributed._tools.mem_tracker.MemTracker`` works the same way on real tensors).
* **Rows.** The run goes through :func:`deploykit.profile.counter.profile_module` with a ``row_scope``, so
  allocations are charged to the same rows (``features.0``, ``layer1.0/add_``) as the cost profile.
* **Inference.** ``model.eval()`` forward under ``no_grad``. The peak is the largest live activation total;
  parameters, buffers and the input are resident and reported separately. It is *not* the sum of all
  outputs (torchinfo's "forward/backward pass size"): see :attr:`InferenceMemory.sum_outputs_bytes`.
* **Training step** (steady state: the optimizer state exists from an earlier step, created here by one
  ``step()`` on zero gradients, and gradients were set to ``None`` by ``zero_grad``): train-mode forward
  with grad, the loss (cross entropy against class 0 for ``(N, classes)`` outputs, else ``output.sum()``),
  ``loss.backward()``, ``optimizer.step()``, ``optimizer.zero_grad(set_to_none=True)``. Activations saved
  for backward are read from ``torch.autograd.graph.saved_tensors_hooks`` (deduplicated by storage;
  parameters, buffers and the input are not activations). The backward is run for real on meta, so the backward peak is measured, not
  guessed: saved activations are released node by node while gradients and temporaries appear.

What PyTorch's optimizers allocate (per parameter tensor ``p``, all ``zeros_like(p)`` / ``clone(grad)``):

=====================  =====================  ==================================================================
optimizer              state                  temporaries during ``step()``
=====================  =====================  ==================================================================
``sgd``                none                   none
``sgd-momentum``       ``momentum_buffer``    none (``weight_decay`` would add a copy of the gradients)
``adam`` / ``adamw``   ``exp_avg``,           for-loop (CPU default): ``sqrt`` and ``/`` of one tensor at a time,
                       ``exp_avg_sq``         so 2 x the largest parameter tensor; ``foreach`` (CUDA default):
                                              ``_foreach_sqrt`` of *all* ``exp_avg_sq`` at once: 1 x all params
=====================  =====================  ==================================================================

Adam's ``step`` counters are 0-d tensors on the CPU (unless ``capturable``/``fused``): not device memory.

Targets (``target=``): ``"cuda"`` rounds every allocation up to the CUDA caching allocator's 512-byte block,
uses the ``foreach`` optimizers and the fused ``native_dropout`` kernel (a 1-byte bool mask) as PyTorch does
on CUDA; ``"cpu"`` counts exact bytes with the for-loop optimizers and the CPU dropout (a noise tensor of
the input's dtype). Not modelled: cuDNN / cuBLAS workspaces (not tensors; the GPU script measures them),
and allocator blocks handed out larger than requested (``expandable_segments`` avoids those).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deploykit.errors import InvalidInput, ShapeError
from deploykit.models.registry import ModelSpec, create_model, parse_shape
from deploykit.precision import Precision
from deploykit.profile.counter import profile_module
from deploykit.profile.memory_reference import (  # noqa: F401  (moved; re-exported)
    _TORCH_DTYPES,
    ReferenceMemory,
    _memtracker,
    _snapshot,
    memtracker_reference,
)
from deploykit.profile.memory_results import (  # noqa: F401  (moved; re-exported)
    _M,
    MEMORY_SCHEMA,
    MEMORY_SCHEMA_VERSION,
    TERMS,
    InferenceMemory,
    LayerMemory,
    MemoryReport,
    TrainingMemory,
    _PerLayerMemory,
)
from deploykit.profile.memory_tracker import (  # noqa: F401  (moved; re-exported)
    _BATCH_NORM,
    _aten,
    _Entry,
    _Event,
    _FusedDropout,
    _Tracker,
    round_up,
)
from deploykit.profile.optimizers import (  # noqa: F401  (moved; re-exported)
    OPTIMIZER_STATE_BUFFERS,
    OPTIMIZERS,
    _first_tensor,
    check_optimizer,
    make_optimizer,
    train_step,
    training_loss,
)
from deploykit.profile.types import DTYPE_BYTES

#: Allocation granularity of each modelled target: the CUDA caching allocator rounds every block up to
#: 512 bytes (``kMinBlockSize``); the CPU allocator's bytes are counted exactly.
TARGET_GRANULARITY_BYTES: Mapping[str, int] = {"cuda": 512, "cpu": 1}




# --- results ------------------------------------------------------------------------------------------


# --- the liveness tracker -------------------------------------------------------------------------------


# --- shared plumbing ------------------------------------------------------------------------------------


def _check(dtype: str, target: str) -> None:
    Precision.parse(dtype, what="dtype")
    if target not in TARGET_GRANULARITY_BYTES:
        raise InvalidInput(f"unknown memory target {target!r}; choose from {', '.join(TARGET_GRANULARITY_BYTES)}")




@dataclass(frozen=True)
class _Built:
    """A registered model built once on meta (by :func:`memory_report`) and copied for every batch size."""

    module: nn.Module
    spec: ModelSpec


def _meta_model(
    model: str | nn.Module | _Built,
    batch_size: int,
    input_shape: Sequence[int] | str | None,
    num_classes: int | None,
    in_channels: int | None,
    image_size: int | Sequence[int] | str | None,
) -> tuple[nn.Module, torch.Tensor, str]:
    """A fresh meta copy of the model (so training state never leaks between calls) and a meta input."""
    if batch_size <= 0:
        raise InvalidInput("batch size must be positive")
    if isinstance(model, _Built):
        module = copy.deepcopy(model.module)
        return module, torch.zeros(model.spec.batch_shape(batch_size), device="meta"), model.spec.name
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise InvalidInput("an nn.Module needs its per-sample input_shape")
        module = copy.deepcopy(model).to("meta")
        shape = (batch_size, *parse_shape(input_shape))
        return module, torch.zeros(shape, device="meta"), type(model).__name__
    module, spec = create_model(
        model, device="meta", num_classes=num_classes, in_channels=in_channels,
        image_size=image_size, input_shape=input_shape,
    )
    return module, torch.zeros(spec.batch_shape(batch_size), device="meta"), spec.name


def _unique_bytes(tensors: Iterable[torch.Tensor], tracker: _Tracker) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        key = t.untyped_storage()._cdata
        if key not in seen:
            seen.add(key)
            total += tracker.storage_bytes(t)
    return total




def _layers(
    profile_names: Sequence[str], labels: Mapping[str, str], tracker: _Tracker, end_live: int,
    saved: Mapping[str, int] | None = None, backward: Mapping[str, int] | None = None,
) -> tuple[LayerMemory, ...]:
    by_name: dict[str, LayerMemory] = {}
    events = tracker.events
    for i, event in enumerate(events):
        name = labels.get(event.label)
        if name is None:  # a call that allocated nothing (a view) and was not kept as a row
            continue
        after = events[i + 1].enter if i + 1 < len(events) else end_live
        by_name[name] = LayerMemory(
            name=name,
            alloc_bytes=event.alloc,
            peak_bytes=event.peak,
            live_after_bytes=after,
            saved_bytes=(saved or {}).get(event.label, 0),
            backward_peak_bytes=(backward or {}).get(event.label, 0),
        )
    # Rows opened outside any scope (rare) allocate nothing we can attribute: they are left out.
    return tuple(by_name[n] for n in profile_names if n in by_name)


def _resolve(where: str, labels: Mapping[str, str]) -> str:
    return labels.get(where, where)


# --- inference ---------------------------------------------------------------------------------------


def inference_memory(
    model: str | nn.Module,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    target: str = "cuda",
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> InferenceMemory:
    """Peak activation memory of one inference forward, from tensor liveness on the meta device.

    Args:
        model: a registered name, an import path, or an ``nn.Module`` (copied to meta; give ``input_shape``).
        batch_size: samples per batch.
        dtype: element size for floating tensors (``fp32``, ``fp16``, ...); integer tensors (max-pool
            indices) keep theirs.
        target: ``"cuda"`` (512-byte allocator blocks) or ``"cpu"`` (exact bytes).
        input_shape, num_classes, in_channels, image_size: overrides, as for ``create_model``.

    Returns:
        An :class:`InferenceMemory`: ``peak_bytes`` (activations only), ``peak_layer``, per-row
        ``live_after_bytes``; parameters, buffers and the input are reported separately.

    >>> m = inference_memory("vgg11", target="cpu")
    >>> m.peak_bytes, m.peak_layer
    (22478848, 'features.2')
    """
    _check(dtype, target)
    module, x, name = _meta_model(model, batch_size, input_shape, num_classes, in_channels, image_size)
    module.eval()
    tracker = _Tracker("meta", DTYPE_BYTES[dtype], TARGET_GRANULARITY_BYTES[target])
    labels: dict[str, str] = {}
    outputs: list[Any] = []
    with tracker:
        profile = profile_module(
            module, x, name=name, dtype=dtype, row_scope=tracker.row_scope, labels=labels,
            run=lambda m, inp: outputs.append(m(inp)),
        )
    tracker.current = None
    out = _first_tensor(outputs)
    output_bytes = tracker.storage_bytes(out)
    end_live = tracker.live
    result = InferenceMemory(
        model=name,
        input_shape=tuple(x.shape),
        dtype=dtype,
        target=target,
        granularity_bytes=tracker.granularity_bytes,
        param_bytes=_unique_bytes(module.parameters(), tracker),
        buffer_bytes=_unique_bytes(module.buffers(), tracker),
        input_bytes=tracker.storage_bytes(x),
        peak_bytes=tracker.peak,
        peak_layer=_resolve(tracker.peak_where, labels),
        lean_peak_bytes=tracker.peak_lean,
        output_bytes=output_bytes,
        sum_outputs_bytes=profile.total_act_bytes,
        layers=_layers([r.name for r in profile.layers], labels, tracker, end_live),
    )
    tracker.stop()
    return result


# --- training ------------------------------------------------------------------------------------------








def _steady_optimizer(module: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """A first step creates the optimizer state, so that the measured step is a steady one. Its forward and
    backward would change nothing: step() on zero gradients runs the same state initialisation. Returns the
    trainable parameters."""
    params: list[torch.Tensor] = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return params


def _saved_tensor_hooks(
    tracker: _Tracker, saved: dict[int, tuple[int, str]]
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``saved_tensors_hooks`` pack/unpack: record each activation storage saved for backward once (bytes, the
    row that saved it) in ``saved``, and attribute backward work to the row whose tensors it unpacks."""

    def pack(t: torch.Tensor) -> tuple[torch.Tensor, str]:
        label = tracker.current.label if tracker.current is not None else tracker.where
        if t.device.type == "meta":
            key = t.untyped_storage()._cdata
            entry = tracker.entries.get(key)
            if entry is not None and entry.category == "activations" and key not in saved:
                saved[key] = (entry.nbytes, label)
        return t, label

    def unpack(packed: tuple[torch.Tensor, str]) -> torch.Tensor:
        if tracker.phase == "backward":
            tracker.set_where(packed[1])
        return packed[0]

    return pack, unpack


def _resident(
    module: nn.Module, opt: torch.optim.Optimizer, tracker: _Tracker, x: torch.Tensor, tgt: torch.Tensor
) -> dict[str, int]:
    """What stays allocated across the step: parameters, buffers, optimizer state, input and targets."""
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.device.type == "meta"]
    return {
        "params": _unique_bytes(module.parameters(), tracker),
        "buffers": _unique_bytes(module.buffers(), tracker),
        "optimizer_state": _unique_bytes(iter(state), tracker),
        "input": tracker.storage_bytes(x) + tracker.storage_bytes(tgt),
    }


def training_memory(
    model: str | nn.Module,
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
    optimizer: str = "adam",
    target: str = "cuda",
    foreach: bool | None = None,
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> TrainingMemory:
    """Memory of one steady-state training step, run on the meta device.

    Args:
        model, batch_size, dtype, target, input_shape, num_classes, in_channels, image_size: as for
            :func:`inference_memory`.
        optimizer: a key of :data:`OPTIMIZERS` (``sgd``, ``sgd-momentum``, ``adam``, ``adamw``).
        foreach: the optimizer implementation; ``None`` picks PyTorch's default on the target (``foreach``
            on CUDA, the for-loop on the CPU).

    Returns:
        A :class:`TrainingMemory`: parameters, gradients, optimizer state, saved activations (per row and in
        total), the forward-end, backward and optimizer peaks, and the step's overall peak with its phase,
        place and breakdown.
    """
    _check(dtype, target)
    if dtype == "int8":
        raise InvalidInput("int8 is an inference format; model training memory in fp32, tf32, fp16 or bf16")
    check_optimizer(optimizer)
    use_foreach = (target == "cuda") if foreach is None else bool(foreach)
    module, x, name = _meta_model(model, batch_size, input_shape, num_classes, in_channels, image_size)
    module.train()
    tgt = torch.zeros(x.shape[0], dtype=torch.long, device="meta")
    opt = make_optimizer(optimizer, module.parameters(), foreach=use_foreach)
    dropout = _FusedDropout() if target == "cuda" else contextlib.nullcontext()
    params = _steady_optimizer(module, opt)
    tracker = _Tracker("meta", DTYPE_BYTES[dtype], TARGET_GRANULARITY_BYTES[target])
    hooks = [p.register_post_accumulate_grad_hook(lambda p: tracker.reclassify(p.grad, "gradients")) for p in params]
    saved: dict[int, tuple[int, str]] = {}
    pack, unpack = _saved_tensor_hooks(tracker, saved)
    labels: dict[str, str] = {}
    outputs: list[Any] = []

    def run(m: nn.Module, inp: torch.Tensor) -> None:
        with torch.enable_grad():
            outputs.append(m(inp))

    try:
        with dropout, tracker, torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            try:
                profile = profile_module(
                    module, x, name=name, dtype=dtype, row_scope=tracker.row_scope, labels=labels, run=run
                )
            except ShapeError as exc:  # e.g. BatchNorm in training with one value per channel
                raise ShapeError(f"{exc} (in a training step)") from None
            tracker.current = None
            forward_live = tracker.live
            tracker.set_phase("loss", "activations", "loss")
            loss = training_loss(outputs.pop(), tgt)
            forward_end = tracker.live
            tracker.set_phase("backward", "temporaries")
            loss.backward()
            del loss
            grad_bytes = tracker.by_category.get("gradients", 0)
            tracker.set_phase("optimizer", "optimizer_temporaries", "optimizer.step")
            opt.step()
            opt.zero_grad(set_to_none=True)
    finally:
        for h in hooks:
            h.remove()

    resident = _resident(module, opt, tracker, x, tgt)
    param_bytes, buffer_bytes = resident["params"], resident["buffers"]
    state_bytes, input_bytes = resident["optimizer_state"], resident["input"]
    saved_by_label: dict[str, int] = {}
    for nbytes, label in saved.values():
        saved_by_label[label] = saved_by_label.get(label, 0) + nbytes
    breakdown = resident | {
        c: tracker.peak_categories.get(c, 0) for c in ("activations", "gradients", "temporaries", "optimizer_temporaries")
    }
    result = TrainingMemory(
        model=name,
        input_shape=tuple(x.shape),
        dtype=dtype,
        target=target,
        granularity_bytes=tracker.granularity_bytes,
        optimizer=optimizer,
        foreach=use_foreach,
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        optimizer_state_bytes=state_bytes,
        input_bytes=input_bytes,
        grad_bytes=grad_bytes,
        saved_bytes=sum(n for n, _ in saved.values()),
        forward_end_bytes=forward_end,
        backward_peak_bytes=tracker.phase_peaks["backward"],
        optimizer_peak_bytes=tracker.phase_peaks["optimizer"],
        peak_bytes=sum(resident.values()) + tracker.peak,
        peak_phase=tracker.peak_phase,
        peak_where=_resolve(tracker.peak_where, labels),
        peak_breakdown=breakdown,
        layers=_layers(
            [r.name for r in profile.layers], labels, tracker, forward_live,
            saved=saved_by_label, backward={lbl: v for lbl, v in tracker.where_peaks.items()},
        ),
    )
    tracker.stop()
    return result


# --- batch scaling -------------------------------------------------------------------------------------


def memory_report(
    model: str | nn.Module,
    *,
    batch_sizes: Sequence[int] = (1,),
    dtype: str = "fp32",
    optimizer: str | None = "adam",
    target: str = "cuda",
    foreach: bool | None = None,
    input_shape: Sequence[int] | str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
) -> MemoryReport:
    """Inference and training memory of ``model`` at each batch size: the ``--batch-size 1,64,256`` sweep.

    ``report.terms()`` gives bytes per term per batch size and ``report.scales_with_batch()`` which terms
    grow with the batch (input, activations) and which do not (parameters, gradients, optimizer state).
    ``optimizer=None`` models inference only. Other arguments as for :func:`training_memory`.

    >>> r = memory_report("nin", batch_sizes=(1, 64), optimizer="sgd-momentum")
    >>> r.scales_with_batch()["optimizer_state_bytes"], r.scales_with_batch()["saved_bytes"]
    (False, True)
    """
    from deploykit._env import environment

    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes:
        raise InvalidInput("give at least one batch size")
    if any(b <= 0 for b in sizes):
        raise InvalidInput(f"batch sizes must be positive, got {', '.join(map(str, sizes))}")
    check_optimizer(optimizer, allow_none=True)
    overrides: dict[str, Any] = {
        "input_shape": input_shape, "num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
    }
    if isinstance(model, str):  # built once, copied for each batch size and for training (not 2 x len(sizes) times)
        module, spec = create_model(model, device="meta", **overrides)
        model = _Built(module, spec)  # type: ignore[assignment]
    inference = tuple(inference_memory(model, batch_size=b, dtype=dtype, target=target, **overrides) for b in sizes)
    training: tuple[TrainingMemory, ...] = ()
    if optimizer is not None:
        training = tuple(
            training_memory(
                model, batch_size=b, dtype=dtype, optimizer=optimizer, target=target, foreach=foreach, **overrides
            )
            for b in sizes
        )
    return MemoryReport(
        model=inference[0].model,
        sample_shape=inference[0].input_shape[1:],
        dtype=dtype,
        target=target,
        optimizer=optimizer,
        batch_sizes=sizes,
        inference=inference,
        training=training,
        env=environment(),
    )


# --- the reference: PyTorch's MemTracker on real tensors ---------------------------------------------------


