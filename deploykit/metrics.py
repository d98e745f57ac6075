"""Comparing an artifact's outputs with eager PyTorch's: logit metrics, tolerances and the validation verdict.

One place for the numbers every check uses (the ONNX export's validation, ``deploykit evaluate``, INT8 and
TensorRT checks), so that "passed" means the same thing everywhere:

* :func:`logit_metrics`: accuracy (top-1 / top-5) against labels and, given the eager logits, top-1 agreement,
  absolute logit errors and the cosine similarity of logits.
* :class:`Tolerance` / :data:`TOLERANCES`: per-precision tolerances, relative to the reference's scale.
* :func:`judge_outputs` -> :class:`Verdict`: ``passed``, ``inconclusive`` or ``failed``, with one line saying why
  and, when it did not pass, what to do.

The verdict, per output (a reference ``R`` and the artifact's ``A`` over all validation samples)::

    scale       = max |R|                      allowed = rtol * scale          (no absolute floor)
    D_R, D_A    = R, A minus their mean over the samples: the input-dependent part
    dep_error   = ||D_A - D_R|| / ||D_R||      (relative L2 error of the input-dependent part)

* **failed** when the artifact is non-finite where the reference is finite; constant across inputs (all zeros
  included) while the reference varies by more than ``allowed``; ``max |A - R| > allowed``; or ``dep_error >
  dep_rtol`` although the precision's expected rounding (``noise * scale``) is below ``dep_rtol`` of the
  input-dependent part, so rounding cannot explain it (with the table's numbers this can happen in fp32 only).
* **inconclusive** (nothing failed, but the check could not confirm the input-dependent part to ``dep_rtol``,
  so a 1% error there could have gone unseen): the reference is all zero; it is below the precision's normal
  range (fp16: 6.1e-05); it does not vary with the input (fewer than two samples, or the same output for every
  input); or ``dep_error > dep_rtol`` while the precision's rounding could explain it.
* **passed** otherwise: every output is within ``allowed`` of the reference *and* its input-dependent part is
  within ``dep_rtol`` (0.5% for fp32 and fp16) of the reference's, so an error of 1% there would not have passed.

A zero or constant output can satisfy none of this where the reference is not zero or constant: its
``dep_error`` is 1. The record also carries the cosine similarity of the whole output with the reference's and,
for classification logits (2-D, more than one class), the top-1 agreement (a disagreement on a sample whose
reference margin exceeds twice ``allowed`` implies ``max |A - R| > allowed``, so it always fails).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from deploykit.errors import InvalidInput, ValidationError
from deploykit.precision import Precision, Tolerance

__all__ = [
    "CRITERION",
    "STATUSES",
    "TOLERANCES",
    "LogitMetrics",
    "OutputCheck",
    "Tolerance",
    "Verdict",
    "judge_outputs",
    "logit_metrics",
    "tolerance_for",
]

#: The verdicts, best first.
STATUSES = ("passed", "inconclusive", "failed")

CRITERION = (
    "per output: max|A - R| <= rtol * max|R|, and the input-dependent part (A, R minus their mean over the inputs) "
    "within dep_rtol (relative L2); inconclusive when that part could not be resolved"
)


# ------------------------------------------------------------------------------------------------ tolerances
#: Per-precision tolerances, from :class:`deploykit.precision.Precision` (where the numbers are explained): one table
#: for the ONNX export, the TensorRT engine and the benchmark cells.
TOLERANCES: dict[str, Tolerance] = {
    p.value: p.tolerance for p in (Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8)
}


def tolerance_for(precision: str, overrides: Mapping[str, Tolerance] | None = None) -> Tolerance:
    """The tolerance for ``precision`` (``overrides`` first, then :data:`TOLERANCES`)."""
    if overrides and precision in overrides:
        return overrides[precision]
    if precision not in TOLERANCES:
        raise InvalidInput(f"no validation tolerance for precision {precision!r}; known: {', '.join(TOLERANCES)}")
    return TOLERANCES[precision]


# ------------------------------------------------------------------------------------------- logit metrics
@dataclass(frozen=True)
class LogitMetrics:
    """Metrics of one artifact's logits on one data split (fractions in 0..1; see :func:`logit_metrics`).

    The comparison fields are ``None`` when there is no reference (an ONNX file evaluated without its model).
    """

    samples: int
    top1: float
    top5: float | None
    agreement: float | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    cosine_mean: float | None = None
    cosine_min: float | None = None
    nonfinite_samples: int = 0


def _predictions(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax with -1 for samples holding NaN/inf, mask of finite samples)."""
    finite = torch.isfinite(logits).all(1)
    pred = logits.nan_to_num(0.0).argmax(1)
    return torch.where(finite, pred, torch.full_like(pred, -1)), finite


def logit_metrics(
    logits: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor | None = None, *, topk: int = 5
) -> LogitMetrics:
    """Accuracy of ``logits`` (N x classes) against ``labels`` and, given the ``reference`` logits (eager
    PyTorch), their top-1 agreement, absolute errors and cosine similarity. Computed in float64 on the CPU.

    * ``top1`` / ``top5``: accuracy against the labels (top-5 only with more than ``topk`` classes);
    * ``agreement``: the share of samples whose predicted class (argmax) equals the reference's;
    * ``max_abs_error`` / ``mean_abs_error``: of the logits against the reference's, over all samples and classes;
    * ``cosine_mean`` / ``cosine_min``: cosine similarity of each sample's logit vector with the reference's.

    A sample whose output holds NaN or inf counts as wrong and as disagreeing.

    >>> logit_metrics(torch.tensor([[2., 1.], [0., 3.]]), torch.tensor([0, 0])).top1
    0.5
    """
    a = logits.detach().to("cpu", torch.float64)
    if a.dim() != 2 or a.shape[0] != labels.shape[0]:
        raise InvalidInput(f"logits of shape {tuple(a.shape)} do not match {labels.shape[0]} labels")
    y = labels.to("cpu")
    n, classes = a.shape
    pred, finite = _predictions(a)
    top1 = float((pred == y).double().mean()) if n else math.nan
    top5 = None
    if classes > topk:
        top = a.nan_to_num(-math.inf).topk(topk, dim=1).indices
        hit = (top == y[:, None]).any(1) & finite
        top5 = float(hit.double().mean())
    if reference is None:
        return LogitMetrics(samples=n, top1=top1, top5=top5, nonfinite_samples=int((~finite).sum()))
    r = reference.detach().to("cpu", torch.float64)
    if tuple(r.shape) != tuple(a.shape):
        raise InvalidInput(f"logits of shape {tuple(a.shape)} and reference {tuple(r.shape)} differ")
    ref_pred, _ = _predictions(r)
    diff = (a - r).abs()
    all_finite = bool(finite.all())
    cos = torch.nn.functional.cosine_similarity(a.nan_to_num(0.0), r, dim=1, eps=1e-30)
    cos = torch.where(finite, cos, torch.zeros_like(cos))
    return LogitMetrics(
        samples=n,
        top1=top1,
        top5=top5,
        agreement=float((pred == ref_pred).double().mean()),
        max_abs_error=float(diff.max()) if all_finite else math.inf,
        mean_abs_error=float(diff.mean()) if all_finite else math.inf,
        cosine_mean=float(cos.mean()),
        cosine_min=float(cos.min()),
        nonfinite_samples=int((~finite).sum()),
    )


# ---------------------------------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class OutputCheck:
    """The numbers and the verdict of one output (see the module docstring for the rule).

    ``input_sensitivity``: ``max|D_R| / max|R|``, how much the output varies across the inputs relative to its
    magnitude. ``dep_error``: relative L2 error of the input-dependent part (``None`` when it has none).
    ``cosine``: of the whole output (flattened) with the reference's. ``top1_agreement`` / ``decisive_disagreements``
    for classification outputs (2-D, more than one class): the share of samples with the reference's argmax, and
    the count of disagreeing samples whose reference margin exceeds twice the allowed error.
    """

    name: str
    status: str
    reason: str
    samples: int
    finite: bool
    ref_max_abs: float
    max_abs_error: float
    max_rel_error: float
    allowed_abs_error: float
    input_sensitivity: float | None
    dep_error: float | None
    cosine: float | None
    top1_agreement: float | None = None
    decisive_disagreements: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The outcome of a validation: ``status`` (``passed`` / ``inconclusive`` / ``failed``), one line saying
    why (``reason``; for a passed check, the numbers), what to do when it did not pass (``advice``), and every
    output's :class:`OutputCheck`. The worst output decides: failed > inconclusive > passed."""

    status: str
    reason: str
    advice: str
    outputs: tuple[OutputCheck, ...]

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def inconclusive(self) -> bool:
        return self.status == "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "advice": self.advice,
            "outputs": [o.to_dict() for o in self.outputs],
        }


def _flat(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().to("cpu", torch.float64)
    return t.reshape(t.shape[0], -1) if t.dim() >= 1 else t.reshape(1, 1)


def _g(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2g}"


def _check_output(
    name: str, actual: torch.Tensor, reference: torch.Tensor, tol: Tolerance, precision: str
) -> OutputCheck:
    a, r = _flat(actual), _flat(reference)
    if tuple(actual.shape) != tuple(reference.shape):
        raise ValidationError(f"output {name!r} has shape {tuple(actual.shape)}, eager PyTorch's {tuple(reference.shape)}")
    n = a.shape[0]
    ref_finite = bool(torch.isfinite(r).all())
    finite = bool(torch.isfinite(a).all())
    scale = float(r.abs().max()) if r.numel() and ref_finite else 0.0
    allowed = tol.allowed(scale)
    max_abs = float((a - r).abs().max()) if finite and r.numel() else (0.0 if finite else math.inf)
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    cosine = None
    sens = dep_error = None
    a_const = True
    if finite and r.numel():
        na, nr = float(a.norm()), float(r.norm())
        cosine = float((a * r).sum()) / (na * nr) if na > 0 and nr > 0 else (1.0 if na == nr == 0 else 0.0)
        if n >= 2:
            dr = r - r.mean(0, keepdim=True)
            da = a - a.mean(0, keepdim=True)
            spread = float(dr.abs().max())
            sens = spread / scale if scale > 0 else None
            a_const = float(da.abs().max()) <= 1e-9 * float(a.abs().max())
            dn = float(dr.norm())
            dep_error = float((da - dr).norm()) / dn if dn > 0 else None
    top1 = decisive = None
    if finite and reference.dim() == 2 and n > 0 and reference.shape[1] > 1:
        top2 = r.topk(2, dim=1).values
        margin = top2[:, 0] - top2[:, 1]
        agree = a.argmax(1) == r.argmax(1)
        top1 = float(agree.double().mean())
        decisive = int(((~agree) & (margin > 2 * allowed)).sum())

    def check(status: str, reason: str) -> OutputCheck:
        return OutputCheck(name, status, reason, n, finite, scale, max_abs, max_rel, allowed, sens, dep_error,
                           cosine, top1, decisive)

    spread_abs = (sens or 0.0) * scale
    # ---- failed: the check saw a difference the precision cannot explain
    if not ref_finite:
        return check("failed", "eager PyTorch's own output is not finite: nothing to compare with")
    if not finite:
        return check("failed", "non-finite values (NaN or inf) where eager PyTorch's output is finite")
    if scale > 0 and float(a.abs().max()) == 0.0 and max_abs > allowed:
        return check("failed", f"the output is all zeros; eager PyTorch's is not (max |ref| {_g(scale)})")
    if n >= 2 and a_const and spread_abs > allowed:
        return check("failed", "the output is the same for every input; eager PyTorch's varies with the input")
    if max_abs > allowed:
        return check("failed", f"max abs error {_g(max_abs)} = {_g(max_rel)} of max |ref| {_g(scale)} "
                               f"(allowed: rtol {tol.rtol:g})")
    if dep_error is not None and dep_error > tol.dep_rtol and tol.noise * scale < tol.dep_rtol * spread_abs:
        return check("failed", f"the input-dependent part of the output differs by {_g(dep_error)} (relative L2; "
                               f"allowed {tol.dep_rtol:g})")
    # ---- inconclusive: nothing failed, but a 1% error of the input-dependent part could have gone unseen
    if scale == 0.0:
        return check("inconclusive", "eager PyTorch's output is all zeros: any graph that outputs zeros matches it")
    if scale < tol.normal_min:
        return check("inconclusive", f"eager PyTorch's output (max |ref| {_g(scale)}) is below {precision}'s smallest "
                                     f"normal value {_g(tol.normal_min)}: the graph computes it in subnormals")
    if n < 2:
        return check("inconclusive", "one input only: how the output depends on the input was not checked")
    if dep_error is None:
        return check("inconclusive", "eager PyTorch's output is the same for every input: the check cannot see "
                                     "errors in how the model uses its input")
    if dep_error > tol.dep_rtol:
        return check("inconclusive", f"the output varies by only {_g(sens or 0.0)} of its magnitude across the "
                                     f"inputs and that part differs by {_g(dep_error)} (relative L2), which "
                                     f"{precision}'s rounding (about {tol.noise:g} of the magnitude) could explain: "
                                     "the check cannot see errors in the input-dependent part")
    return check("passed", f"max rel error {_g(max_rel)} (allowed {tol.rtol:g}), input-dependent part "
                           f"{_g(dep_error)} (allowed {tol.dep_rtol:g})")


#: What to do when a check did not pass, by cause.
ADVICE_INCONCLUSIVE = (
    "export with the trained weights (--weights) and validate on real inputs (--data) so that the outputs depend "
    "on the input; --strict makes an inconclusive validation exit 1"
)
ADVICE_FAILED = "the artifact does not compute what eager PyTorch computes; it was kept only for inspection"


def judge_outputs(
    actual: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    reference: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    tol: Tolerance,
    *,
    precision: str = "fp32",
    names: Sequence[str] | None = None,
) -> Verdict:
    """The verdict on an artifact's outputs against the reference's (see the module docstring).

    Args:
        actual: the artifact's outputs, one tensor per output with all validation samples along dim 0
            (concatenate the batches first), or a mapping name -> tensor.
        reference: eager PyTorch's outputs on the same inputs, the same structure.
        tol: the precision's :class:`Tolerance` (:func:`tolerance_for`).
        precision: named in the reasons (``"fp16"``...).
        names: output names for sequences (default ``output``, ``output_1``...).

    Returns a :class:`Verdict`; it never raises for a numerical difference, only when the outputs' number or
    shapes differ (:class:`ValidationError`).

    >>> r = torch.randn(8, 10)
    >>> judge_outputs([r.clone()], [r], tolerance_for("fp32")).status
    'passed'
    >>> judge_outputs([torch.zeros(8, 10)], [r], tolerance_for("fp32")).status
    'failed'
    """
    if isinstance(actual, Mapping) != isinstance(reference, Mapping):
        raise ValidationError("actual and reference outputs must both be sequences or both be mappings")
    if isinstance(actual, Mapping):
        assert isinstance(reference, Mapping)
        if list(actual) != list(reference):
            raise ValidationError(f"outputs {list(actual)} differ from eager PyTorch's {list(reference)}")
        keys, acts, refs = list(actual), list(actual.values()), list(reference.values())
    else:
        acts, refs = list(actual), list(reference)  # type: ignore[arg-type]
        if len(acts) != len(refs):
            raise ValidationError(f"the artifact has {len(acts)} outputs, eager PyTorch {len(refs)}")
        keys = list(names) if names is not None else [
            "output" if i == 0 else f"output_{i}" for i in range(len(acts))
        ]
    checks = tuple(_check_output(k, a, r, tol, precision) for k, a, r in zip(keys, acts, refs, strict=True))
    if not checks:
        raise ValidationError("no outputs to compare")
    status = max((c.status for c in checks), key=STATUSES.index)
    worst = [c for c in checks if c.status == status]
    # the worst failure: non-finite first, then the largest error relative to the scale
    c = max(worst, key=lambda c: (not c.finite, c.max_rel_error)) if status == "failed" else worst[0]
    where = f"output {c.name!r}: " if len(checks) > 1 else ""
    advice = {"passed": "", "inconclusive": ADVICE_INCONCLUSIVE, "failed": ADVICE_FAILED}[status]
    return Verdict(status=status, reason=where + c.reason, advice=advice, outputs=checks)
