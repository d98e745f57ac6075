"""Numerical validation of an exported ONNX file: ONNX Runtime against eager PyTorch.

The verdict (``passed`` / ``inconclusive`` / ``failed``) is :func:`deploykit.metrics.judge_outputs`'s, on all
validation samples at once; in short, for every output::

    max_abs_error <= rtol * ref_max_abs           (ref_max_abs = max |eager output|; no absolute floor)
    dep_error     <= dep_rtol                     (relative L2 error of the outputs minus their mean over inputs)

``rtol`` is an error *relative to the output's scale* (``max_rel_error = max_abs_error / ref_max_abs`` is compared
with it). An element-wise relative error (``|a - e| / |e|``) is not used: logits near zero make it blow up although
the arithmetic is fine, and floating-point error is proportional to the magnitude of the sums that produced a
value, not to the value. ``dep_error`` checks the part of the output that depends on the input, which can be a tiny
share of a randomly initialised model's output: when the precision cannot resolve that part, when the reference is
all zero, below the precision's normal range or the same for every input, the verdict is *inconclusive*, never
*passed*. Non-finite, all-zero or constant outputs where the reference is not are *failed*.

Inputs: random (seeded standard normal, or integers in a range for token inputs), or the samples of a labelled
test split (``data=``): then the record also holds the accuracy of eager PyTorch and of the graph and their top-1
agreement (:func:`deploykit.metrics.logit_metrics`, the metrics of ``deploykit evaluate``).

ONNX Runtime runs here through :mod:`deploykit.backends.ort` (sessions, providers, fp16 coverage), which imports it
lazily, after torch.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch

from deploykit.backends.math_mode import fp32_math_record, ort_cuda_options, true_fp32
from deploykit.backends.ort import (  # noqa: F401  (re-exported: this module's names before they moved)
    CPU_PROVIDER,
    CUDA_PROVIDER,
    ORT_GPU_HINT,
    cuda_provider_available,
    fp16_coverage,
    import_onnxruntime,
    make_session,
    ort_dtype_to_torch,
    require_cuda_provider,
)
from deploykit.errors import ValidationError, first_line
from deploykit.metrics import (  # re-exported: the tolerances and the verdict live with the other metrics
    CRITERION,
    TOLERANCES,
    Tolerance,
    Verdict,
    judge_outputs,
    logit_metrics,
    tolerance_for,
)

__all__ = [
    "CRITERION",
    "TOLERANCES",
    "Tolerance",
    "Verdict",
    "compare_outputs",
    "cuda_provider_available",
    "describe_failure",
    "fp16_coverage",
    "import_onnxruntime",
    "input_sensitivity",
    "judge_outputs",
    "make_session",
    "require_cuda_provider",
    "tolerance_for",
    "true_fp32",
    "validate_onnx",
    "validation_scope",
]


#: The largest finite fp16 value and the smallest normal one (below it fp16 loses precision, then becomes 0).
FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14



def compare_outputs(actual: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> dict[str, Any]:
    """Compare one output with its reference (both on any device, any float dtype; compared in float64).

    Returns ``max_abs_error``, ``max_rel_error`` (``max_abs_error / ref_max_abs``; ``inf`` for a zero reference
    with a non-zero error), ``ref_max_abs``, ``finite``, ``passed`` and, for 2-D (batch x classes) outputs,
    ``top1_agreement`` (the share of rows whose argmax agrees). The one comparison every export, engine and
    benchmark cell uses.
    """
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if tuple(a.shape) != tuple(e.shape):
        raise ValidationError(f"output shape {tuple(a.shape)} differs from eager PyTorch's {tuple(e.shape)}")
    finite = bool(torch.isfinite(a).all())
    ref_max = float(e.abs().max()) if e.numel() else 0.0
    max_abs = float((a - e).abs().max()) if finite and e.numel() else (0.0 if finite else math.inf)
    # relative to the reference's scale; a zero reference allows only a zero error
    max_rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else math.inf)
    passed = finite and max_abs <= tol.allowed(ref_max)
    top1 = None
    if a.dim() == 2 and a.shape[0] > 0 and a.shape[1] > 1:
        top1 = float((a.argmax(1) == e.argmax(1)).double().mean())
    return {
        "max_abs_error": max_abs,
        "max_rel_error": max_rel,
        "ref_max_abs": ref_max,
        "finite": finite,
        "passed": passed,
        "top1_agreement": top1,
    }


def input_sensitivity(refs: Sequence[torch.Tensor]) -> float | None:
    """How much an output varies across the random inputs, relative to its magnitude.

    ``max |r - mean_over_samples(r)| / max |r|`` over all reference samples (concatenated along the batch);
    ``None`` with fewer than two samples or a zero reference.
    """
    if not refs:
        return None
    r = torch.cat([t.detach().to("cpu", torch.float64).reshape(t.shape[0], -1) for t in refs], dim=0)
    if r.shape[0] < 2:
        return None
    scale = float(r.abs().max())
    if scale == 0:
        return None
    return float((r - r.mean(dim=0, keepdim=True)).abs().max()) / scale


# ------------------------------------------------------------------------------------------------ validation
def as_outputs(out: Any) -> list[torch.Tensor]:
    """A model's output as a flat list of tensors (a tensor, or a tuple/list/dict of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in as_outputs(o)]
    if isinstance(out, Mapping):
        return [t for o in out.values() for t in as_outputs(o)]
    raise ValidationError(f"model returned {type(out).__name__}; expected tensors")


def _draw_input(shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator,
                input_range: tuple[int, int] | None) -> torch.Tensor:
    """Standard normal values for a floating-point input; for an integer / bool input (token ids, indices),
    integers uniform in ``input_range`` (``[0, 2)`` for bool)."""
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    if input_range is None:
        if dtype != torch.bool:
            raise ValidationError("the graph takes an integer input: give the range of valid values (--input-range LO,HI)")
        input_range = (0, 2)
    return torch.randint(input_range[0], input_range[1], shape, generator=gen).to(dtype)


def _validation_batches(
    batch_sizes: Sequence[int], sample_shape: Sequence[int], in_dtype: torch.dtype, seed: int,
    input_range: tuple[int, int] | None, data: Any, fixed_batch: int | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, int]]:
    """``(x, labels, n)``: the inputs of each validation run and how many of its samples are real (a fixed-batch
    graph gets the last batch of a data split padded with zeros; the padding is dropped from the comparison)."""
    if data is None:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        for b in batch_sizes:
            yield _draw_input((b, *sample_shape), in_dtype, gen, input_range), None, b
        return
    step = fixed_batch or max(batch_sizes)
    for x, y in data.batches(step):
        n = x.shape[0]
        if fixed_batch is not None and n < fixed_batch:
            x = torch.cat([x, x.new_zeros((fixed_batch - n, *x.shape[1:]))])
        yield x.to(in_dtype) if in_dtype.is_floating_point else x, y, n


def validate_onnx(
    path: str | os.PathLike[str],
    reference: Callable[[torch.Tensor], Any],
    *,
    sample_shape: Sequence[int],
    precision: str,
    batch_sizes: Sequence[int],
    device: torch.device,
    seed: int = 0,
    tolerances: Mapping[str, Tolerance] | None = None,
    reference_desc: str = "eager PyTorch (fp32)",
    warnings: Sequence[str] = (),
    input_range: tuple[int, int] | None = None,
    data: Any = None,
    fixed_batch: int | None = None,
) -> dict[str, Any]:
    """Run the ONNX file in ONNX Runtime and compare every output with ``reference``; the verdict is
    :func:`deploykit.metrics.judge_outputs`'s on all samples together.

    Inputs: without ``data``, standard normal from a ``torch.Generator`` seeded with ``seed`` (one batch per entry
    of ``batch_sizes``; an integer or bool input draws integers uniform in ``input_range`` ``[LO, HI)``). With
    ``data`` (a :class:`~deploykit.data.LabelledData`, already checked against the model), its samples in batches
    of ``fixed_batch`` (a fixed-batch graph) or ``max(batch_sizes)``, and the record's ``accuracy`` holds
    :func:`~deploykit.metrics.logit_metrics` of eager PyTorch and of the graph (accuracy, top-1 agreement, logit
    errors, cosine). An fp16 graph gets inputs rounded to fp16 and the fp32 reference the same values.
    ``reference(x)`` runs on ``device`` in fp32.

    Returns the manifest record: ``status`` (``passed`` / ``inconclusive`` / ``failed``), ``passed`` (``True``,
    ``None`` for inconclusive, ``False``), ``reason`` and ``advice`` (one line each), ``verdict`` (per output
    numbers), the worst errors, ``runs`` (per batch) and ``warnings``. It does not raise on a numerical
    failure, only when the file cannot be run at all.
    """
    tol = tolerance_for(precision, tolerances)
    # True fp32 on both sides (deploykit.backends.math_mode): ONNX Runtime's CUDA provider defaults to TF32.
    sess = make_session(path, device, cuda_options=ort_cuda_options(precision) if device.type == "cuda" else None)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ValidationError(f"{path} has {len(inputs)} inputs; deploykit validates single-input models")
    in_name = inputs[0].name
    in_dtype = ort_dtype_to_torch(inputs[0].type)
    out_names = [o.name for o in sess.get_outputs()]
    math_record = fp32_math_record(device)
    runs: list[dict[str, Any]] = []
    refs: dict[str, list[torch.Tensor]] = {n: [] for n in out_names}
    gots: dict[str, list[torch.Tensor]] = {n: [] for n in out_names}
    labels: list[torch.Tensor] = []
    for x, y, n in _validation_batches(batch_sizes, sample_shape, in_dtype, seed, input_range, data, fixed_batch):
        try:
            got = sess.run(None, {in_name: x.numpy()})
        except Exception as exc:
            first = first_line(exc)
            raise ValidationError(f"ONNX Runtime failed to run {path} on a batch of {x.shape[0]}: {first}") from None
        with torch.inference_mode(), true_fp32() if device.type == "cuda" else contextlib.nullcontext():
            if device.type == "cuda":
                math_record = fp32_math_record(device)
            ref = as_outputs(reference(x.to(device=device, dtype=torch.float32 if x.is_floating_point() else x.dtype)))
        if len(ref) != len(got):
            raise ValidationError(f"the ONNX graph has {len(got)} outputs, eager PyTorch returned {len(ref)}")
        outs = []
        for name, g, r in zip(out_names, got, ref, strict=True):
            g_t, r_t = torch.from_numpy(g)[:n], r.detach()[:n].float().cpu()
            rec = compare_outputs(g_t, r_t, tol)
            outs.append({"name": name, **rec})
            refs[name].append(r_t)
            gots[name].append(g_t.float())
        if y is not None:
            labels.append(y)
        runs.append({"batch_size": n, "passed": all(o["passed"] for o in outs), "outputs": outs})
    if not runs:
        raise ValidationError("no validation inputs")
    verdict = judge_outputs(
        {k: torch.cat(v) for k, v in gots.items()}, {k: torch.cat(v) for k, v in refs.items()}, tol,
        precision=precision,
    )
    worst_abs = max(o.max_abs_error for o in verdict.outputs)
    worst_rel = max(o.max_rel_error for o in verdict.outputs)
    sens = {o.name: o.input_sensitivity for o in verdict.outputs}
    accuracy = None
    if labels:
        first = out_names[0]
        y_all = torch.cat(labels)
        ref0, got0 = torch.cat(refs[first]), torch.cat(gots[first])
        if ref0.dim() == 2:
            eager_m = logit_metrics(ref0, y_all)
            onnx_m = logit_metrics(got0, y_all, ref0)
            accuracy = {"output": first, "eager": asdict(eager_m), "onnx": asdict(onnx_m)}
    provider = CUDA_PROVIDER if device.type == "cuda" else CPU_PROVIDER
    return {
        "status": verdict.status,
        "passed": True if verdict.passed else (False if verdict.failed else None),
        "reason": verdict.reason,
        "advice": verdict.advice,
        "precision": precision,
        "device": str(device),
        "provider": provider,
        "reference": reference_desc,
        "fp32_math": math_record,
        "criterion": CRITERION,
        "tolerance": tol.to_dict(),
        "inputs": (
            {"kind": "data", **data.to_dict(), "batch_size": fixed_batch or max(batch_sizes)}
            if data is not None
            else {"kind": "random", "seed": seed, "batch_sizes": list(batch_sizes)}
        ),
        "seed": seed,
        "batch_sizes": [r["batch_size"] for r in runs],
        "samples": sum(r["batch_size"] for r in runs),
        "max_abs_error": worst_abs,
        "max_rel_error": worst_rel,
        "input_sensitivity": sens,
        "accuracy": accuracy,
        "verdict": verdict.to_dict(),
        "runs": runs,
        "warnings": list(warnings),
    }


def describe_failure(record: Mapping[str, Any]) -> str:
    """One line saying why a validation record failed (or was inconclusive): the verdict's reason, where it was
    measured, and what fp16's range has to do with it."""
    reason = record.get("reason") or "no reason recorded"
    prec = record.get("precision")
    extra = ""
    outs = (record.get("verdict") or {}).get("outputs", [])
    ref_max = max((o["ref_max_abs"] for o in outs), default=None)
    if prec == "fp16" and ref_max is not None:
        if ref_max < FP16_MIN_NORMAL:
            extra = (f", below fp16's smallest normal value {FP16_MIN_NORMAL:.2g}: the fp16 graph underflows with "
                     "these weights")
        elif ref_max > FP16_MAX:
            extra = f"; eager PyTorch's output reaches {ref_max:.3g}, beyond fp16's largest value {FP16_MAX:g}: the fp16 graph overflows"
    inputs = record.get("inputs") or {}
    where = (
        f"{record.get('samples')} samples of {inputs.get('name')} ({inputs.get('split')})"
        if inputs.get("kind") == "data"
        else f"{len(record.get('runs', []))} random batches"
    )
    return f"{reason}{extra} ({where}, {record.get('provider')})"


def validation_scope(
    precision: str, device: torch.device, batch_sizes: Sequence[int], coverage: Mapping[str, Any] | None,
    *, data: Any = None,
) -> tuple[list[str], list[str]]:
    """What a validation on ``device`` did and did not check, in words for the manifest."""
    provider = CUDA_PROVIDER if device.type == "cuda" else CPU_PROVIDER
    on = (
        f"the {len(data)} samples of {data.name} ({data.split}), with accuracy and top-1 agreement"
        if data is not None
        else f"random batches of {', '.join(map(str, batch_sizes))}"
    )
    validated = [
        "onnx.checker.check_model(full_check=True): graph, types and strict shape inference",
        f"outputs of ONNX Runtime ({provider}, {device}) vs eager PyTorch fp32 on {on}",
    ]
    not_validated: list[str] = []
    if precision == "fp16":
        validated.append("fp16 inputs, outputs and weights (rounded from fp32) within the fp16 tolerance")
        if coverage is not None:
            n, n16, n32 = coverage["float_nodes"], coverage["fp16_nodes"], coverage["fp32_nodes"]
            if n16:
                validated.append(f"fp16 arithmetic of {n16} of {n} float nodes in {provider}")
            if n32:
                ops = ", ".join(f"{k} x{v}" for k, v in coverage["fp32_op_types"].items())
                where = (
                    "validate on a GPU with the CUDA provider (onnxruntime-gpu) for the fp16 arithmetic"
                    if device.type == "cpu"
                    else "those nodes have no fp16 kernel in this provider"
                )
                not_validated.append(
                    f"fp16 arithmetic of {n32} of {n} float nodes: ONNX Runtime's {provider} has no fp16 kernel "
                    f"for them and ran them in fp32 between inserted Casts ({ops}); {where}"
                )
    return validated, not_validated
