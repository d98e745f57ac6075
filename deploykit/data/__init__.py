"""Labelled data sets for accuracy, training and (later) calibration: MNIST-1D, scikit-learn's digits, the
user's ``.npz`` files and image folders, all behind one interface (:class:`LabelledData`).

>>> from deploykit.data import load_data
>>> splits = load_data("mnist1d", (1, 40), num_classes=10)     # doctest: +SKIP
>>> len(splits.train), len(splits.test), splits.test.sha256[:12]   # doctest: +SKIP
(4000, 1000, '...')

Names load on first use, so ``import deploykit.data`` stays light.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BUILTIN_DATASETS": "deploykit.data.load",
    "DataSplits": "deploykit.data.base",
    "LabelledData": "deploykit.data.base",
    "check_for_model": "deploykit.data.base",
    "describe_data_source": "deploykit.data.load",
    "load_data": "deploykit.data.load",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
