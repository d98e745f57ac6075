"""One entry point for every data source: a built-in name, an ``.npz`` file or an image folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from deploykit.data.base import DataSplits, check_for_model
from deploykit.errors import InvalidInput

__all__ = ["BUILTIN_DATASETS", "describe_data_source", "load_data"]

#: Built-in data sets, by the name ``--data`` takes, with what they are.
BUILTIN_DATASETS: dict[str, str] = {
    "mnist1d": "MNIST-1D: 4,000 train / 1,000 test signals of length 40, 10 classes (generated offline, cached)",
    "digits": "scikit-learn's 8x8 handwritten digits, 1,797 images, 10 classes, resized to the model's input",
}


def describe_data_source() -> str:
    """The help text of a ``--data`` option, derived from :data:`BUILTIN_DATASETS`."""
    names = ", ".join(BUILTIN_DATASETS)
    return f"{names}, an .npz file with x / y (and optionally x_test / y_test), or an image folder (one subfolder per class)"


def load_data(
    source: str | os.PathLike[str],
    sample_shape: Sequence[int],
    *,
    num_classes: int | None = None,
    model_name: str = "the model",
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> DataSplits:
    """Load labelled data for a model taking ``sample_shape`` samples with ``num_classes`` outputs.

    Args:
        source: ``"mnist1d"``, ``"digits"``, an ``.npz`` file or an image folder (see
            :mod:`deploykit.data.files` for their layouts and preprocessing).
        sample_shape: the model's per-sample input shape (``spec.input_shape``).
        num_classes: the model's number of outputs; labels at or above it are refused. ``None`` skips the check.
        model_name: the model's name in messages.
        seed: seed of the digits' stratified split.
        cache_dir: folder of generated data (MNIST-1D); default ``<cache root>/data``.
        limit: keep the first ``limit`` samples of each split (quick runs, tests).

    Raises :class:`InvalidInput` (one line) for an unknown name, a missing file, a sample shape the model
    does not take, labels out of range, an empty split or non-finite inputs.
    """
    text = os.fspath(source)
    shape = tuple(int(d) for d in sample_shape)
    if text == "mnist1d":
        from deploykit.data.mnist1d import load_mnist1d

        splits = load_mnist1d(shape, cache_dir=cache_dir)
    elif text == "digits":
        from deploykit.data.digits import load_digits

        splits = load_digits(shape, seed=seed)
    elif text.endswith(".npz"):
        from deploykit.data.files import load_npz

        splits = load_npz(text, shape)
    elif Path(text).is_dir():
        from deploykit.data.files import load_image_folder

        splits = load_image_folder(text, shape)
    elif Path(text).exists():
        raise InvalidInput(f"{text}: unsupported data file; give an .npz file or an image folder")
    else:
        raise InvalidInput(
            f"data {text!r} not found: give {', '.join(BUILTIN_DATASETS)}, an .npz file or an image folder"
        )
    if limit is not None:
        splits = DataSplits(
            train=splits.train.subset(limit) if splits.train is not None else None, test=splits.test.subset(limit)
        )
    for part in (splits.train, splits.test):
        if part is not None:
            check_for_model(part, shape, num_classes if num_classes is not None else part.num_classes, model_name)
    return splits
