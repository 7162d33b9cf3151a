"""3D ResNeXt (50-200): grouped 3x3x3 bottleneck convs (`cardinality` groups), expansion 2."""

from __future__ import annotations

from .blocks import Bottleneck
from .resnet import BOTTLENECK_DEPTHS, DEPTHS, ResNet, check_depth

RESNEXT_PLANES = (128, 256, 512, 1024)


class ResNeXtBottleneck(Bottleneck):
    def __init__(self, in_planes, planes, stride=1, downsample=None, cardinality=32):
        mid = cardinality * planes // 32
        super().__init__(in_planes, planes, stride, downsample, 2, cardinality, mid)


def build_resnext(
    depth: int, n_classes: int = 400, cardinality: int = 32, stem_width: int | None = 64, **options
) -> ResNet:
    """ResNeXt-50/101/152/200; inner width `cardinality * planes / 32`.

    `stem_width` 64 matches the 2018 release; None makes the stem 128 wide (the 2020 code).
    """
    check_depth("resnext", depth, BOTTLENECK_DEPTHS)

    def block(in_planes, planes, stride, downsample):
        return ResNeXtBottleneck(in_planes, planes, stride, downsample, cardinality)

    return ResNet(
        block,
        DEPTHS[depth][1],
        RESNEXT_PLANES,
        2,
        n_classes=n_classes,
        stem_width=stem_width,
        **options,
    )
