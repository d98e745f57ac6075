"""The validation verdict (deploykit.metrics.judge_outputs): it can fail, and it never passes vacuously."""

from __future__ import annotations

import math

import pytest
import torch

from deploykit.errors import ValidationError
from deploykit.metrics import TOLERANCES, Tolerance, judge_outputs, logit_metrics, tolerance_for

FP32, FP16 = TOLERANCES["fp32"], TOLERANCES["fp16"]


def _logits(n: int = 64, classes: int = 10, offset: float = 0.0, spread: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return offset + spread * torch.randn(n, classes, generator=g, dtype=torch.float64)


def test_identical_and_rounded_outputs_pass() -> None:
    r = _logits()
    assert judge_outputs([r.clone()], [r], FP32).status == "passed"
    v = judge_outputs([r.half().double()], [r], FP16, precision="fp16")  # fp16 rounding of a varying output
    assert v.status == "passed" and v.outputs[0].dep_error < 1e-3 and v.advice == ""
    assert v.outputs[0].top1_agreement == 1.0 and v.outputs[0].cosine == pytest.approx(1.0)


def test_a_one_percent_error_in_the_input_dependent_part_fails() -> None:
    # A large constant part and a small input-dependent one: 1% of the latter is far below rtol x max|ref|,
    # so only the input-dependent check can see it.
    r = _logits(offset=1000.0, spread=2.0)
    dep = r - r.mean(0, keepdim=True)
    a = r + 0.01 * dep.roll(1, dims=0)
    v = judge_outputs([a], [r], FP32)
    assert v.outputs[0].max_rel_error < FP32.rtol  # the scale-relative rule alone would pass it
    assert v.status == "failed" and "input-dependent part" in v.reason


@pytest.mark.parametrize(
    ("actual", "why"),
    [
        (lambda r: torch.zeros_like(r), "all zeros"),
        (lambda r: r.mean(0, keepdim=True).expand_as(r).clone(), "same for every input"),
        (lambda r: torch.full_like(r, math.nan), "non-finite"),
        (lambda r: r.masked_fill(torch.rand(r.shape, generator=torch.Generator().manual_seed(1)) < 0.01, math.inf),
         "non-finite"),
    ],
)
def test_zero_constant_and_non_finite_artifacts_fail(actual, why: str) -> None:
    r = _logits(offset=3.0)
    v = judge_outputs([actual(r)], [r], FP32)
    assert v.status == "failed" and why in v.reason and v.advice


def test_all_zero_reference_is_inconclusive_never_passed() -> None:
    # a zero-initialised last layer: eager outputs exactly 0 for every input, and so does the graph
    z = torch.zeros(8, 10)
    v = judge_outputs([z.clone()], [z], FP32)
    assert v.status == "inconclusive" and "all zeros" in v.reason and "--weights" in v.advice
    assert judge_outputs([z + 1e-3], [z], FP32).status == "failed"  # a zero reference allows only zeros


def test_output_independent_of_the_input_is_inconclusive() -> None:
    row = _logits(n=1, offset=2.0)
    r = row.expand(16, -1).clone()  # the same logits for every input
    v = judge_outputs([r.clone()], [r], FP32)
    assert v.status == "inconclusive" and "same for every input" in v.reason
    one = judge_outputs([row.clone()], [row], FP32)  # a single sample cannot show how the output depends on x
    assert one.status == "inconclusive" and "one input" in one.reason


def test_reference_below_the_precisions_normal_range_is_never_passed() -> None:
    r = _logits(spread=1e-9)  # like random-init efficientnet_b0's 4e-14 logits: subnormal or zero in fp16
    graph = r.half().double()  # what an fp16 graph can represent of it
    v = judge_outputs([graph], [r], FP16, precision="fp16")
    assert v.status in ("inconclusive", "failed")
    tiny = _logits(spread=5e-6)  # subnormal in fp16 but not flushed: close, never passed
    v2 = judge_outputs([tiny.clone()], [tiny], FP16, precision="fp16")
    assert v2.status == "inconclusive" and "smallest normal" in v2.reason


def test_weak_input_dependence_below_the_precision_is_inconclusive() -> None:
    # random-init nin in fp16: the output varies by 1.2e-4 of its magnitude, fp16 rounds at 5e-4
    r = _logits(offset=1.0, spread=1e-4)
    v = judge_outputs([r.half().double()], [r], FP16, precision="fp16")
    assert v.status == "inconclusive" and "input-dependent part" in v.reason
    # the same weak dependence is resolved in fp32 (rounding 6e-8): checked, and passes
    assert judge_outputs([r.float().double()], [r], FP32).status == "passed"


def test_top1_disagreement_on_a_clear_sample_fails() -> None:
    r = _logits(n=32)
    a = r.clone()
    a[0] = a[0].flip(0)  # one sample's classes permuted: its top-1 changes with a large margin
    v = judge_outputs([a], [r], FP16, precision="fp16")
    assert v.status == "failed" and v.outputs[0].decisive_disagreements >= 1
    assert v.outputs[0].top1_agreement == pytest.approx(31 / 32)


def test_worst_output_decides_and_shapes_must_match() -> None:
    r = _logits()
    z = torch.zeros(8, 3)
    v = judge_outputs({"logits": r.clone(), "aux": z.clone()}, {"logits": r, "aux": z}, FP32)
    assert v.status == "inconclusive" and v.reason.startswith("output 'aux'")
    v = judge_outputs({"logits": torch.zeros_like(r), "aux": z}, {"logits": r, "aux": z}, FP32)
    assert v.status == "failed" and v.reason.startswith("output 'logits'")
    with pytest.raises(ValidationError, match="shape"):
        judge_outputs([r[:, :3]], [r], FP32)
    with pytest.raises(ValidationError, match="outputs"):
        judge_outputs([r, r], [r], FP32)
    assert v.to_dict()["outputs"][0]["name"] == "logits"


def test_tolerance_lookup_and_logit_metrics_are_shared() -> None:
    from deploykit import evaluate
    from deploykit.export import validate

    assert evaluate.logit_metrics is logit_metrics and validate.Tolerance is Tolerance
    assert tolerance_for("fp16") is FP16
    m = logit_metrics(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 1]), torch.tensor([[1.0, 2.0], [0.0, 3.0]]))
    assert m.top1 == 1.0 and m.agreement == 0.5
