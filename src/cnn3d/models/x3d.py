"""X3D (Feichtenhofer, CVPR 2020) as pytorchvideo's hub builds it: XS, S, M and L.

A (1x3x3 then depthwise 5x1x1) stem; four stages of bottlenecks whose middle convolution is a
depthwise 3x3x3, with Squeeze-Excitation on every other block and Swish after it; a head that
widens to 432 channels, averages with a kernel fixed by the variant's training clip, widens to
2048 with a 1x1x1 convolution and ReLU, and classifies. XS, S and M have the same weights' shapes
(they differ in the clip they were trained on, hence in the head's pooling kernel); L is deeper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .blocks import init_weights
from .conv import Conv3d

# variant -> (training clip length, training crop size, blocks per stage)
VARIANTS: dict[str, tuple[int, int, tuple[int, int, int, int]]] = {
    "xs": (4, 160, (3, 5, 11, 7)),
    "s": (13, 160, (3, 5, 11, 7)),
    "m": (16, 224, (3, 5, 11, 7)),
    "l": (16, 312, (5, 10, 25, 15)),
}
STEM_WIDTH = 24
STAGE_WIDTHS = (24, 48, 96, 192)  # each stage's output
INNER_WIDTHS = (54, 108, 216, 432)  # 2.25 x the output, the depthwise convolution's width
SE_WIDTHS = (8, 8, 16, 32)  # 1/16 of the inner width, rounded to a multiple of 8
HEAD_WIDTH = 2048
SPATIAL_STRIDE = 32  # the stem's 2 x one 2 per stage


class SqueezeExcitation(nn.Module):
    """Channel gates from the clip-wide mean: 1x1x1 conv, ReLU, 1x1x1 conv, sigmoid."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = Conv3d(channels, reduced, 1)
        self.fc2 = Conv3d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))


class X3DBlock(nn.Module):
    """1x1x1 -> depthwise 3x3x3 (stride (1, s, s)) -> [SE] -> Swish -> 1x1x1, plus the shortcut.

    The shortcut is a strided 1x1x1 conv where the shape changes, with a BatchNorm only where
    the width changes (the first block of stage 1 keeps 24 channels: conv, no BatchNorm).
    """

    def __init__(self, in_planes, planes, inner, stride, se_width):
        super().__init__()
        self.conv_a = Conv3d(in_planes, inner, 1, bias=False)
        self.bn_a = nn.BatchNorm3d(inner)
        self.conv_b = Conv3d(
            inner, inner, 3, stride=(1, stride, stride), padding=1, groups=inner, bias=False
        )
        self.bn_b = nn.BatchNorm3d(inner)
        self.se = SqueezeExcitation(inner, se_width) if se_width else None
        self.conv_c = Conv3d(inner, planes, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(planes)
        self.downsample = None
        if in_planes != planes or stride != 1:
            shortcut = [Conv3d(in_planes, planes, 1, stride=(1, stride, stride), bias=False)]
            if in_planes != planes:
                shortcut.append(nn.BatchNorm3d(planes))
            self.downsample = nn.Sequential(*shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn_a(self.conv_a(x)))
        out = self.bn_b(self.conv_b(out))
        if self.se is not None:
            out = self.se(out)
        out = self.bn_c(self.conv_c(F.silu(out)))
        return F.relu(out + identity)


class X3DStem(nn.Module):
    """A 1x3x3 conv (stride (1, 2, 2)), then a depthwise 5x1x1 conv, BatchNorm, ReLU."""

    def __init__(self, n_input_channels: int):
        super().__init__()
        self.conv_xy = Conv3d(
            n_input_channels, STEM_WIDTH, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False
        )
        self.conv_t = Conv3d(
            STEM_WIDTH, STEM_WIDTH, (5, 1, 1), padding=(2, 0, 0), groups=STEM_WIDTH, bias=False
        )
        self.bn = nn.BatchNorm3d(STEM_WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv_t(self.conv_xy(x))))


class X3D(nn.Module):
    """Stem -> layer1-4 -> conv5 (432, BN, ReLU) -> pool5 -> lin5 (2048, ReLU) -> avgpool -> fc.

    `pool5` averages with stride 1 over the variant's training map (T x ceil(crop / 32)^2), as
    pytorchvideo's head does: on a larger input its output is a map, which lin5 widens and
    `avgpool` then averages (the reference averages the logits; the head is linear, so that is
    the same). Where the map is smaller than the kernel, pool5 covers the whole map (the
    reference fails there). Features: the 2048-wide lin5 output after ReLU, averaged; the
    classifier is the Linear `fc` (dropout 0.5 before it in training).
    """

    def __init__(
        self,
        blocks: tuple[int, int, int, int],
        pool_size: tuple[int, int, int],
        *,
        n_classes: int = 400,
        n_input_channels: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.stem = X3DStem(n_input_channels)
        in_planes = STEM_WIDTH
        for index, n_blocks in enumerate(blocks):
            planes, inner = STAGE_WIDTHS[index], INNER_WIDTHS[index]
            stage = [
                X3DBlock(
                    in_planes if b == 0 else planes,
                    planes,
                    inner,
                    2 if b == 0 else 1,
                    SE_WIDTHS[index] if b % 2 == 0 else 0,
                )
                for b in range(n_blocks)
            ]
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
            in_planes = planes
        self.conv5 = Conv3d(in_planes, INNER_WIDTHS[-1], 1, bias=False)
        self.bn5 = nn.BatchNorm3d(INNER_WIDTHS[-1])
        self.pool_size = tuple(int(s) for s in pool_size)
        self.lin5 = Conv3d(INNER_WIDTHS[-1], HEAD_WIDTH, 1, bias=False)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(HEAD_WIDTH, n_classes)
        self.num_features = HEAD_WIDTH
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [N, 2048] of a normalised clip batch [N, C, T, H, W]."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.relu(self.bn5(self.conv5(x)))
        kernel = [min(k, s) for k, s in zip(self.pool_size, x.shape[2:], strict=True)]
        x = F.relu(self.lin5(F.avg_pool3d(x, kernel, stride=1)))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, n_classes] of a normalised clip batch [N, C, T, H, W]."""
        return self.fc(self.dropout(self.forward_features(x)))

    def reset_classifier(self, n_classes: int) -> None:
        """Replace the head with a freshly initialised one for `n_classes` (fine-tuning)."""
        self.fc = nn.Linear(self.num_features, n_classes).to(self.fc.weight.device)

    @property
    def classifier_name(self) -> str:
        return "fc"


def head_pool_size(clip_length: int, crop_size: int) -> tuple[int, int, int]:
    """The head's averaging kernel for a training clip: the last stage's map at that size."""
    side = math.ceil(crop_size / SPATIAL_STRIDE)
    return (clip_length, side, side)


def build_x3d(
    depth: str,
    n_classes: int = 400,
    n_input_channels: int = 3,
    dropout: float = 0.5,
    pool_size=None,
) -> X3D:
    """X3D-XS/S/M/L. `pool_size` (T, H, W): the head's averaging kernel, by default the one of
    the variant's training clip (XS 4x160: (4, 5, 5); S 13x160: (13, 5, 5); M 16x224:
    (16, 7, 7); L 16x312: (16, 10, 10))."""
    variant = str(depth).lower()
    if variant not in VARIANTS:
        raise UsageError(f"x3d has no variant {depth!r}; choose one of {', '.join(VARIANTS)}")
    clip_length, crop_size, blocks = VARIANTS[variant]
    return X3D(
        blocks,
        tuple(pool_size) if pool_size else head_pool_size(clip_length, crop_size),
        n_classes=n_classes,
        n_input_channels=n_input_channels,
        dropout=dropout,
    )
