"""Labelled data: MNIST-1D is generated offline, identical across runs and cached; digits are split and resized
deterministically; user .npz files and image folders load, and bad data is refused in one line."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from deploykit.data import DataSplits, LabelledData, load_data
from deploykit.data.base import stratified_split
from deploykit.errors import InvalidInput

# sha256 of the MNIST-1D splits as the model sees them (float32 1x40 inputs, int64 labels), generated with
# mnist1d 0.0.2.post1's make_dataset and default arguments. A change here means the data changed.
MNIST1D_TEST_SHA256 = "d8a899301c313c315ffa0789a4134f1403874e89b9f40b5c63c82c051b60a888"
MNIST1D_TRAIN_SHA256 = "ffe23cec1959b16035fa6b7006a0d23bc5048a75d8705b213260d4794a3706b0"


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d-cache")


@pytest.fixture(scope="module")
def mnist1d(mnist1d_cache: Path) -> DataSplits:
    return load_data("mnist1d", (1, 40), num_classes=10, cache_dir=mnist1d_cache)


def test_mnist1d_sizes_and_identity(mnist1d: DataSplits) -> None:
    train, test = mnist1d.train, mnist1d.test
    assert train is not None
    assert (len(train), len(test)) == (4000, 1000)
    assert train.x.shape == (4000, 1, 40) and train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert test.num_classes == 10 and sorted(set(test.y.tolist())) == list(range(10))
    assert test.sha256 == MNIST1D_TEST_SHA256
    assert train.sha256 == MNIST1D_TRAIN_SHA256
    assert test.class_counts() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
    rec = test.to_dict()
    assert rec["source"] == "mnist1d 0.0.2.post1: make_dataset(get_dataset_args()), seed 42"
    assert "default arguments" in rec["preprocessing"] and rec["sha256"] == MNIST1D_TEST_SHA256


def test_mnist1d_is_cached_and_the_cache_is_used(mnist1d: DataSplits, mnist1d_cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    files = list(mnist1d_cache.glob("mnist1d-*.npz"))
    assert len(files) == 1
    import mnist1d.data as mnist1d_data

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("make_dataset ran although the cache holds the data")

    monkeypatch.setattr(mnist1d_data, "make_dataset", refuse)
    again = load_data("mnist1d", (1, 40), cache_dir=mnist1d_cache)
    assert again.test.sha256 == MNIST1D_TEST_SHA256 and torch.equal(again.test.x, mnist1d.test.x)


def test_mnist1d_regenerates_identically_and_keeps_global_rngs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(tmp_path / "root"))
    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    fresh = load_data("mnist1d", (40,))  # a fresh generation, into $DEPLOYKIT_CACHE_DIR/data
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before
    assert len(list((tmp_path / "root" / "data").glob("mnist1d-*.npz"))) == 1
    assert fresh.test.x.shape == (1000, 40)
    assert torch.equal(fresh.test.x.reshape(1000, 1, 40), load_data("mnist1d", (1, 40)).test.x)


def test_mnist1d_corrupt_cache_is_regenerated(mnist1d_cache: Path, tmp_path: Path) -> None:
    src = next(mnist1d_cache.glob("mnist1d-*.npz"))
    bad = tmp_path / src.name
    bad.write_bytes(b"garbage")
    assert load_data("mnist1d", (1, 40), cache_dir=tmp_path).test.sha256 == MNIST1D_TEST_SHA256


def test_mnist1d_refuses_other_shapes(mnist1d_cache: Path) -> None:
    with pytest.raises(InvalidInput, match=r"mnist1d signals are 1x40 .*the model takes 1x64"):
        load_data("mnist1d", (1, 64), cache_dir=mnist1d_cache)
    with pytest.raises(InvalidInput, match=r"mnist1d \(train\) has labels 0\.\.9; m has 5 classes"):
        load_data("mnist1d", (1, 40), num_classes=5, model_name="m", cache_dir=mnist1d_cache)


def test_digits_split_resize_and_standardisation() -> None:
    a = load_data("digits", (1, 28, 28), num_classes=10)
    b = load_data("digits", (1, 28, 28), num_classes=10)
    assert a.train is not None and b.train is not None
    assert (len(a.train), len(a.test)) == (1438, 359)
    assert a.test.x.shape == (359, 1, 28, 28)
    assert a.test.sha256 == b.test.sha256 and a.train.sha256 == b.train.sha256
    assert set(a.test.class_counts()) <= {35, 36, 37}  # stratified: 20% of each class
    assert abs(float(a.train.x.mean())) < 1e-4 and abs(float(a.train.x.std()) - 1) < 1e-3
    other = load_data("digits", (1, 28, 28), seed=1)
    assert other.test.sha256 != a.test.sha256
    rgb = load_data("digits", (3, 32, 32))
    assert rgb.test.x.shape == (359, 3, 32, 32) and torch.equal(rgb.test.x[:, 0], rgb.test.x[:, 2])
    with pytest.raises(InvalidInput, match=r"digits are 8x8 grey images .*the model takes 1x40"):
        load_data("digits", (1, 40))


def test_stratified_split_is_seeded_and_disjoint() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 5, 1])
    tr, te = stratified_split(labels, 0.2, seed=3)
    tr2, te2 = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert sorted([*tr, *te]) == list(range(36))
    assert np.bincount(labels[te], minlength=4).tolist() == [2, 4, 1, 0]


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_npz_single_set_and_train_test_layout(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(50, 28, 28)).astype(np.float64)
    y = np.arange(50) % 10
    one = load_data(_npz(tmp_path / "one.npz", x=x, y=y), (1, 28, 28), num_classes=10)
    assert one.train is None and one.test.split == "all" and one.test.x.shape == (50, 1, 28, 28)
    assert torch.equal(one.test.x[:, 0], torch.from_numpy(x.astype(np.float32)))
    train, test = one.for_training(seed=0)
    assert (len(train), len(test)) == (40, 10) and test.class_counts() == [1] * 10
    assert "80/20 stratified split, seed 0" in train.preprocessing
    both = load_data(
        _npz(tmp_path / "two.npz", x=x[:40], y=y[:40].astype(np.float32), x_test=x[40:], y_test=y[40:]),
        (1, 28, 28), num_classes=10,
    )
    assert both.train is not None and len(both.train) == 40 and len(both.test) == 10
    assert both.test.split == "test" and both.for_training()[1] is both.test


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((4, 3, 3)), "y": np.zeros(4, int)}, r"x has samples of shape 3x3; the model takes 1x28x28"),
        ({"x": np.zeros((4, 28, 28)), "y": np.array([0, 1, 2, 10])}, r"has labels 0\.\.10; m has 10 classes"),
        ({"x": np.zeros((4, 28, 28)), "y": np.array([0, -1, 2, 3])}, r"has labels -1\.\.3"),
        ({"x": np.zeros((4, 28, 28)), "y": np.array([0, 1.5, 2, 3])}, r"y holds non-integer values"),
        ({"x": np.zeros((4, 28, 28)), "y": np.zeros(3, int)}, r"x has 4 samples and y 3 labels"),
        ({"x": np.zeros((0, 28, 28)), "y": np.zeros(0, int)}, r"\(all\) is empty"),
        ({"x": np.full((4, 28, 28), np.nan), "y": np.zeros(4, int)}, r"non-finite inputs \(NaN or inf\) in 4 of 4"),
        ({"x": np.zeros((4, 28, 28))}, r"has no array y; it has x"),
        ({"x": np.array([{"a": 1}] * 4, dtype=object), "y": np.zeros(4, int)}, r"cannot read without unpickling"),
        ({"x": np.zeros((4, 28, 28)), "y": np.zeros(4, int), "x_test": np.zeros((2, 28, 28))}, r"only one of x_test"),
    ],
)
def test_bad_npz_is_one_line(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InvalidInput, match=match) as err:
        load_data(path, (1, 28, 28), num_classes=10, model_name="m")
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_missing_and_unknown_sources(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="data file not found"):
        load_data(tmp_path / "nope.npz", (1, 40))
    with pytest.raises(InvalidInput, match=r"data 'mnist2d' not found: give mnist1d, digits, an \.npz file"):
        load_data("mnist2d", (1, 40))
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(InvalidInput, match="unsupported data file"):
        load_data(tmp_path / "x.csv", (1, 40))


def _image_folder(root: Path, classes: dict[str, list[int]]) -> Path:
    from PIL import Image

    for name, values in classes.items():
        (root / name).mkdir(parents=True)
        for i, v in enumerate(values):
            Image.new("RGB", (10 + i, 12), (v, v, v)).save(root / name / f"{i}.png")
    return root


def test_image_folder_single_and_split_layouts(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs", {"cat": [255, 255], "dog": [0, 0, 0]})
    data = load_data(root, (3, 16, 16), num_classes=10)
    assert data.train is None and data.test.class_names == ("cat", "dog")
    assert data.test.y.tolist() == [0, 0, 1, 1, 1] and data.test.x.shape == (5, 3, 16, 16)
    # white after ImageNet normalisation: (1 - mean) / std per channel; black: -mean / std
    assert torch.allclose(data.test.x[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
    assert torch.allclose(data.test.x[2, 0], torch.full((16, 16), -0.485 / 0.229))
    grey = load_data(root, (1, 8, 8))
    assert grey.test.x.shape == (5, 1, 8, 8) and float(grey.test.x[0].min()) == pytest.approx(1.0)
    assert "ImageFolder" in grey.test.preprocessing and "mean 0.5" in grey.test.preprocessing
    split = tmp_path / "split"
    _image_folder(split / "train", {"a": [10, 20], "b": [30]})
    _image_folder(split / "val", {"a": [40], "b": [50]})
    s = load_data(split, (3, 8, 8))
    assert s.train is not None and len(s.train) == 3 and len(s.test) == 2 and s.test.split == "test"
    with pytest.raises(InvalidInput, match=r"imgs \(all\) has labels 0\.\.1; m has 1 classes"):
        load_data(root, (3, 8, 8), num_classes=1, model_name="m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="expected one subfolder of images per class"):
        load_data(tmp_path / "empty", (3, 8, 8))


def test_labelled_data_subset_and_batches(mnist1d: DataSplits, mnist1d_cache: Path) -> None:
    sub = mnist1d.test.subset(250)
    assert isinstance(sub, LabelledData) and len(sub) == 250 and sub.split == "test[:250]"
    assert [len(y) for _, y in sub.batches(100)] == [100, 100, 50]
    assert sub.sha256 != mnist1d.test.sha256
    limited = load_data("mnist1d", (1, 40), limit=30, cache_dir=mnist1d_cache)
    assert len(limited.test) == 30 and limited.train is not None and len(limited.train) == 30
