"""Classic small CNNs in their commonly used forms.

* ``nin`` -- Network in Network (Lin et al., 2014) in ImageNet form: d2l's :class:`~deploykit.models.d2l.NiN`
  (AlexNet's kernel sizes and widths 96-256-384, then a NiN block with one channel per class and global average
  pooling) at 3x224x224 with 1000 classes.
* ``lenet`` -- LeNet-5 (LeCun et al., 1998) for 1x28x28 digits in its common modern form: ReLU and max pooling
  instead of the original sigmoid/tanh and subsampling (``d2l-lenet`` is the sigmoid + average-pool form).
* ``mnist1d-cnn`` -- the CNN baseline of the MNIST-1D benchmark (Greydanus, 2020; ``ConvBase`` in
  greydanus/mnist1d ``notebooks/models.py``): three strided ``Conv1d`` with ``.relu()`` and a linear classifier.

``lenet`` and ``mnist1d-cnn`` use ordinary (non-lazy) layers, so the size of the flattened features is computed
from the input size here; an input too small for a layer raises :class:`~deploykit.errors.ShapeError` naming it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from deploykit.errors import ShapeError
from deploykit.models.d2l import D2L_OVERRIDES, NiN
from deploykit.models.registry import ModelSpec, register_model
from deploykit.models.shapes import fmt_shape

#: A sliding-window layer along one axis: (module path, class name, kernel, stride, padding).
Window = tuple[str, str, int, int, int]


def window_out_size(spec: ModelSpec, size: int, layers: Sequence[Window]) -> int:
    """The length of one spatial axis after ``layers`` (conv/pool arithmetic, ``floor((n + 2p - k) / s) + 1``).

    Raises :class:`ShapeError` naming the first layer whose output would be empty.
    """
    for path, kind, kernel, stride, padding in layers:
        out = (size + 2 * padding - kernel) // stride + 1
        if out < 1:
            raise ShapeError(
                f"{spec.name} cannot take input {fmt_shape(spec.batch_shape(1))}: layer {path} ({kind}) "
                f"got length {size} along an axis; kernel {kernel}, stride {stride}, padding {padding} "
                f"leave no output"
            )
        size = out
    return size


# --- NiN, ImageNet form ----------------------------------------------------------------------------------------


@register_model(
    ModelSpec(
        name="nin",
        family="nin",
        source="Lin et al. 2014 / d2l",
        input_shape=(3, 224, 224),
        num_classes=1000,
        description="Network in Network, ImageNet form: d2l's NiN (AlexNet widths 96-256-384), "
        "a 1000-channel last NiN block and global average pooling",
        overridable=D2L_OVERRIDES,
    )
)
def build_nin(spec: ModelSpec) -> nn.Module:
    """d2l's ``NiN`` with ``spec.num_classes`` channels in its last block (1000 for ImageNet)."""
    return NiN(num_classes=spec.num_classes)


# --- LeNet-5, ReLU/max-pool form -------------------------------------------------------------------------------

_LENET_WINDOWS: tuple[Window, ...] = (
    ("conv1", "Conv2d", 5, 1, 2),
    ("pool1", "MaxPool2d", 2, 2, 0),
    ("conv2", "Conv2d", 5, 1, 0),
    ("pool2", "MaxPool2d", 2, 2, 0),
)


class LeNet5(nn.Sequential):
    """LeNet-5 with ReLU and max pooling: conv 6@5x5 (pad 2), pool, conv 16@5x5, pool, 400-120-84-classes.

    ``features_hw`` is the height and width after ``pool2`` (5x5 for 28x28 input), which sizes ``fc1``.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, features_hw: tuple[int, int] = (5, 5)
    ) -> None:
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)),
                    ("relu1", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(kernel_size=2, stride=2)),
                    ("conv2", nn.Conv2d(6, 16, kernel_size=5)),
                    ("relu2", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(kernel_size=2, stride=2)),
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(16 * features_hw[0] * features_hw[1], 120)),
                    ("relu3", nn.ReLU()),
                    ("fc2", nn.Linear(120, 84)),
                    ("relu4", nn.ReLU()),
                    ("fc3", nn.Linear(84, num_classes)),
                ]
            )
        )


@register_model(
    ModelSpec(
        name="lenet",
        family="lenet",
        source="LeCun et al. 1998 (ReLU/max-pool form)",
        input_shape=(1, 28, 28),
        num_classes=10,
        description="LeNet-5 in its common modern ReLU/max-pool form (d2l-lenet is the sigmoid/avg-pool form)",
        overridable=D2L_OVERRIDES,
    )
)
def build_lenet(spec: ModelSpec) -> nn.Module:
    """:class:`LeNet5` sized for ``spec.input_shape`` (channels, height, width) and ``spec.num_classes``."""
    _, height, width = spec.input_shape
    hw = (window_out_size(spec, height, _LENET_WINDOWS), window_out_size(spec, width, _LENET_WINDOWS))
    return LeNet5(in_channels=spec.in_channels, num_classes=spec.num_classes, features_hw=hw)


# --- MNIST-1D CNN baseline -------------------------------------------------------------------------------------

_CONVBASE_WINDOWS: tuple[Window, ...] = (
    ("conv1", "Conv1d", 5, 2, 1),
    ("conv2", "Conv1d", 3, 2, 1),
    ("conv3", "Conv1d", 3, 2, 1),
)


class ConvBase(nn.Module):
    """The MNIST-1D CNN baseline, as ``ConvBase`` in greydanus/mnist1d ``notebooks/models.py``.

    Three ``Conv1d`` (``channels`` wide; kernels 5/3/3, stride 2, padding 1) with ``.relu()``, then a linear
    classifier on the flattened features; ``linear_in`` is ``channels`` times the length after ``conv3`` (125 for
    the benchmark's 40-sample signals). Differences from upstream, none of which changes the computation:
    ``in_channels`` (upstream: always 1) so ``--in-channels`` works, and no ``print`` in ``__init__``.
    """

    def __init__(
        self, output_size: int, channels: int = 25, linear_in: int = 125, in_channels: int = 1
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv1d(in_channels, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(linear_in, output_size)  # flattened channels -> classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, self.in_channels, x.shape[-1])
        h1 = self.conv1(x).relu()
        h2 = self.conv2(h1).relu()
        h3 = self.conv3(h2).relu()
        h3 = h3.view(h3.shape[0], -1)  # flatten the conv features
        return self.linear(h3)  # a linear classifier goes on top


@register_model(
    ModelSpec(
        name="mnist1d-cnn",
        family="mnist1d",
        source="greydanus/mnist1d ConvBase",
        input_shape=(1, 40),
        num_classes=10,
        description="MNIST-1D CNN baseline: 3 strided Conv1d (25 ch) + linear; image_size is the signal length",
        overridable=D2L_OVERRIDES,
    )
)
def build_mnist1d_cnn(spec: ModelSpec) -> nn.Module:
    """:class:`ConvBase` with 25 channels, its linear layer sized for the signal length ``spec.input_shape[-1]``."""
    channels = 25
    length = window_out_size(spec, spec.input_shape[-1], _CONVBASE_WINDOWS)
    return ConvBase(
        spec.num_classes, channels=channels, linear_in=channels * length, in_channels=spec.in_channels
    )
