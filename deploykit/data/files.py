"""The user's own labelled data: an ``.npz`` file or an image folder.

``.npz`` (read with ``allow_pickle=False``): arrays ``x`` (inputs, any numeric dtype) and ``y`` (integer class
indices, or floats with integral values); optionally ``x_test`` / ``y_test`` (then ``x`` / ``y`` are the training
split, as in MNIST-1D's own layout). Inputs are taken as they are (converted to float32, no scaling): they must
already have the model's sample shape, or lack only a leading channel dimension of 1 (``N x 28 x 28`` for a
``1x28x28`` model, ``N x 40`` for ``1x40``).

Image folder: one subfolder per class (``root/cat/1.png``), read with torchvision's ``ImageFolder`` (class index =
position of the subfolder name in sorted order); or ``root/train/<class>/...`` and ``root/test/<class>/...`` (or
``val``) for two splits. Each image is converted to RGB (or to one grey channel for a 1-channel model), resized
to the model's height x width (bilinear, antialiased), scaled to 0..1 and normalised with ImageNet's mean
(0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) for 3 channels, or mean 0.5 and std 0.5 for one channel.

A file with one set (no test arrays, no train/test folders) is one split named ``all``: evaluation uses all of
it, and training splits it 80/20 (stratified, seeded; :meth:`DataSplits.for_training`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deploykit.data.base import DataSplits, LabelledData
from deploykit.errors import InvalidInput, first_line
from deploykit.models.shapes import fmt_shape

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "load_image_folder", "load_npz"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _inputs(arr: np.ndarray, shape: tuple[int, ...], where: str) -> torch.Tensor:
    if arr.dtype.kind not in "fiub":
        raise InvalidInput(f"{where}: x has dtype {arr.dtype}; inputs must be numbers")
    if arr.ndim == 0:
        raise InvalidInput(f"{where}: x is a scalar; expected one row per sample")
    sample = tuple(int(d) for d in arr.shape[1:])
    if sample != shape:
        if shape[0] == 1 and sample == shape[1:]:
            arr = arr.reshape(arr.shape[0], *shape)
        else:
            raise InvalidInput(
                f"{where}: x has samples of shape {fmt_shape(sample) or 'scalar'}; the model takes {fmt_shape(shape)}"
            )
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _labels(arr: np.ndarray, n: int, where: str) -> torch.Tensor:
    if arr.ndim != 1:
        raise InvalidInput(f"{where}: y has shape {fmt_shape(arr.shape) or 'scalar'}; expected one label per sample")
    if len(arr) != n:
        raise InvalidInput(f"{where}: x has {n} samples and y {len(arr)} labels")
    if arr.dtype.kind in "iub":
        return torch.from_numpy(arr.astype(np.int64))
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InvalidInput(f"{where}: y holds non-integer values; labels must be class indices")
        return torch.from_numpy(arr.astype(np.int64))
    raise InvalidInput(f"{where}: y has dtype {arr.dtype}; labels must be integer class indices")


def load_npz(path: str | os.PathLike[str], sample_shape: Sequence[int]) -> DataSplits:
    """Labelled data from an ``.npz`` file (see the module docstring for the layout)."""
    p = Path(path)
    shape = tuple(int(d) for d in sample_shape)
    if not p.is_file():
        raise InvalidInput(f"data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise InvalidInput(f"{p}: cannot read without unpickling ({first_line(exc)}); store numeric arrays") from None
    except Exception as exc:  # not a zip, truncated
        raise InvalidInput(f"cannot read {p} as .npz: {first_line(exc)}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise InvalidInput(f"{p} has no array {' or '.join(missing)}; it has {', '.join(sorted(arrays)) or 'none'}")
    has_test = "x_test" in arrays or "y_test" in arrays
    if has_test and not ("x_test" in arrays and "y_test" in arrays):
        raise InvalidInput(f"{p} has only one of x_test / y_test; give both or neither")
    prep = "as stored in the file, converted to float32" + (
        f", reshaped to {fmt_shape(shape)}" if arrays["x"].shape[1:] != shape else ""
    )

    parts = [("x", "y", "train"), ("x_test", "y_test", "test")] if has_test else [("x", "y", "all")]
    read: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for xk, yk, name in parts:
        where = f"{p} ({name})"
        x = _inputs(arrays[xk], shape, where)
        read.append((name, x, _labels(arrays[yk], int(x.shape[0]), where)))
    classes = max((int(y.max()) + 1 for _, _, y in read if len(y)), default=0)
    splits = [LabelledData(os.fspath(p), name, x, y, classes, prep, f"file {p}") for name, x, y in read]
    return DataSplits(train=splits[0], test=splits[1]) if has_test else DataSplits(train=None, test=splits[0])


def _image_transform(shape: tuple[int, ...]) -> tuple[object, str]:
    from torchvision import transforms as T

    c, h, w = shape
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else ((0.5,), (0.5,))
    steps = ([T.Grayscale(num_output_channels=1)] if c == 1 else []) + [
        T.Resize((h, w), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
        T.ToTensor(),
        T.Normalize(mean, std),
    ]
    desc = (
        f"{'grey' if c == 1 else 'RGB'}, bilinear resize (antialiased) to {h}x{w}, scaled to 0..1, normalised with "
        f"mean {', '.join(map(str, mean))} and std {', '.join(map(str, std))}"
        + (" (ImageNet)" if c == 3 else "")
    )
    return T.Compose(steps), desc


def _read_folder(root: Path, shape: tuple[int, ...], name: str, split: str) -> LabelledData:
    from torchvision.datasets import ImageFolder

    transform, desc = _image_transform(shape)
    try:
        ds = ImageFolder(os.fspath(root), transform=transform)
    except (FileNotFoundError, OSError) as exc:
        raise InvalidInput(f"{root}: {first_line(exc)}; expected one subfolder of images per class") from None
    xs: list[torch.Tensor] = []
    ys: list[int] = []
    for i in range(len(ds)):
        try:
            img, label = ds[i]
        except Exception as exc:  # a corrupt image file
            raise InvalidInput(f"cannot read image {ds.samples[i][0]}: {first_line(exc)}") from None
        xs.append(img)
        ys.append(label)
    if not xs:
        raise InvalidInput(f"{root} ({split}) has no images")
    return LabelledData(
        name, split, torch.stack(xs).contiguous(), torch.tensor(ys, dtype=torch.int64), len(ds.classes),
        f"torchvision ImageFolder: {desc}", f"image folder {root}", tuple(ds.classes),
    )


def load_image_folder(path: str | os.PathLike[str], sample_shape: Sequence[int]) -> DataSplits:
    """Labelled images from a folder (see the module docstring for the layouts and the preprocessing)."""
    root = Path(path)
    shape = tuple(int(d) for d in sample_shape)
    if not root.is_dir():
        raise InvalidInput(f"image folder not found: {root}")
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise InvalidInput(f"an image folder feeds 1xHxW or 3xHxW models; the model takes {fmt_shape(shape)}")
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train = _read_folder(root / "train", shape, os.fspath(root), "train")
        test = _read_folder(test_dir, shape, os.fspath(root), "test")
        if train.class_names != test.class_names:
            raise InvalidInput(
                f"{root}: train and {test_dir.name} have different class folders "
                f"({len(train.class_names)} vs {len(test.class_names)})"
            )
        return DataSplits(train=train, test=test)
    return DataSplits(train=None, test=_read_folder(root, shape, os.fspath(root), "all"))
