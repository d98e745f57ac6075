"""The whole model zoo: every registered model builds and runs; closed-form checks for the d2l and classic models.

Registry-wide checks run on the ``meta`` device (no memory, no arithmetic). Parameter counts are worked out by
hand from the layer shapes (``conv: c_out*c_in*k*k + c_out``, ``linear: out*in + out``, ``batch-norm: 2*c``) and
the per-block output shapes are the ones the book prints (d2l.ai, PyTorch tab; derivations in the comments).
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from deploykit.errors import InvalidInput, ShapeError
from deploykit.models import create_model, get_model_spec, list_models

ALL_MODELS = list_models()
D2L_MODELS = list_models("d2l-*")


def meta_forward(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(torch.zeros(shape, device="meta"))
    return out


# --- every registered model -------------------------------------------------------------------------------------


def test_zoo_has_the_d2l_and_classic_models() -> None:
    assert D2L_MODELS == [
        "d2l-alexnet", "d2l-densenet", "d2l-googlenet", "d2l-lenet", "d2l-nin", "d2l-resnet18", "d2l-vgg11",
    ]  # fmt: skip
    assert {"nin", "lenet", "mnist1d-cnn"} <= set(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_builds_on_meta_and_gives_logits(name: str) -> None:
    model, spec = create_model(name)
    assert spec == get_model_spec(name)
    assert not model.training
    assert all(p.device.type == "meta" for p in model.parameters())
    assert tuple(meta_forward(model, spec.batch_shape(2)).shape) == (2, spec.num_classes)


def _different_overrides(name: str) -> dict[str, Any]:
    """num_classes=7, plus another channel count and a larger image wherever the model takes them."""
    spec = get_model_spec(name)
    kwargs: dict[str, Any] = {"num_classes": 7}
    if "in_channels" in spec.overridable:
        kwargs["in_channels"] = 3 if spec.in_channels == 1 else 1
    if "image_size" in spec.overridable:
        kwargs["image_size"] = spec.input_shape[-1] + 32
    return kwargs


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_honours_its_overrides(name: str) -> None:
    kwargs = _different_overrides(name)
    model, spec = create_model(name, **kwargs)
    assert spec.num_classes == 7
    if "in_channels" in kwargs:
        assert spec.in_channels == kwargs["in_channels"]
    if "image_size" in kwargs:
        assert spec.input_shape[1:] == (kwargs["image_size"],) * (len(spec.input_shape) - 1)
    assert tuple(meta_forward(model, spec.batch_shape(2)).shape) == (2, 7)


@pytest.mark.parametrize("name", [*D2L_MODELS, "nin", "lenet", "mnist1d-cnn"])
def test_d2l_and_classic_specs(name: str) -> None:
    spec = get_model_spec(name)
    assert spec.overridable == {"num_classes", "in_channels", "image_size", "input_shape"}
    assert spec.description
    if name.startswith("d2l-"):
        assert (spec.source, spec.num_classes, spec.in_channels) == ("d2l ch.7 (PyTorch)", 10, 1)


# --- parameter counts, worked by hand -------------------------------------------------------------------------
#
# d2l-lenet 1x28x28: conv 1->6 k5 = 6*25+6 = 156; conv 6->16 k5 = 16*6*25+16 = 2,416; fc 400->120 = 48,120;
#   fc 120->84 = 10,164; fc 84->10 = 850.                                                       total 61,706
# lenet: the same layer shapes (ReLU / max-pool have no parameters).                             total 61,706
# d2l-alexnet 1x224x224: conv 1->96 k11 = 96*121+96 = 11,712; 96->256 k5 = 614,656; 256->384 k3 = 885,120;
#   384->384 k3 = 1,327,488; 384->256 k3 = 884,992; fc 6400->4096 = 26,218,496; 4096->4096 = 16,781,312;
#   4096->10 = 40,970.                                                                           total 46,764,746
# d2l-vgg11: conv 1->64 = 640; 64->128 = 73,856; 128->256 = 295,168; 256->256 = 590,080; 256->512 = 1,180,160;
#   512->512 = 2,359,808 (x3) -> convs 9,219,328; fc 25088->4096 = 102,764,544; 4096->4096 = 16,781,312;
#   4096->10 = 40,970.                                                                           total 128,806,154
#   (cross-check: + (3-1)*64*9 for RGB + 4096*990+990 for 1000 classes = torchvision vgg11's 132,863,336)
# d2l-nin: block(1->96 k11) = 11,712 + 2*(96*96+96) = 30,336; block(96->256 k5) = 614,656 + 2*65,792 = 746,240;
#   block(256->384 k3) = 885,120 + 2*147,840 = 1,180,800; block(384->10 k3) = 34,570 + 2*110 = 34,790.
#                                                                                                total 1,992,166
# nin 3x224x224, 1000 classes: block(3->96 k11) = 34,944 + 18,624 = 53,568; 746,240; 1,180,800;
#   block(384->1000 k3) = 3,457,000 + 2*1,001,000 = 5,459,000.                                   total 7,439,608
# d2l-googlenet: Inception(C; c1, (a2,b2), (a3,b3), c4) = C*(c1+a2+a3+c4) + 9*a2*b2 + 25*a3*b3 + (sum of outs).
#   b1 conv 1->64 k7 = 3,200; b2 = 4,160 + 110,784 = 114,944;
#   b3 = 163,696 + 388,736 = 552,432; b4 = 376,176 + 449,160 + 510,104 + 605,376 + 868,352 = 2,809,168;
#   b5 = 1,043,456 + 1,444,080 = 2,487,536; fc 1024->10 = 10,250.                                 total 5,977,530
# d2l-resnet18: Residual(C_in->C) = 9*C_in*C+C + 2C + 9*C*C+C + 2C [+ C_in*C+C for the 1x1 conv].
#   b1 = 3,200 + 128 = 3,328; b2 = 2*74,112 = 148,224; b3 = 230,272 + 295,680 = 525,952;
#   b4 = 919,296 + 1,181,184 = 2,100,480; b5 = 3,673,600 + 4,721,664 = 8,395,264; fc 512->10 = 5,130.
#                                                                                                total 11,178,378
# d2l-densenet: a dense block of 4 BN-ReLU-conv(->32) units on C channels = 1160*C + 55,808;
#   transition(C_in->n) = 2*C_in + C_in*n + n. b1 = 3,328; dense(64) = 130,048; tran(192->96) = 18,912;
#   dense(96) = 167,168; tran(224->112) = 25,648; dense(112) = 185,728; tran(240->120) = 29,400;
#   dense(120) = 195,008; last BN(248) + fc 248->10 = 496 + 2,490 = 2,986.                        total 758,226
# mnist1d-cnn: conv 1->25 k5 = 150; 25->25 k3 = 1,900 (x2); fc 125->10 = 1,260.                  total 5,210

PARAMS = {
    "d2l-lenet": 61_706,
    "lenet": 61_706,
    "d2l-alexnet": 46_764_746,
    "d2l-vgg11": 128_806_154,
    "d2l-nin": 1_992_166,
    "nin": 7_439_608,
    "d2l-googlenet": 5_977_530,
    "d2l-resnet18": 11_178_378,
    "d2l-densenet": 758_226,
    "mnist1d-cnn": 5_210,
}


@pytest.mark.parametrize(("name", "params"), PARAMS.items())
def test_parameter_count_matches_hand_count(name: str, params: int) -> None:
    model, _ = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params


# --- the book's printed output shapes ---------------------------------------------------------------------------
#
# The book's layer_summary((1, 1, H, W)) prints ``<class> output shape: torch.Size([...])`` for each child of
# ``net``. Tables printed on d2l.ai: LeNet (lenet.md), AlexNet (Flatten -> 6400, alexnet.md text: "6400 x 4096"),
# VGG (vgg.md: 112, 56, 28, 14, 7, Flatten 25088), NiN (nin.md: 96x54x54 ... 10x5x5 -> 10). GoogLeNet, ResNet
# and DenseNet stages at 96x96 follow from the book's channel counts (googlenet.md: 192, 480, 832, 1024;
# densenet.md: +128 per dense block, transitions halve) and conv arithmetic: 96 -> stem (7x7/2, 3x3/2) -> 24.


def _summary(model: nn.Module, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    X = torch.zeros(shape, device="meta")
    rows = []
    with torch.no_grad():
        for layer in model.net:  # type: ignore[union-attr]
            X = layer(X)
            rows.append((type(layer).__name__, tuple(X.shape)))
    return rows


def _seq(*shapes: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    return [("Sequential", s) for s in shapes]


BOOK_SUMMARIES: dict[str, list[tuple[str, tuple[int, ...]]]] = {
    "d2l-lenet": [
        ("Conv2d", (1, 6, 28, 28)), ("Sigmoid", (1, 6, 28, 28)), ("AvgPool2d", (1, 6, 14, 14)),
        ("Conv2d", (1, 16, 10, 10)), ("Sigmoid", (1, 16, 10, 10)), ("AvgPool2d", (1, 16, 5, 5)),
        ("Flatten", (1, 400)), ("Linear", (1, 120)), ("Sigmoid", (1, 120)), ("Linear", (1, 84)),
        ("Sigmoid", (1, 84)), ("Linear", (1, 10)),
    ],
    "d2l-alexnet": [
        ("Conv2d", (1, 96, 54, 54)), ("ReLU", (1, 96, 54, 54)), ("MaxPool2d", (1, 96, 26, 26)),
        ("Conv2d", (1, 256, 26, 26)), ("ReLU", (1, 256, 26, 26)), ("MaxPool2d", (1, 256, 12, 12)),
        ("Conv2d", (1, 384, 12, 12)), ("ReLU", (1, 384, 12, 12)), ("Conv2d", (1, 384, 12, 12)),
        ("ReLU", (1, 384, 12, 12)), ("Conv2d", (1, 256, 12, 12)), ("ReLU", (1, 256, 12, 12)),
        ("MaxPool2d", (1, 256, 5, 5)), ("Flatten", (1, 6400)), ("Linear", (1, 4096)), ("ReLU", (1, 4096)),
        ("Dropout", (1, 4096)), ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 10)),
    ],
    "d2l-vgg11": [
        *_seq((1, 64, 112, 112), (1, 128, 56, 56), (1, 256, 28, 28), (1, 512, 14, 14), (1, 512, 7, 7)),
        ("Flatten", (1, 25088)), ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)), ("Linear", (1, 10)),
    ],
    "d2l-nin": [
        ("Sequential", (1, 96, 54, 54)), ("MaxPool2d", (1, 96, 26, 26)), ("Sequential", (1, 256, 26, 26)),
        ("MaxPool2d", (1, 256, 12, 12)), ("Sequential", (1, 384, 12, 12)), ("MaxPool2d", (1, 384, 5, 5)),
        ("Dropout", (1, 384, 5, 5)), ("Sequential", (1, 10, 5, 5)), ("AdaptiveAvgPool2d", (1, 10, 1, 1)),
        ("Flatten", (1, 10)),
    ],
    "d2l-googlenet": [
        *_seq((1, 64, 24, 24), (1, 192, 12, 12), (1, 480, 6, 6), (1, 832, 3, 3), (1, 1024)),
        ("Linear", (1, 10)),
    ],
    "d2l-resnet18": _seq(
        (1, 64, 24, 24), (1, 64, 24, 24), (1, 128, 12, 12), (1, 256, 6, 6), (1, 512, 3, 3), (1, 10)
    ),
    "d2l-densenet": [
        ("Sequential", (1, 64, 24, 24)),
        ("DenseBlock", (1, 192, 24, 24)), ("Sequential", (1, 96, 12, 12)),
        ("DenseBlock", (1, 224, 12, 12)), ("Sequential", (1, 112, 6, 6)),
        ("DenseBlock", (1, 240, 6, 6)), ("Sequential", (1, 120, 3, 3)),
        ("DenseBlock", (1, 248, 3, 3)), ("Sequential", (1, 10)),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BOOK_SUMMARIES))
def test_layer_summary_matches_the_book(name: str) -> None:
    model, spec = create_model(name)
    assert _summary(model, spec.batch_shape(1)) == BOOK_SUMMARIES[name]


def test_nin_imagenet_form_block_shapes() -> None:
    model, spec = create_model("nin")
    rows = _summary(model, spec.batch_shape(1))
    assert rows[0] == ("Sequential", (1, 96, 54, 54))
    assert rows[-3:] == [
        ("Sequential", (1, 1000, 5, 5)),
        ("AdaptiveAvgPool2d", (1, 1000, 1, 1)),
        ("Flatten", (1, 1000)),
    ]


def test_module_paths_read_like_the_book() -> None:
    def names(model_name: str) -> set[str]:
        return {n for n, _ in create_model(model_name)[0].named_modules()}

    assert {"net.0.0", "net.b2.0.conv1", "net.b3.0.conv3", "net.b5.1.bn2", "net.last.2"} <= names(
        "d2l-resnet18"
    )
    assert {"net.2.0.b1_1", "net.3.4.b3_2", "net.4.1.b4_2", "net.5"} <= names("d2l-googlenet")
    assert {"net.dense_blk1.net.3.2", "net.tran_blk3.2", "net.dense_blk4", "net.last.4"} <= names(
        "d2l-densenet"
    )
    assert "net.b2.0.conv3" not in names("d2l-resnet18")  # the first stage keeps its shape: no 1x1 conv


class _OpCounter(TorchDispatchMode):
    """Counts the aten ops a forward pass dispatches."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


def _op_counts(name: str) -> Counter[str]:
    model, spec = create_model(name)
    x = torch.zeros(spec.batch_shape(2), device="meta")
    with _OpCounter() as counter, torch.no_grad():
        model(x)
    return counter.ops


def test_book_functional_calls_reach_the_dispatcher() -> None:
    # GoogLeNet: one torch.cat per Inception block (2 + 5 + 2); F.relu: 6 per block + 2 nn.ReLU in b1/b2
    # (3 ReLU modules: b1 has one, b2 two) -> 9*6 + 3 = 57.
    googlenet = _op_counts("d2l-googlenet")
    assert googlenet["cat"] == 9
    assert googlenet["relu"] == 57
    # ResNet-18: Y += X once per Residual block (4 stages x 2), F.relu twice per block + the stem's nn.ReLU.
    resnet = _op_counts("d2l-resnet18")
    assert resnet["add_"] == 8
    assert resnet["relu"] == 8 * 2 + 1
    # DenseNet: one torch.cat per conv block, 4 blocks x 4.
    assert _op_counts("d2l-densenet")["cat"] == 16


# --- real weights on the CPU for the small models ---------------------------------------------------------------


def test_d2l_lenet_runs_on_cpu_and_is_the_book_computation() -> None:
    torch.manual_seed(0)
    model, spec = create_model("d2l-lenet", device="cpu")
    x = torch.randn(spec.batch_shape(3))
    net: Any = model.net
    with torch.no_grad():
        y = model(x)
        h = F.avg_pool2d(torch.sigmoid(F.conv2d(x, net[0].weight, net[0].bias, padding=2)), 2)
        h = F.avg_pool2d(torch.sigmoid(F.conv2d(h, net[3].weight, net[3].bias)), 2).flatten(1)
        h = torch.sigmoid(F.linear(h, net[7].weight, net[7].bias))
        h = torch.sigmoid(F.linear(h, net[9].weight, net[9].bias))
        expected = F.linear(h, net[11].weight, net[11].bias)
    assert y.shape == (3, 10)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_lenet_runs_on_cpu_and_is_relu_maxpool() -> None:
    torch.manual_seed(0)
    model, spec = create_model("lenet", device="cpu")
    x = torch.randn(spec.batch_shape(3))
    m: Any = model
    with torch.no_grad():
        y = model(x)
        h = F.max_pool2d(F.relu(F.conv2d(x, m.conv1.weight, m.conv1.bias, padding=2)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, m.conv2.weight, m.conv2.bias)), 2).flatten(1)
        h = F.relu(F.linear(h, m.fc1.weight, m.fc1.bias))
        h = F.relu(F.linear(h, m.fc2.weight, m.fc2.bias))
        expected = F.linear(h, m.fc3.weight, m.fc3.bias)
    assert m.fc1.in_features == 16 * 5 * 5
    assert y.shape == (3, 10)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_mnist1d_cnn_runs_on_cpu_and_matches_convbase() -> None:
    torch.manual_seed(0)
    model, spec = create_model("mnist1d-cnn", device="cpu")
    m: Any = model
    x = torch.randn(spec.batch_shape(4))  # (4, 1, 40)
    with torch.no_grad():
        y = model(x)
        # upstream ConvBase reshapes its input with x.view(-1, 1, x.shape[-1]): (N, 40) works too
        y_flat = model(x.reshape(4, 40))
        h1 = F.conv1d(x, m.conv1.weight, m.conv1.bias, stride=2, padding=1).relu()
        h2 = F.conv1d(h1, m.conv2.weight, m.conv2.bias, stride=2, padding=1).relu()
        h3 = F.conv1d(h2, m.conv3.weight, m.conv3.bias, stride=2, padding=1).relu()
        expected = F.linear(h3.flatten(1), m.linear.weight, m.linear.bias)
    # lengths 40 -> 19 -> 10 -> 5: 25 channels x 5 = 125, upstream's linear_in default
    assert (tuple(h1.shape), tuple(h2.shape), tuple(h3.shape)) == ((4, 25, 19), (4, 25, 10), (4, 25, 5))
    assert m.linear.in_features == 125
    assert y.shape == (4, 10)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    torch.testing.assert_close(y_flat, y, rtol=0, atol=0)


@pytest.mark.parametrize(("length", "linear_in"), [(40, 125), (64, 25 * 8), (3, 25 * 1)])
def test_mnist1d_linear_follows_signal_length(length: int, linear_in: int) -> None:
    # 64 -> 31 -> 16 -> 8; 3 -> 1 -> 1 -> 1
    model, spec = create_model("mnist1d-cnn", image_size=length)
    assert spec.input_shape == (1, length)
    assert model.linear.in_features == linear_in  # type: ignore[union-attr]
    assert tuple(meta_forward(model, spec.batch_shape(2)).shape) == (2, 10)


def test_d2l_resnet_takes_small_images() -> None:
    # 32x32 leaves 1x1 maps in stage 5; materialising the lazy layers in training mode would make BatchNorm
    # refuse a batch of one there, though inference at that size is fine.
    model, spec = create_model("d2l-resnet18", device="cpu", image_size=32)
    with torch.no_grad():
        y = model(torch.randn(spec.batch_shape(2)))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()


# --- impossible input sizes ---------------------------------------------------------------------------------------


def test_d2l_alexnet_too_small_names_the_layer() -> None:
    # 32 -> conv 11/4 (pad 1) -> 6 -> pool 3/2 -> 2 -> conv 5 (pad 2) -> 2 -> pool 3/2: nothing left
    with pytest.raises(ShapeError) as err:
        create_model("d2l-alexnet", image_size=32)
    msg = str(err.value)
    assert msg.startswith(
        "d2l-alexnet cannot take input 1x1x32x32: layer net.5 (MaxPool2d) got input 1x256x2x2"
    )
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("name", "size", "layer"),
    [
        ("lenet", 8, "layer conv2 (Conv2d) got length 4"),
        ("mnist1d-cnn", 2, "layer conv1 (Conv1d) got length 2"),
    ],
)
def test_classic_too_small_names_the_layer(name: str, size: int, layer: str) -> None:
    with pytest.raises(ShapeError, match=rf"^{name} cannot take input .*: {re.escape(layer)}"):
        create_model(name, image_size=size)


def test_smallest_lenet_input() -> None:
    # 12 -> 12 -> pool 6 -> conv5 2 -> pool 1: the smallest square input LeNet-5 takes
    model, spec = create_model("lenet", image_size=12)
    assert model.fc1.in_features == 16  # type: ignore[union-attr]
    assert tuple(meta_forward(model, spec.batch_shape(2)).shape) == (2, 10)


# --- the user's own model by import path ---------------------------------------------------------------------------

USER_MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    """A small CIFAR-style net."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def make_net(num_classes=10):
    """Factory taking the number of classes."""
    net = Net()
    net.fc = nn.Linear(8, num_classes)
    return net


not_a_model = 3
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Writes ``mynets.py`` into a fresh directory and makes it the current directory."""
    (tmp_path / "mynets.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader adds the cwd; undo that afterwards
    yield "mynets"
    sys.modules.pop("mynets", None)


def test_user_class_by_import_path(user_module: str) -> None:
    model, spec = create_model(f"{user_module}:Net", input_shape="3x32x32")
    assert (spec.family, spec.input_shape, spec.description) == (
        "user",
        (3, 32, 32),
        "A small CIFAR-style net.",
    )
    assert not model.training
    assert tuple(meta_forward(model, spec.batch_shape(2)).shape) == (2, 10)


def test_user_factory_takes_num_classes(user_module: str) -> None:
    model, spec = create_model(f"{user_module}:make_net", input_shape="3x32x32", num_classes=5)
    assert spec.num_classes == 5
    assert tuple(meta_forward(model, spec.batch_shape(2)).shape) == (2, 5)


@pytest.mark.parametrize(
    ("path", "kwargs", "message"),
    [
        ("no_such_module_xyz:Net", {"input_shape": "3x32x32"}, "cannot import 'no_such_module_xyz'"),
        ("mynets:Missing", {"input_shape": "3x32x32"}, "has no attribute 'Missing'"),
        ("mynets:not_a_model", {"input_shape": "3x32x32"}, "is not a class or factory"),
        ("mynets:Net", {}, "give its per-sample input shape"),
    ],
)
def test_user_model_errors(user_module: str, path: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        create_model(path, **kwargs)
    assert "\n" not in str(err.value)
