"""Render a :class:`~deploykit.train.TrainResult`: a few lines for the terminal, a markdown block for reports.

Accuracies are stored as fractions (0..1) and shown here as percentages truncated to one decimal (as in
:mod:`deploykit.report.evaluate`); rounding happens here only.
"""

from __future__ import annotations

from deploykit.report.evaluate import fmt_share
from deploykit.train import TrainProgress, TrainResult

__all__ = ["epoch_line", "training_header", "training_lines", "training_markdown"]


def _pct(x: float) -> str:
    return fmt_share(x)  # truncated like every accuracy deploykit prints: 349.9/359 is not shown as 97.5%


def training_header(result_or_options: TrainResult) -> str:
    """``mnist1d-cnn on mnist1d: 4000 train / 1000 test samples of 1x40; adam lr 0.01, batch 100, 200 epochs,
    seed 0, 1 thread``."""
    r = result_or_options
    o = r.options
    tr, te = r.data["train"], r.data["test"]
    shape = "x".join(map(str, te["sample_shape"]))
    opt = f"{o.optimizer} lr {o.lr:g}" + (f" momentum {o.momentum:g}" if o.optimizer == "sgd" else "")
    opt += f" weight decay {o.weight_decay:g}" if o.weight_decay else ""
    return (
        f"{r.model} on {r.data['source']}: {tr['samples']} train / {te['samples']} test samples of {shape}; "
        f"{opt}, batch {o.batch_size}, {o.epochs} epochs{'' if o.shuffle else ' (no reshuffle)'}, seed {o.seed}, "
        f"{r.threads} thread{'s' if r.threads != 1 else ''}"
    )


def epoch_line(p: TrainProgress) -> str:
    """One line for a finished epoch (what a non-interactive log shows instead of a progress bar)."""
    e = p.epoch_done
    if e is None:
        return f"epoch {p.epoch}/{p.epochs} step {p.step}/{p.steps_per_epoch} loss {p.loss:.4g}"
    return (
        f"epoch {e.epoch}/{p.epochs}: train loss {e.train_loss:.4g}, test loss {e.test_loss:.4g}, "
        f"test top-1 {_pct(e.test_top1)} ({e.elapsed_s:.1f} s)"
    )


def training_lines(r: TrainResult) -> list[str]:
    """The summary printed after training."""
    lines = [
        training_header(r),
        f"loss on the training split: {r.initial_train_loss:.4g} before, {r.final_train_loss:.4g} after",
        f"top-1 accuracy: train {_pct(r.train_top1)}, test {_pct(r.test_top1)} "
        f"({r.data['test']['samples']} test samples, sha256 {r.data['test']['sha256'][:12]})",
        f"training loop: {r.train_seconds:.1f} s",
    ]
    if r.weights is not None:
        w = r.weights
        lines.append(f"wrote {w['path']} (safetensors, {w['tensors']} tensors, sha256 {w['sha256'][:12]})")
    return lines


def training_markdown(r: TrainResult) -> str:
    """A markdown table of the run (for reports)."""
    rows = [
        ("model", r.model),
        ("data", f"{r.data['source']} ({r.data['train']['samples']} train / {r.data['test']['samples']} test)"),
        ("optimizer", f"{r.options.optimizer}, lr {r.options.lr:g}, batch {r.options.batch_size}, weight decay {r.options.weight_decay:g}"),
        ("epochs", str(r.options.epochs)),
        ("seed", str(r.options.seed)),
        ("torch threads", str(r.threads)),
        ("training-split loss before / after", f"{r.initial_train_loss:.4g} / {r.final_train_loss:.4g}"),
        ("train top-1", _pct(r.train_top1)),
        ("test top-1 (last epoch)", _pct(r.test_top1)),
        ("training loop time", f"{r.train_seconds:.1f} s"),
    ]
    if r.weights is not None:
        rows.append(("weights sha256", f"`{r.weights['sha256']}`"))
    return "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
