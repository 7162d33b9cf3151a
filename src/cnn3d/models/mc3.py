"""MC3 (mixed convolutions, Tran et al. 2018), as torchvision's `mc3_18`: a 3D ResNet whose
first residual stage keeps 3x3x3 convolutions and whose later stages convolve in space only
(1x3x3, spatial stride only, so time keeps the stem's length to the end)."""

from __future__ import annotations

from functools import partial

from .blocks import BasicBlock
from .resnet import BASE_PLANES, DEPTHS, ResNet, check_depth

MC3_DEPTHS = (10, 18, 34)  # basic-block depths; torchvision releases 18


def build_mc3(depth: int, n_classes: int = 400, n_3d_stages: int = 1, **options) -> ResNet:
    """MC3-10/18/34. `n_3d_stages`: how many residual stages keep 3D convolutions (torchvision's
    mc3_18: 1). Its stem is torchvision's: 3x7x7, stride (1, 2, 2), no max-pool."""
    check_depth("mc3", depth, MC3_DEPTHS)
    _, layers = DEPTHS[depth]
    spatial = partial(BasicBlock, t_size=1)
    blocks = [BasicBlock if i < n_3d_stages else spatial for i in range(4)]
    strides = [1] + [2 if i < n_3d_stages else (1, 2, 2) for i in range(1, 4)]
    options = {"conv1_t_size": 3, "no_max_pool": True} | options
    return ResNet(
        blocks, layers, BASE_PLANES, 1, n_classes=n_classes, stage_strides=strides, **options
    )
