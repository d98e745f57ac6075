"""A small, plain, seeded training loop on the CPU, for the zoo's small models on the built-in data sets.

It exists so that deploykit has real trained models to deploy and users can reproduce the seeds' experiments;
it is not a training framework: cross-entropy, Adam or SGD at a constant learning rate, shuffled mini-batches,
no augmentation, no schedule, no early stopping. The test split is scored after every epoch for the record; the
weights written are those of the last epoch (never the best test epoch: that would tune on the test set).

Defaults follow the MNIST-1D authors' training script (greydanus/mnist1d ``notebooks/train.py``): Adam, learning
rate 1e-2, no weight decay, batches of 100; their 8,000 steps at batch 100 over 4,000 signals are 200 epochs.

Reproducible: the seed fixes the initial weights (the model is built after seeding torch's global generator,
whose state is restored afterwards) and the order of the batches (a private generator); the same seed, data,
torch version and thread count (default 1) give the same weights, bit for bit, on the same kind of CPU. The final
test accuracy of a seed is one draw: on MNIST-1D it varies by about two points between seeds (and between
thread counts, which change the float summation order), so compare distributions over seeds, not single runs.

>>> result = train_model("mnist1d-cnn", "mnist1d", TrainOptions(epochs=200), output="w.safetensors")  # doctest: +SKIP
>>> result.test_top1                                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deploykit.data.base import LabelledData
from deploykit.errors import InvalidInput

__all__ = [
    "OPTIMIZERS",
    "TRAIN_SCHEMA",
    "EpochRecord",
    "TrainOptions",
    "TrainProgress",
    "TrainResult",
    "fit",
    "train_model",
]

TRAIN_SCHEMA = "deploykit.train-result"
TRAIN_VERSION = 1
#: Optimizers ``train`` offers, with what they are.
OPTIMIZERS: Mapping[str, str] = {
    "adam": "torch.optim.Adam(lr, weight_decay)",
    "sgd": "torch.optim.SGD(lr, momentum, weight_decay)",
}


@dataclass(frozen=True)
class TrainOptions:
    """How to train.

    ``threads``: torch intra-op threads while training (``None``: leave torch's setting). The default is 1: the
    small models this loop is for train fastest on one thread, and the thread count changes the order of float
    sums, so the same seed gives the same weights only at the same thread count. ``shuffle``: reshuffle the
    training split every epoch (seeded); ``False`` steps through it in its stored order, as the MNIST-1D authors'
    script does.
    """

    epochs: int = 200
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    threads: int | None = 1
    shuffle: bool = True

    def check(self) -> None:
        """Raise :class:`InvalidInput` for an option no training can use."""
        if self.optimizer not in OPTIMIZERS:
            raise InvalidInput(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InvalidInput(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise InvalidInput(f"learning rate must be positive, got {self.lr}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise InvalidInput("weight decay must be >= 0 and momentum in [0, 1)")
        if self.threads is not None and self.threads < 1:
            raise InvalidInput(f"threads must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss over its steps, then loss and top-1 accuracy (0..1) on the test split."""

    epoch: int
    train_loss: float
    test_loss: float
    test_top1: float
    elapsed_s: float


@dataclass(frozen=True)
class TrainProgress:
    """What the loop reports to the ``progress`` callback: after every step, and with ``epoch_done`` set at the
    end of every epoch."""

    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    loss: float
    epoch_done: EpochRecord | None = None


@dataclass(frozen=True)
class TrainResult:
    """The outcome of a training run: history, final accuracies (0..1), timing, the data and the weights written.

    ``initial_train_loss`` is the mean cross-entropy of the untrained model on the training split, so the drop
    to ``final_train_loss`` shows that training did something. ``train_seconds`` covers the loop only (not
    building the model, generating the data or writing the file).
    """

    model: str
    spec: dict[str, Any]
    data: dict[str, Any]
    options: TrainOptions
    history: tuple[EpochRecord, ...]
    initial_train_loss: float
    final_train_loss: float
    train_top1: float
    test_loss: float
    test_top1: float
    train_seconds: float
    threads: int
    weights: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": TRAIN_SCHEMA,
            "schema_version": TRAIN_VERSION,
            "model": self.model,
            "spec": self.spec,
            "data": self.data,
            "options": asdict(self.options),
            "history": [asdict(h) for h in self.history],
            "initial_train_loss": self.initial_train_loss,
            "final_train_loss": self.final_train_loss,
            "train_top1": self.train_top1,
            "test_loss": self.test_loss,
            "test_top1": self.test_top1,
            "train_seconds": self.train_seconds,
            "threads": self.threads,
            "weights": self.weights,
            "environment": self.environment,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainResult:
        if d.get("schema") != TRAIN_SCHEMA or int(d.get("schema_version", 0)) > TRAIN_VERSION:
            raise InvalidInput(f"not a deploykit training result (schema {d.get('schema')!r} v{d.get('schema_version')})")
        return cls(
            model=d["model"],
            spec=dict(d["spec"]),
            data=dict(d["data"]),
            options=TrainOptions(**d["options"]),
            history=tuple(EpochRecord(**h) for h in d["history"]),
            initial_train_loss=float(d["initial_train_loss"]),
            final_train_loss=float(d["final_train_loss"]),
            train_top1=float(d["train_top1"]),
            test_loss=float(d["test_loss"]),
            test_top1=float(d["test_top1"]),
            train_seconds=float(d["train_seconds"]),
            threads=int(d["threads"]),
            weights=d.get("weights"),
            environment=dict(d.get("environment") or {}),
        )


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _optimizer(model: nn.Module, o: TrainOptions) -> torch.optim.Optimizer:
    if o.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


@torch.no_grad()
def _score(model: nn.Module, data: LabelledData, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) of ``model`` in eval mode on ``data``."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for x, y in data.batches(batch_size):
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    return loss_sum / len(data), correct / len(data)


def fit(
    model: nn.Module,
    train: LabelledData,
    test: LabelledData,
    options: TrainOptions,
    *,
    progress: Callable[[TrainProgress], None] | None = None,
) -> tuple[tuple[EpochRecord, ...], dict[str, float]]:
    """Train ``model`` (on the CPU, in place) on ``train`` and score it on ``test`` after every epoch.

    Returns the epoch history and the final figures (``initial_train_loss``, ``final_train_loss``,
    ``train_top1``, ``test_loss``, ``test_top1``, ``train_seconds``, ``threads``).
    """
    options.check()
    if len(train) == 0 or len(test) == 0:
        raise InvalidInput("training needs a non-empty train and test split")
    gen = torch.Generator().manual_seed(options.seed)
    n = len(train)
    steps = -(-n // options.batch_size)
    history: list[EpochRecord] = []
    with _threads(options.threads) as threads:
        initial_loss, _ = _score(model, train)
        opt = _optimizer(model, options)
        t0 = time.perf_counter()
        for epoch in range(1, options.epochs + 1):
            model.train()
            order = torch.randperm(n, generator=gen) if options.shuffle else torch.arange(n)
            total = 0.0
            for step in range(steps):
                idx = order[step * options.batch_size : (step + 1) * options.batch_size]
                loss = F.cross_entropy(model(train.x[idx]), train.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                value = loss.item()
                if value != value or value in (float("inf"), float("-inf")):
                    raise InvalidInput(
                        f"training diverged at epoch {epoch}, step {step + 1} (loss {value}); lower the learning rate"
                    )
                total += value
                if progress is not None:
                    progress(TrainProgress(epoch, options.epochs, step + 1, steps, value))
            test_loss, test_top1 = _score(model, test)
            rec = EpochRecord(epoch, total / steps, test_loss, test_top1, time.perf_counter() - t0)
            history.append(rec)
            if progress is not None:
                progress(TrainProgress(epoch, options.epochs, steps, steps, total / steps, epoch_done=rec))
        seconds = time.perf_counter() - t0
        final_loss, train_top1 = _score(model, train)
    model.eval()
    return tuple(history), {
        "initial_train_loss": initial_loss,
        "final_train_loss": final_loss,
        "train_top1": train_top1,
        "test_loss": history[-1].test_loss,
        "test_top1": history[-1].test_top1,
        "train_seconds": seconds,
        "threads": float(threads),
    }


def train_model(
    model: str,
    data: str | os.PathLike[str],
    options: TrainOptions | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    init_weights: str | os.PathLike[str] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> TrainResult:
    """Build ``model`` on the CPU, train it on ``data`` and write its weights to ``output`` (safetensors,
    atomically).

    Args:
        model: a registered model name (or ``pkg.mod:Net``).
        data: ``"mnist1d"``, ``"digits"``, an ``.npz`` file or an image folder (:func:`deploykit.data.load_data`);
            a single-set source is split 80/20 (stratified, seed 0).
        options: :class:`TrainOptions` (default: Adam, lr 1e-2, batch 100, 200 epochs, seed 0, one thread).
        output: the safetensors file to write; ``None`` writes nothing.
        init_weights: weights to start from instead of a fresh initialisation.
        progress: called after every step and every epoch with a :class:`TrainProgress`.
        cache_dir: where generated data is cached (MNIST-1D).
        limit: use only the first ``limit`` samples of each split (quick runs, tests).

    The output file's header (entry ``deploykit``, JSON) records the model, its input shape and classes, the
    data's name and test sha256, the options and the final accuracies.
    """
    from deploykit import __version__
    from deploykit._env import environment
    from deploykit.data import load_data
    from deploykit.models import create_model
    from deploykit.models.weights import save_weights

    opts = options or TrainOptions()
    opts.check()
    if output is not None and Path(output).is_dir():
        raise InvalidInput(f"output {output} is a folder; give a file name such as {Path(output) / 'weights.safetensors'}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opts.seed)
        module, spec = create_model(model, device="cpu", weights=init_weights)
    splits = load_data(
        data, spec.input_shape, num_classes=spec.num_classes, model_name=spec.name, cache_dir=cache_dir, limit=limit
    )
    train, test = splits.for_training(seed=0)
    history, final = fit(module, train, test, opts, progress=progress)
    result = TrainResult(
        model=spec.name,
        spec=spec.to_dict(),
        data={"source": os.fspath(data), "train": train.to_dict(), "test": test.to_dict()},
        options=opts,
        history=history,
        initial_train_loss=final["initial_train_loss"],
        final_train_loss=final["final_train_loss"],
        train_top1=final["train_top1"],
        test_loss=final["test_loss"],
        test_top1=final["test_top1"],
        train_seconds=final["train_seconds"],
        threads=int(final["threads"]),
        environment=environment("cpu"),
    )
    if output is not None:
        meta = {
            "deploykit": __version__,
            "model": spec.name,
            "input_shape": "x".join(map(str, spec.input_shape)),
            "num_classes": spec.num_classes,
            "data": os.fspath(data),
            "data_test_sha256": test.sha256,
            "options": asdict(opts),
            "test_top1": result.test_top1,
            "train_top1": result.train_top1,
        }
        record = save_weights(module, output, metadata=meta)
        result = replace(result, weights=record.to_dict())
    return result
