"""Registry-wide agreement with the reference counters, at batch 1 on real CPU models.

* parameters: ``sum(p.numel())``;
* MACs: fvcore's conv + linear + matmul count (fvcore's "flops" are MACs for those operators);
* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` counts 2 per MAC and nothing else, so it must equal
  ``2 * macs`` exactly, and our FLOPs on the MAC rows must exceed it by exactly the bias adds.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from zoo_selection import zoo_params

from deploykit.models import create_model
from deploykit.profile import profile_model

FVCORE_MAC_KEYS = {"conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum"}
BIASED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)


def _bias_adds(model: nn.Module, x: torch.Tensor) -> int:
    """Output elements of every conv / linear call that has a bias, from a real forward pass."""
    total = 0

    def hook(mod: nn.Module, args: object, out: torch.Tensor) -> None:
        nonlocal total
        if getattr(mod, "bias", None) is not None:
            total += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, BIASED)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", zoo_params())
def test_counts_match_reference_counters(name: str) -> None:
    from fvcore.nn import FlopCountAnalysis

    torch.manual_seed(0)
    model, spec = create_model(name, device="cpu")
    x = torch.randn(spec.batch_shape(1))
    profile = profile_model(name)

    assert profile.total_params == sum(p.numel() for p in model.parameters())
    assert profile.unsupported_ops == ()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        by_op = analysis.by_operator()
    assert profile.total_macs == sum(v for k, v in by_op.items() if k in FVCORE_MAC_KEYS)

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    torch_flops = counter.get_total_flops()
    assert torch_flops == 2 * profile.total_macs
    mac_rows_flops = sum(r.flops for r in profile.layers if r.macs)
    assert mac_rows_flops == torch_flops + _bias_adds(model, x)
