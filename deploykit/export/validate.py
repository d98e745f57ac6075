"""Numerical validation of an exported ONNX file: ONNX Runtime against eager PyTorch.

The rule, for every output of every validation run::

    max_abs_error <= atol + rtol * ref_max_abs

``ref_max_abs`` is the largest magnitude of the eager reference output, so ``rtol`` is an error *relative to the
output's scale* and ``max_rel_error = max_abs_error / ref_max_abs`` is the number compared with it. An element-wise
relative error (``|a - e| / |e|``) is not used: logits near zero make it blow up although the arithmetic is fine,
and floating-point error is proportional to the magnitude of the sums that produced a value, not to the value.
``atol`` only matters for an all-zero reference. Non-finite outputs always fail.

Randomly initialised models (the zoo downloads no weights) can have outputs that barely depend on the input; the
record then says so (``input_sensitivity`` and a warning), because a check on such outputs cannot see an error in
the input-dependent path.

ONNX Runtime runs here through :mod:`deploykit.backends.ort` (sessions, providers, fp16 coverage), which imports it
lazily, after torch.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
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
from deploykit.errors import InvalidInput, ValidationError
from deploykit.precision import Precision, Tolerance

#: The numbers are for the shape of the rule above (relative to the output's scale).
CRITERION = "max_abs_error <= atol + rtol * ref_max_abs (per output; ref_max_abs = max |eager output|)"


#: Per-precision tolerances, from :class:`deploykit.precision.Precision` (where the numbers are explained): one table
#: for the ONNX export, the TensorRT engine and the benchmark cells.
TOLERANCES: dict[str, Tolerance] = {
    p.value: p.tolerance for p in (Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8)
}

#: The largest finite fp16 value and the smallest normal one (below it fp16 loses precision, then becomes 0).
FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14

#: Below this share of its magnitude an output hardly depends on the input (random init); warn.
LOW_SENSITIVITY = 1e-3


def tolerance_for(precision: str, overrides: Mapping[str, Tolerance] | None = None) -> Tolerance:
    """The tolerance for ``precision`` (``overrides`` first, then :data:`TOLERANCES`)."""
    if overrides and precision in overrides:
        return overrides[precision]
    if precision not in TOLERANCES:
        raise InvalidInput(
            f"no validation tolerance for precision {precision!r}; known: {', '.join(TOLERANCES)}"
        )
    return TOLERANCES[precision]


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
) -> dict[str, Any]:
    """Run the ONNX file in ONNX Runtime on random inputs and compare every output with ``reference``.

    Inputs are standard normal from a ``torch.Generator`` seeded with ``seed`` (one batch per entry of
    ``batch_sizes``), rounded to fp16 for an fp16 graph and given to the fp32 reference as the same values; an
    integer or bool input (token ids) draws integers uniform in ``input_range`` ``[LO, HI)`` instead.
    ``reference(x)`` runs on ``device`` in fp32. Returns the manifest record (``passed`` says the verdict); it
    does not raise on a numerical failure, only when the file cannot be run at all.
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
    gen = torch.Generator(device="cpu").manual_seed(seed)
    math_record = fp32_math_record(device)
    runs: list[dict[str, Any]] = []
    refs: dict[str, list[torch.Tensor]] = {n: [] for n in out_names}
    for b in batch_sizes:
        x = _draw_input((b, *sample_shape), in_dtype, gen, input_range)
        try:
            got = sess.run(None, {in_name: x.numpy()})
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValidationError(f"ONNX Runtime failed to run {path} on a batch of {b}: {first}") from None
        with torch.inference_mode(), true_fp32() if device.type == "cuda" else contextlib.nullcontext():
            if device.type == "cuda":
                math_record = fp32_math_record(device)
            ref = as_outputs(reference(x.to(device=device, dtype=torch.float32 if x.is_floating_point() else x.dtype)))
        if len(ref) != len(got):
            raise ValidationError(f"the ONNX graph has {len(got)} outputs, eager PyTorch returned {len(ref)}")
        outs = []
        for name, g, r in zip(out_names, got, ref, strict=True):
            rec = compare_outputs(torch.from_numpy(g), r, tol)
            outs.append({"name": name, **rec})
            refs[name].append(r.detach().float().cpu())
        runs.append({"batch_size": b, "passed": all(o["passed"] for o in outs), "outputs": outs})
    worst_abs = max(o["max_abs_error"] for r in runs for o in r["outputs"])
    worst_rel = max(o["max_rel_error"] for r in runs for o in r["outputs"])
    sens = {n: input_sensitivity(v) for n, v in refs.items()}
    notes = list(warnings)
    for n, s in sens.items():
        if s is not None and s < LOW_SENSITIVITY:
            notes.append(
                f"output {n!r} varies by only {s:.1e} of its magnitude across the random inputs (random init?): "
                "the check cannot see errors in the input-dependent part of the model"
            )
    provider = CUDA_PROVIDER if device.type == "cuda" else CPU_PROVIDER
    return {
        "status": "passed" if all(r["passed"] for r in runs) else "failed",
        "passed": all(r["passed"] for r in runs),
        "precision": precision,
        "device": str(device),
        "provider": provider,
        "reference": reference_desc,
        "fp32_math": math_record,
        "criterion": CRITERION,
        "tolerance": tol.to_dict(),
        "seed": seed,
        "batch_sizes": list(batch_sizes),
        "max_abs_error": worst_abs,
        "max_rel_error": worst_rel,
        "input_sensitivity": sens,
        "runs": runs,
        "warnings": notes,
    }


def describe_failure(record: Mapping[str, Any]) -> str:
    """One line with the numbers of a failed validation record: how many runs failed and the worst one."""
    runs = record.get("runs", [])
    failing = [(run, o) for run in runs for o in run["outputs"] if not o["passed"]]
    if not failing:
        return "no failing output"
    # the worst: non-finite first, then the largest error relative to the output's scale
    run, o = max(failing, key=lambda ro: (not ro[1]["finite"], ro[1]["max_rel_error"]))
    if o["finite"]:
        why = (
            f"max abs error {o['max_abs_error']:.3g}, max rel error {o['max_rel_error']:.3g} "
            f"(of |ref| max {o['ref_max_abs']:.3g}"
        )
        if record.get("precision") == "fp16" and o["ref_max_abs"] < FP16_MIN_NORMAL:
            why += f", below fp16's smallest normal value {FP16_MIN_NORMAL:.2g}: the fp16 graph underflows"
    else:
        why = f"non-finite values (|ref| max {o['ref_max_abs']:.3g}"
        if record.get("precision") == "fp16" and o["ref_max_abs"] > FP16_MAX:
            why += f", beyond fp16's largest value {FP16_MAX:g}: the fp16 graph overflows"
    why += ")"
    n_bad = len({id(r) for r, _ in failing})
    tol = record.get("tolerance", {})
    return (
        f"{n_bad} of {len(runs)} random batches fail; worst: batch of {run['batch_size']}, output {o['name']!r}: "
        f"{why}; allowed: atol {tol.get('atol')} + rtol {tol.get('rtol')} x |ref| max ({record.get('provider')})"
    )


def validation_scope(
    precision: str, device: torch.device, batch_sizes: Sequence[int], coverage: Mapping[str, Any] | None
) -> tuple[list[str], list[str]]:
    """What a validation on ``device`` did and did not check, in words for the manifest."""
    provider = CUDA_PROVIDER if device.type == "cuda" else CPU_PROVIDER
    validated = [
        "onnx.checker.check_model(full_check=True): graph, types and strict shape inference",
        f"outputs of ONNX Runtime ({provider}, {device}) vs eager PyTorch fp32 on random batches of "
        f"{', '.join(map(str, batch_sizes))}",
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
