"""The one interface every labelled data set has: inputs and labels as tensors, a split, how they were made.

A :class:`LabelledData` is one split (``train``, ``test``, ``all``) held in memory: ``x`` (float32, one row per
sample, in the model's sample shape) and ``y`` (int64 class indices). ``preprocessing`` says in words what was
done to the raw data (recorded in every result that uses it); ``sha256`` identifies the content (inputs and
labels, as the model sees them), so two results can be checked to come from the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from deploykit.errors import InvalidInput
from deploykit.models.shapes import fmt_shape

__all__ = ["DataSplits", "LabelledData", "check_for_model", "content_sha256", "stratified_split"]


def content_sha256(x: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 of the inputs (float32, C order) and labels (int64) with their shapes: the data's identity."""
    h = hashlib.sha256()
    h.update(f"x{fmt_shape(tuple(x.shape))}:float32;y{fmt_shape(tuple(y.shape))}:int64;".encode())
    h.update(x.detach().to(torch.float32).contiguous().numpy().tobytes())
    h.update(y.detach().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class LabelledData:
    """One split of a labelled data set, in memory.

    Attributes:
        name: the data set (``"mnist1d"``, ``"digits"``, a file or folder path).
        split: ``"train"``, ``"test"`` or ``"all"`` (a single-set file), possibly with a subset mark.
        x: inputs, float32, shape ``(N, *sample_shape)``.
        y: labels, int64 class indices, shape ``(N,)``.
        num_classes: classes of the data set (labels are below it).
        preprocessing: what was done to the raw data, in words.
        source: where the raw data came from (package and version, file).
        class_names: names of the classes, when the data has them (image folders).
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    preprocessing: str
    source: str
    class_names: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @cached_property
    def sha256(self) -> str:
        return content_sha256(self.x, self.y)

    def class_counts(self) -> list[int]:
        return [int(c) for c in torch.bincount(self.y, minlength=self.num_classes).tolist()]

    def subset(self, n: int) -> LabelledData:
        """The first ``n`` samples (the split is already shuffled or stratified), named ``split[:n]``."""
        if n <= 0:
            raise InvalidInput(f"a subset needs at least one sample, got {n}")
        if n >= len(self):
            return self
        return LabelledData(
            self.name, f"{self.split}[:{n}]", self.x[:n], self.y[:n], self.num_classes,
            self.preprocessing, self.source, self.class_names,
        )

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` in order, ``batch_size`` samples at a time (the last batch may be smaller)."""
        for i in range(0, len(self), batch_size):
            yield self.x[i : i + batch_size], self.y[i : i + batch_size]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the tensors: what a result records about the data it was measured on."""
        return {
            "name": self.name,
            "split": self.split,
            "samples": len(self),
            "sample_shape": list(self.sample_shape),
            "num_classes": self.num_classes,
            "class_counts": self.class_counts(),
            "class_names": list(self.class_names),
            "preprocessing": self.preprocessing,
            "source": self.source,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A data set's splits: ``test`` (what evaluation uses) and ``train`` (``None`` for a single-set file)."""

    train: LabelledData | None
    test: LabelledData

    def for_training(self, seed: int = 0, test_fraction: float = 0.2) -> tuple[LabelledData, LabelledData]:
        """``(train, test)``; a single-set file is split here, stratified by class and seeded."""
        if self.train is not None:
            return self.train, self.test
        data = self.test
        train_idx, test_idx = stratified_split(data.y.numpy(), test_fraction, seed)
        note = f"{round((1 - test_fraction) * 100)}/{round(test_fraction * 100)} stratified split, seed {seed}"

        def part(idx: np.ndarray, split: str) -> LabelledData:
            t = torch.from_numpy(idx)
            return LabelledData(
                data.name, split, data.x[t], data.y[t], data.num_classes,
                f"{data.preprocessing}; {note}", data.source, data.class_names,
            )

        return part(train_idx, "train"), part(test_idx, "test")


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: ``round(test_fraction * n_c)`` samples of every class ``c`` (at least one
    when the class has two or more) go to test, chosen with a seeded permutation; both sorted then shuffled with
    the same seed so that batches mix the classes."""
    if not 0.0 < test_fraction < 1.0:
        raise InvalidInput(f"test fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = round(test_fraction * len(idx))
        k = max(k, 1) if len(idx) >= 2 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    tr = np.concatenate(train) if train else np.zeros(0, dtype=np.int64)
    te = np.concatenate(test) if test else np.zeros(0, dtype=np.int64)
    return rng.permutation(np.sort(tr)).astype(np.int64), rng.permutation(np.sort(te)).astype(np.int64)


def check_for_model(
    data: LabelledData, sample_shape: Sequence[int], num_classes: int, model_name: str = "the model"
) -> None:
    """Refuse data that the model cannot take or that cannot be scored: one :class:`InvalidInput` line for an
    empty split, a sample shape other than the model's, labels outside ``0..num_classes-1``, non-finite inputs."""
    where = f"{data.name} ({data.split})"
    if len(data) == 0:
        raise InvalidInput(f"{where} is empty: no samples to use")
    if data.sample_shape != tuple(sample_shape):
        raise InvalidInput(
            f"{where} has samples of shape {fmt_shape(data.sample_shape)}; {model_name} takes "
            f"{fmt_shape(tuple(sample_shape))}"
        )
    lo, hi = int(data.y.min()), int(data.y.max())
    if lo < 0 or hi >= num_classes:
        raise InvalidInput(
            f"{where} has labels {lo}..{hi}; {model_name} has {num_classes} classes, so labels must be in "
            f"0..{num_classes - 1}"
        )
    finite = torch.isfinite(data.x)
    if not bool(finite.all()):
        bad = int((~finite).flatten(1).any(1).sum())
        raise InvalidInput(f"{where} has non-finite inputs (NaN or inf) in {bad} of {len(data)} samples")
