"""``deploykit train``: train a small zoo model on a built-in or user data set and write its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deploykit.cli._common import console, emit, err_console, handle_errors, json_text

FORMATS = ("table", "json")

HELP = """Train a model on the CPU and write its weights as a safetensors file (atomically).

A plain, seeded loop for the zoo's small models, not a training framework: cross-entropy, Adam or SGD at a constant learning rate, shuffled mini-batches, the test split scored after every epoch, the last epoch's weights written. Defaults are the MNIST-1D authors' (Adam, lr 0.01, batch 100, 200 epochs = their 8,000 steps).

[bold]Data[/] (--data): mnist1d (4,000 train / 1,000 test signals of 1x40, generated offline and cached), digits (scikit-learn's 8x8 digits resized to the model's input; 80/20 stratified split), an .npz file with x / y (and optionally x_test / y_test; otherwise split 80/20), or an image folder.

Examples: `deploykit train mnist1d-cnn --data mnist1d -o w.safetensors`; `deploykit train lenet --data digits --epochs 30 --lr 0.001 --batch-size 64 -o lenet.safetensors`. Same seed, data, torch version and --threads give the same weights; the final test accuracy of one seed is one draw (on MNIST-1D it varies by about two points between seeds): compare several seeds.
"""


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP)(train)


class _Reporter:
    """Progress bar on an interactive terminal, one line per tenth of the epochs in a log (stderr both)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.every = max(1, epochs // 10)
        self.bar: Any = None
        self.task: Any = None
        if err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=err_console, transient=True)

    def __enter__(self) -> _Reporter:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, p: Any) -> None:
        from deploykit.report.training import epoch_line

        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("training", total=p.epochs * p.steps_per_epoch)
            self.bar.update(self.task, completed=(p.epoch - 1) * p.steps_per_epoch + p.step,
                            description=f"epoch {p.epoch}/{p.epochs} loss {p.loss:.3g}")
        elif p.epoch_done is not None and (p.epoch % self.every == 0 or p.epoch == p.epochs):
            err_console.print(epoch_line(p), highlight=False, soft_wrap=True)


@handle_errors
def train(
    model: Annotated[str, typer.Argument(help="A registered model (`deploykit list`), e.g. mnist1d-cnn or lenet.")],
    data: Annotated[str, typer.Option("--data", "-d", help="mnist1d | digits | FILE.npz | image folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The safetensors file to write.")],
    epochs: Annotated[int, typer.Option(help="Passes over the training split.")] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Samples per step.")] = 100,
    optimizer: Annotated[str, typer.Option(help="adam | sgd.")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate (constant).")] = 1e-2,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights and the batch order.")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads while training. 1 is fastest for these small models, and the thread count changes the float summation order: the same seed gives the same weights only at the same thread count.")] = 1,
    shuffle: Annotated[bool, typer.Option("--shuffle/--no-shuffle", help="Reshuffle the training split every epoch (seeded); --no-shuffle steps through it in stored order, as the MNIST-1D authors' script does.")] = True,
    weights: Annotated[str | None, typer.Option(help="Start from these weights (safetensors or torch file) instead of a fresh initialisation.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N samples of each split (quick runs).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json (the whole result, with the epoch history).")] = "table",
) -> None:
    from deploykit.errors import InvalidInput
    from deploykit.report.training import training_lines
    from deploykit.train import TrainOptions, train_model

    if format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    options = TrainOptions(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                           weight_decay=weight_decay, seed=seed, threads=threads, shuffle=shuffle)
    options.check()
    with _Reporter(epochs) as reporter:
        result = train_model(model, data, options, output=output, init_weights=weights, progress=reporter, limit=limit)
    if format == "json":
        emit(json_text(result.to_dict()), None)
        return
    for line in training_lines(result):
        console.print(line, highlight=False, soft_wrap=True)
