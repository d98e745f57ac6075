"""``--convention fvcore | flop-counter``: deploykit's trace reports the totals fvcore's ``FlopCountAnalysis`` and
torch's ``FlopCounterMode`` report, checked against the real tools on small modules covering every rule and on
the whole model zoo."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from test_ops_beyond_cnns import AttentionBlock, Mha, ReadsWeight, TokenLSTM
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner
from zoo_selection import zoo_params

from deploykit.cli.app import app
from deploykit.models import create_model
from deploykit.profile import profile_model, profile_module
from deploykit.profile.conventions import fvcore_einsum


def fvcore_total(model: nn.Module, x: torch.Tensor) -> int:
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total())


def flop_counter_total(model: nn.Module, x: torch.Tensor) -> int:
    """FlopCounterMode on the meta device (its convention as deploykit reports it)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


class Mixed(nn.Module):
    """One of every operator family fvcore has a rule for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(2, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.tconv = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # 2x3x6x6
        y = self.inorm(self.gn(self.bn(self.conv(x))))
        y = F.interpolate(self.up(y), scale_factor=0.5, mode="nearest")
        y = self.tconv(y)
        y = self.fc(self.ln(self.pool(y).flatten(1)))
        z = torch.baddbmm(torch.zeros(2, 5, 5), y.unsqueeze(2), y.unsqueeze(1))  # fvcore: no rule
        w = torch.bmm(y.unsqueeze(2), y.unsqueeze(1)) @ torch.ones(5, 3)  # bmm, matmul broadcasting
        return z.sum() + w.mean() + y.mean(1).sum() + F.adaptive_avg_pool2d(x, 2).sum()


CASES = {
    "mixed": (Mixed, (2, 3, 6, 6), torch.float32),
    "attention": (AttentionBlock, (2, 5, 16), torch.float32),
    "multihead": (Mha, (2, 5, 16), torch.float32),
    "reads-weight": (ReadsWeight, (3, 8), torch.float32),
    "lstm": (TokenLSTM, (3, 5), torch.long),
}


@pytest.mark.parametrize("case", list(CASES))
def test_conventions_equal_the_real_tools_on_small_modules(case: str) -> None:
    make, shape, dtype = CASES[case]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(shape) if dtype == torch.float32 else torch.randint(0, 50, shape)
    fvcore, counter = fvcore_total(model, x), flop_counter_total(copy.deepcopy(model).to("meta"), x.to("meta"))
    on_cpu = profile_module(model, x)
    on_meta = profile_module(model.to("meta"), x.to("meta"))
    for p in (on_cpu, on_meta):
        assert (p.convention_flops("fvcore"), p.convention_flops("flop-counter")) == (fvcore, counter)


def test_einsum_rule_is_fvcores() -> None:
    # the two special cases, then numpy's optimal path / 2: a contraction counts its MACs, an outer product half
    assert fvcore_einsum("nct,ncp->ntp", [(2, 3, 4), (2, 3, 5)]) == 2 * 3 * 4 * 5
    assert fvcore_einsum("bhld,bhmd->bhlm", [(2, 2, 5, 8), (2, 2, 5, 8)]) == 2 * 2 * 5 * 5 * 8
    assert fvcore_einsum("i,j->ij", [(3,), (4,)]) == 6


def test_cli_reports_the_convention_next_to_deploykits_counts() -> None:
    res = CliRunner().invoke(app, ["profile", "lenet", "--convention", "fvcore", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    macs = doc["totals"]["macs"]
    # lenet: conv + linear only, so fvcore's total is the MACs
    assert doc["convention"] == {"name": "fvcore", "flops": macs, "deploykit_macs": macs,
                                 "deploykit_flops": doc["totals"]["flops"]}
    assert doc["conventions"] == {"fvcore": macs, "flop-counter": 2 * macs}
    text = CliRunner().invoke(app, ["profile", "lenet", "--convention", "flop-counter"]).output
    assert f"Total as flop-counter (torch FlopCounterMode) counts it: {2 * macs / 1e3:.2f} K flops ({2 * macs:,})" in text
    bad = CliRunner().invoke(app, ["profile", "lenet", "--convention", "thop"])
    assert bad.exit_code == 2 and "unknown convention 'thop'" in bad.output


@pytest.mark.parametrize("name", zoo_params())
def test_conventions_equal_the_real_tools_on_the_zoo(name: str) -> None:
    torch.manual_seed(0)
    model, spec = create_model(name, device="cpu")
    x = torch.randn(spec.batch_shape(1))
    p = profile_model(name)
    assert p.convention_flops("fvcore") == fvcore_total(model, x)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    assert p.convention_flops("flop-counter") == counter.get_total_flops()
