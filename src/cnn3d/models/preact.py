"""Pre-activation 3D ResNet (10-200): BN and ReLU before each conv, no ReLU after the addition."""

from __future__ import annotations

from torch import nn

from .blocks import conv1x1x1, conv3x3x3
from .resnet import DEPTHS, ResNet, check_depth, stage_planes


class PreActBasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm3d(in_planes)
        self.conv1 = conv3x3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(nn.functional.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class PreActBottleneck(nn.Module):
    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm3d(in_planes)
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(nn.functional.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + identity


def build_preresnet(depth: int, n_classes: int = 400, **options) -> ResNet:
    """Pre-activation ResNet-10...200 (the stem stays post-activation, as in the original)."""
    check_depth("preresnet", depth, tuple(DEPTHS))
    kind, layers = DEPTHS[depth]
    block, expansion = (PreActBasicBlock, 1) if kind == "basic" else (PreActBottleneck, 4)
    return ResNet(block, layers, stage_planes(), expansion, n_classes=n_classes, **options)
