"""Building blocks shared by the ResNet-style families: convolutions, shortcuts, residual blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .conv import Conv3d


def conv3x3x3(
    in_planes: int, out_planes: int, stride=1, groups: int = 1, t_size: int = 3
) -> Conv3d:
    """A (t_size, 3, 3) convolution: 3x3x3 by default, 1x3x3 (no temporal extent) for MC3's
    later stages; `stride` an int or a (t, h, w) tuple."""
    return Conv3d(
        in_planes,
        out_planes,
        (t_size, 3, 3),
        stride=stride,
        padding=(t_size // 2, 1, 1),
        groups=groups,
        bias=False,
    )


def conv1x1x1(in_planes: int, out_planes: int, stride: int = 1) -> Conv3d:
    return Conv3d(in_planes, out_planes, 1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Parameter-free shortcut: strided identity, zero-padded to the output width.

    Unlike the original (which concatenated `out.data`), gradients flow through it, and the
    zeros are made on the input's device and dtype.
    """

    def __init__(self, out_planes: int, stride):
        super().__init__()
        self.out_planes = out_planes
        self.stride = (stride,) * 3 if isinstance(stride, int) else tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != (1, 1, 1):
            t, h, w = self.stride
            x = x[:, :, ::t, ::h, ::w]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.out_planes - x.shape[1]))


def make_shortcut(shortcut: str, in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Shortcut 'A' (zero-padded identity) or 'B' (1x1x1 conv + BN), as in the original."""
    if shortcut == "A":
        return ShortcutA(out_planes, stride)
    if shortcut == "B":
        return nn.Sequential(conv1x1x1(in_planes, out_planes, stride), nn.BatchNorm3d(out_planes))
    raise UsageError(f"shortcut must be 'A' or 'B', not {shortcut!r}")


class BasicBlock(nn.Module):
    """Two 3x3x3 convs (post-activation), expansion 1; `t_size` 1 makes them 1x3x3 (MC3)."""

    def __init__(self, in_planes, planes, stride=1, downsample=None, t_size=3):
        super().__init__()
        self.conv1 = conv3x3x3(in_planes, planes, stride, t_size=t_size)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, t_size=t_size)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1x1 -> 3x3x3 (optionally grouped) -> 1x1x1 (post-activation).

    The output width is `planes * expansion`; the inner width is `mid_planes` (default `planes`).
    ResNet uses expansion 4; Wide ResNet and ResNeXt use expansion 2.
    """

    def __init__(
        self, in_planes, planes, stride=1, downsample=None, expansion=4, groups=1, mid_planes=None
    ):
        super().__init__()
        mid = mid_planes or planes
        self.conv1 = conv1x1x1(in_planes, mid)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = conv3x3x3(mid, mid, stride, groups)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = conv1x1x1(mid, planes * expansion)
        self.bn3 = nn.BatchNorm3d(planes * expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


def stem_conv(n_input_channels: int, width: int, t_size: int, t_stride: int) -> Conv3d:
    """The (t, 7, 7) stem convolution with stride (t_stride, 2, 2)."""
    return Conv3d(
        n_input_channels,
        width,
        kernel_size=(t_size, 7, 7),
        stride=(t_stride, 2, 2),
        padding=(t_size // 2, 3, 3),
        bias=False,
    )


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_out) convs, unit BN scale; the linear head keeps PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
