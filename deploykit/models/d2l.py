"""The CNNs of *Dive into Deep Learning* (d2l.ai), chapters 7-8, exactly as the book's PyTorch code defines them.

The book trains these on Fashion-MNIST (1 channel, 10 classes): LeNet at 28x28, AlexNet / VGG-11 / NiN at 224x224,
GoogLeNet / ResNet-18 / DenseNet at 96x96. The code below follows the PyTorch tab of the book's sources in
d2l-ai/d2l-en (``chapter_convolutional-neural-networks/lenet.md`` and ``chapter_convolutional-modern/{alexnet,
vgg,nin,googlenet,resnet,densenet}.md``) layer for layer:

* the book's layer types, including ``nn.LazyConv2d`` / ``nn.LazyLinear`` / ``nn.LazyBatchNorm2d``, so input
  channels are inferred on the first forward pass (``create_model`` runs it at batch 1; on ``meta`` it is free);
* the book's functional calls in ``forward`` -- ``F.relu`` and ``torch.cat`` in ``Inception``, ``F.relu`` and the
  in-place ``Y += X`` in ``Residual``, ``torch.cat`` in ``DenseBlock`` -- which a profiler sees as separate ops;
* the book's attribute and module names, so module paths (and ``state_dict`` keys) match a model built from the
  book: every model keeps its layers in ``self.net``; ResNet's stages are ``net.b2``..``net.b5`` and ``net.last``,
  DenseNet's ``net.dense_blk1``, ``net.tran_blk1``, ...; the stem built by ``b1()`` is ``net.0`` as in the book.

Left out, because they only matter for training: the ``lr`` hyper-parameter and the book's ``d2l.init_cnn``
Xavier initialisation (weights here are PyTorch's default initialisation; on ``meta`` they do not exist).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from deploykit.models.registry import ModelSpec, register_model

#: Every d2l model and its classic ImageNet relatives take any channel count, image size and class count: the
#: lazy layers size themselves on the first forward pass.
D2L_OVERRIDES = frozenset({"num_classes", "in_channels", "image_size", "input_shape"})
_SOURCE = "d2l ch.7 (PyTorch)"


class D2LClassifier(nn.Module):
    """The part of the book's ``d2l.Classifier`` that inference needs: ``forward`` runs ``self.net``."""

    net: nn.Module

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(X)


# The layer lists below keep the book's line layout, so they can be compared with the book side by side.
# fmt: off

# --- LeNet (chapter_convolutional-neural-networks/lenet.md) -------------------------------------------------


class LeNet(D2LClassifier):
    """The LeNet-5 model (sigmoid activations, average pooling), as in d2l's ``LeNet``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.LazyLinear(120), nn.Sigmoid(),
            nn.LazyLinear(84), nn.Sigmoid(),
            nn.LazyLinear(num_classes))


# --- AlexNet (chapter_convolutional-modern/alexnet.md) ------------------------------------------------------


class AlexNet(D2LClassifier):
    """AlexNet as in d2l: five convolutions, three max-pools, two 4096-wide dropout layers."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LazyConv2d(96, kernel_size=11, stride=4, padding=1),
            nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.LazyConv2d(256, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
            nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
            nn.LazyConv2d(256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
            nn.LazyLinear(num_classes))


# --- VGG (chapter_convolutional-modern/vgg.md) --------------------------------------------------------------


def vgg_block(num_convs: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions with ReLU, then a 2x2 max-pool that halves height and width."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers.append(nn.LazyConv2d(out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


#: VGG-11: eight convolutions in five blocks (the book's ``arch``; it trains a 1/4-width variant for speed).
VGG11_ARCH: tuple[tuple[int, int], ...] = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


class VGG(D2LClassifier):
    """VGG as in d2l: one ``vgg_block`` per ``(num_convs, out_channels)`` in ``arch``, then AlexNet's head."""

    def __init__(self, arch: Sequence[tuple[int, int]], num_classes: int = 10) -> None:
        super().__init__()
        conv_blks = []
        for num_convs, out_channels in arch:
            conv_blks.append(vgg_block(num_convs, out_channels))
        self.net = nn.Sequential(
            *conv_blks, nn.Flatten(),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
            nn.LazyLinear(num_classes))


# --- NiN (chapter_convolutional-modern/nin.md) --------------------------------------------------------------


def nin_block(out_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    """A convolution followed by two 1x1 convolutions (per-pixel MLP), each with ReLU."""
    return nn.Sequential(
        nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())


class NiN(D2LClassifier):
    """Network in Network as in d2l: AlexNet's kernel sizes and widths, no dense layer, global average pooling.

    The last NiN block has ``num_classes`` channels; pooling them globally gives the logits.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten())


# --- GoogLeNet (chapter_convolutional-modern/googlenet.md) --------------------------------------------------


class Inception(nn.Module):
    """The Inception block: four branches (1x1; 1x1-3x3; 1x1-5x5; 3x3 max-pool-1x1) concatenated on channels.

    ``c1``--``c4`` are the number of output channels for each branch.
    """

    def __init__(self, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int) -> None:
        super().__init__()
        # Branch 1
        self.b1_1 = nn.LazyConv2d(c1, kernel_size=1)
        # Branch 2
        self.b2_1 = nn.LazyConv2d(c2[0], kernel_size=1)
        self.b2_2 = nn.LazyConv2d(c2[1], kernel_size=3, padding=1)
        # Branch 3
        self.b3_1 = nn.LazyConv2d(c3[0], kernel_size=1)
        self.b3_2 = nn.LazyConv2d(c3[1], kernel_size=5, padding=2)
        # Branch 4
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.LazyConv2d(c4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


class GoogleNet(D2LClassifier):
    """GoogLeNet as in d2l: stem ``b1``, ``b2``, nine Inception blocks in ``b3``-``b5``, global pooling, linear.

    The book's ``net`` is ``Sequential(b1(), b2(), b3(), b4(), b5(), LazyLinear)``, so the stages are
    ``net.0``..``net.4`` and the classifier ``net.5``.
    """

    def b1(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b2(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=1), nn.ReLU(),
            nn.LazyConv2d(192, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b3(self) -> nn.Sequential:
        return nn.Sequential(Inception(64, (96, 128), (16, 32), 32),
                             Inception(128, (128, 192), (32, 96), 64),
                             nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b4(self) -> nn.Sequential:
        return nn.Sequential(Inception(192, (96, 208), (16, 48), 64),
                             Inception(160, (112, 224), (24, 64), 64),
                             Inception(128, (128, 256), (24, 64), 64),
                             Inception(112, (144, 288), (32, 64), 64),
                             Inception(256, (160, 320), (32, 128), 128),
                             nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b5(self) -> nn.Sequential:
        return nn.Sequential(Inception(256, (160, 320), (32, 128), 128),
                             Inception(384, (192, 384), (48, 128), 128),
                             nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(self.b1(), self.b2(), self.b3(), self.b4(),
                                 self.b5(), nn.LazyLinear(num_classes))


# --- ResNet (chapter_convolutional-modern/resnet.md) --------------------------------------------------------


class Residual(nn.Module):
    """The Residual block of ResNet models: two 3x3 conv-BN, optional 1x1 projection, ``Y += X``, ReLU."""

    def __init__(self, num_channels: int, use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3: nn.Module | None
        if use_1x1conv:
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


class ResNet(D2LClassifier):
    """ResNet as in d2l: stem ``b1`` (``net.0``), one stage ``net.b{i+2}`` per ``(num_residuals, num_channels)``
    in ``arch``, and ``net.last`` (global average pooling, flatten, linear)."""

    def b1(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def block(self, num_residuals: int, num_channels: int, first_block: bool = False) -> nn.Sequential:
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(num_channels))
        return nn.Sequential(*blk)

    def __init__(self, arch: Sequence[tuple[int, int]], num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(self.b1())
        for i, b in enumerate(arch):
            self.net.add_module(f"b{i + 2}", self.block(*b, first_block=(i == 0)))
        self.net.add_module("last", nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))


class ResNet18(ResNet):
    """ResNet-18 as in d2l: four stages of two residual blocks, 64-128-256-512 channels."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(((2, 64), (2, 128), (2, 256), (2, 512)), num_classes)


# --- DenseNet (chapter_convolutional-modern/densenet.md) ----------------------------------------------------


def conv_block(num_channels: int) -> nn.Sequential:
    """DenseNet's BN-ReLU-conv(3x3) unit."""
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    """``num_convs`` conv blocks; each one's input and output are concatenated on channels (``torch.cat``)."""

    def __init__(self, num_convs: int, num_channels: int) -> None:
        super().__init__()
        layer = []
        for _ in range(num_convs):
            layer.append(conv_block(num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            Y = blk(X)
            # Concatenate input and output of each block along the channels
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(num_channels: int) -> nn.Sequential:
    """BN-ReLU, a 1x1 convolution to ``num_channels``, and 2x2 average pooling that halves height and width."""
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(D2LClassifier):
    """DenseNet as in d2l: ResNet's stem (``net.0``), dense blocks ``net.dense_blk{i}`` with transition layers
    ``net.tran_blk{i}`` that halve the channels in between, and ``net.last`` (BN, ReLU, pooling, linear)."""

    def b1(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def __init__(
        self,
        num_channels: int = 64,
        growth_rate: int = 32,
        arch: Sequence[int] = (4, 4, 4, 4),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(self.b1())
        for i, num_convs in enumerate(arch):
            self.net.add_module(f"dense_blk{i + 1}", DenseBlock(num_convs, growth_rate))
            # The number of output channels in the previous dense block
            num_channels += num_convs * growth_rate
            # A transition layer that halves the number of channels is added between the dense blocks
            if i != len(arch) - 1:
                num_channels //= 2
                self.net.add_module(f"tran_blk{i + 1}", transition_block(num_channels))
        self.net.add_module("last", nn.Sequential(
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))


# fmt: on

# --- Registration -------------------------------------------------------------------------------------------
# ``create_model`` puts the model in eval mode before it materialises the lazy layers with one forward pass at
# batch 1 (in training mode BatchNorm would reject a batch of one 1x1 map).


def _spec(name: str, family: str, size: int, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=family,
        source=_SOURCE,
        input_shape=(1, size, size),
        num_classes=10,
        description=description,
        overridable=D2L_OVERRIDES,
    )


@register_model(
    _spec("d2l-lenet", "lenet", 28, "d2l LeNet-5: sigmoid + average pooling, Fashion-MNIST 28x28")
)
def build_d2l_lenet(spec: ModelSpec) -> nn.Module:
    """d2l's ``LeNet`` with ``spec.num_classes`` outputs."""
    return LeNet(num_classes=spec.num_classes)


@register_model(_spec("d2l-alexnet", "alexnet", 224, "d2l AlexNet for Fashion-MNIST upsampled to 224x224"))
def build_d2l_alexnet(spec: ModelSpec) -> nn.Module:
    """d2l's ``AlexNet`` with ``spec.num_classes`` outputs."""
    return AlexNet(num_classes=spec.num_classes)


@register_model(_spec("d2l-vgg11", "vgg", 224, "d2l VGG-11 (full width: 64-128-256-512-512), 224x224"))
def build_d2l_vgg11(spec: ModelSpec) -> nn.Module:
    """d2l's ``VGG`` with the full VGG-11 ``arch`` and ``spec.num_classes`` outputs."""
    return VGG(VGG11_ARCH, num_classes=spec.num_classes)


@register_model(
    _spec("d2l-nin", "nin", 224, "d2l Network in Network: no dense layer, global average pooling")
)
def build_d2l_nin(spec: ModelSpec) -> nn.Module:
    """d2l's ``NiN`` with ``spec.num_classes`` outputs."""
    return NiN(num_classes=spec.num_classes)


@register_model(
    _spec("d2l-googlenet", "googlenet", 96, "d2l GoogLeNet: nine Inception blocks (torch.cat), 96x96")
)
def build_d2l_googlenet(spec: ModelSpec) -> nn.Module:
    """d2l's ``GoogleNet`` with ``spec.num_classes`` outputs."""
    return GoogleNet(num_classes=spec.num_classes)


@register_model(_spec("d2l-resnet18", "resnet", 96, "d2l ResNet-18: Residual blocks with Y += X, 96x96"))
def build_d2l_resnet18(spec: ModelSpec) -> nn.Module:
    """d2l's ``ResNet18`` with ``spec.num_classes`` outputs."""
    return ResNet18(num_classes=spec.num_classes)


@register_model(
    _spec("d2l-densenet", "densenet", 96, "d2l DenseNet: 4 dense blocks of 4 convs, growth 32, 96x96")
)
def build_d2l_densenet(spec: ModelSpec) -> nn.Module:
    """d2l's ``DenseNet`` (64 stem channels, growth rate 32, arch 4-4-4-4) with ``spec.num_classes`` outputs."""
    return DenseNet(num_classes=spec.num_classes)
