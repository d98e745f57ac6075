"""Models that are wrong on purpose, for the bad-input corpus (tests/test_bad_input_corpus.py)."""

from __future__ import annotations

import torch
from torch import nn


class Raises(nn.Module):
    """Its forward raises."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom in forward")


class TwoInputs(nn.Module):
    """Its forward takes two inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + y


class ReturnsNone(nn.Module):
    """Its forward returns None."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> None:
        self.fc(x)


class NoParams(nn.Module):
    """No parameters at all (no training step to model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class Fast(nn.Module):
    """One small linear layer (input 4): the baseline of the check-ab tests."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Slow(Fast):
    """The same layer plus 3 ms of busy waiting: a candidate that is unmistakably slower."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        end = time.perf_counter() + 0.003
        while time.perf_counter() < end:
            pass
        return super().forward(x)
