"""scikit-learn's 8x8 handwritten digits (UCI optical recognition of handwritten digits, test part): 1,797 real
images of 10 classes, shipped inside scikit-learn, so the 2-D models can be trained and evaluated offline.

Preprocessing, in order: pixel values 0..16 divided by 16; bilinear resize (``align_corners=False``) from 8x8 to
the model's height x width; the grey channel repeated for a 3-channel model; standardised with the mean and
standard deviation of the training split (one number each, recorded). The split is stratified 80/20 by class
with a fixed seed (:func:`deploykit.data.base.stratified_split`): 1,438 train / 359 test images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deploykit._env import package_version
from deploykit.data.base import DataSplits, LabelledData, stratified_split
from deploykit.errors import BackendUnavailable, InvalidInput
from deploykit.models.shapes import fmt_shape

__all__ = ["DIGITS_CLASSES", "load_digits"]

DIGITS_CLASSES = 10
_TEST_FRACTION = 0.2


def load_digits(sample_shape: Sequence[int] = (1, 28, 28), *, seed: int = 0) -> DataSplits:
    """The digits as ``(train, test)`` splits of ``sample_shape`` (channels 1 or 3, any height and width)."""
    shape = tuple(int(d) for d in sample_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise InvalidInput(
            f"digits are 8x8 grey images (resized to 1xHxW or 3xHxW); the model takes {fmt_shape(shape)}"
        )
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise BackendUnavailable("scikit-learn is not installed (pip install scikit-learn)") from None
    bunch = sk_load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)  # N x 1 x 8 x 8
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    c, h, w = shape
    x = images if (h, w) == (8, 8) else F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
    if c == 3:
        x = x.repeat(1, 3, 1, 1)
    train_idx, test_idx = stratified_split(labels.numpy(), _TEST_FRACTION, seed)
    tr, te = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    mean = float(x[tr].mean())
    std = float(x[tr].std())
    x = ((x - mean) / std).contiguous()
    prep = (
        f"pixels/16, bilinear resize 8x8 -> {h}x{w}"
        + (", grey repeated to 3 channels" if c == 3 else "")
        + f", standardised with the training split's mean {mean:.6f} and std {std:.6f}; "
        f"80/20 stratified split, seed {seed}"
    )
    source = f"scikit-learn {package_version('scikit-learn') or '?'} load_digits (UCI handwritten digits, 8x8)"
    return DataSplits(
        train=LabelledData("digits", "train", x[tr], labels[tr], DIGITS_CLASSES, prep, source),
        test=LabelledData("digits", "test", x[te], labels[te], DIGITS_CLASSES, prep, source),
    )
