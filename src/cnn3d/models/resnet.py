"""3D ResNet (10-200) with shortcut A or B; the network class the other ResNet families reuse."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import UsageError
from .blocks import BasicBlock, Bottleneck, init_weights, make_shortcut, stem_conv

# depth -> (block kind, blocks per stage)
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
BOTTLENECK_DEPTHS = (50, 101, 152, 200)
BASE_PLANES = (64, 128, 256, 512)


class ResNet(nn.Module):
    """Stem -> 4 residual stages -> adaptive average pool -> fc.

    `block(in_planes, planes, stride, downsample)` builds one residual block whose output width is
    `planes * expansion`; a sequence of four builders gives each stage its own (MC3: 3D blocks,
    then 1x3x3 ones). `stage_strides`: each stage's first stride, an int or a (t, h, w) tuple
    (MC3 keeps time from stage 2 on). The stem is `conv1` (t x 7 x 7, stride (t_stride, 2, 2)),
    `bn1`, ReLU and an optional 3x3x3 max-pool; its width is `stem_width` (default: the first
    stage's planes).
    """

    def __init__(
        self,
        block: Callable[..., nn.Module] | Sequence[Callable[..., nn.Module]],
        layers: Sequence[int],
        block_planes: Sequence[int],
        expansion: int,
        *,
        n_classes: int = 400,
        n_input_channels: int = 3,
        conv1_t_size: int = 7,
        conv1_t_stride: int = 1,
        no_max_pool: bool = False,
        shortcut: str = "B",
        stem_width: int | None = None,
        stage_strides: Sequence = (1, 2, 2, 2),
        **stem_options,
    ):
        super().__init__()
        stem_width = stem_width or block_planes[0]
        self._build_stem(n_input_channels, stem_width, conv1_t_size, conv1_t_stride, **stem_options)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if no_max_pool else nn.MaxPool3d(3, stride=2, padding=1)
        in_planes = stem_width
        blocks_per_stage = [block] * len(layers) if callable(block) else list(block)
        for index, (n_blocks, planes) in enumerate(zip(layers, block_planes, strict=True)):
            stride, block = stage_strides[index], blocks_per_stage[index]
            blocks = []
            for b in range(n_blocks):
                s = stride if b == 0 else 1
                downsample = None
                if s != 1 or in_planes != planes * expansion:
                    downsample = make_shortcut(shortcut, in_planes, planes * expansion, s)
                blocks.append(block(in_planes, planes, s, downsample))
                in_planes = planes * expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(in_planes, n_classes)
        self.num_features = in_planes
        init_weights(self)

    def _build_stem(self, n_input_channels, width, t_size, t_stride):
        self.conv1 = stem_conv(n_input_channels, width, t_size, t_stride)
        self.bn1 = nn.BatchNorm3d(width)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [N, num_features] of a normalised clip batch [N, C, T, H, W]."""
        x = self.maxpool(self._stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, n_classes] of a normalised clip batch [N, C, T, H, W]."""
        return self.fc(self.forward_features(x))

    def reset_classifier(self, n_classes: int) -> None:
        """Replace the head with a freshly initialised one for `n_classes` (fine-tuning)."""
        self.fc = nn.Linear(self.num_features, n_classes).to(self.fc.weight.device)

    @property
    def classifier_name(self) -> str:
        return "fc"


def stage_planes(widen_factor: float = 1.0, base: Sequence[int] = BASE_PLANES) -> list[int]:
    return [int(p * widen_factor) for p in base]


def check_depth(family: str, depth: int, allowed: Sequence[int]) -> None:
    if depth not in allowed:
        raise UsageError(
            f"{family} has no depth {depth}; choose one of {', '.join(map(str, allowed))}"
        )


def build_resnet(depth: int, n_classes: int = 400, widen_factor: float = 1.0, **options) -> ResNet:
    """ResNet-10/18/34/50/101/152/200; `widen_factor` multiplies every stage width."""
    check_depth("resnet", depth, tuple(DEPTHS))
    kind, layers = DEPTHS[depth]
    block, expansion = (BasicBlock, 1) if kind == "basic" else (Bottleneck, 4)
    return ResNet(
        block, layers, stage_planes(widen_factor), expansion, n_classes=n_classes, **options
    )
