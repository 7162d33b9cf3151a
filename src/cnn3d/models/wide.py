"""Wide 3D ResNet (50-200): bottleneck stages `k` times wider, expansion 2."""

from __future__ import annotations

from functools import partial

from .blocks import Bottleneck
from .resnet import BOTTLENECK_DEPTHS, DEPTHS, ResNet, check_depth, stage_planes


def build_wideresnet(
    depth: int,
    n_classes: int = 400,
    widen_factor: float = 2,
    stem_width: int | None = 64,
    **options,
) -> ResNet:
    """WRN-50/101/152/200 with planes `[64k, 128k, 256k, 512k]`.

    `stem_width` 64 matches the 2018 release; None makes the stem as wide as the first stage
    (the 2020 code).
    """
    check_depth("wideresnet", depth, BOTTLENECK_DEPTHS)
    block = partial(Bottleneck, expansion=2)
    return ResNet(
        block,
        DEPTHS[depth][1],
        stage_planes(widen_factor),
        2,
        n_classes=n_classes,
        stem_width=stem_width,
        **options,
    )
