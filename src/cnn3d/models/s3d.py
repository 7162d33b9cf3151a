"""S3D (Xie et al. 2018): Inception-v1 in 3D with every 3x3x3 (and the 7x7x7 stem) split into
a 1xkxk spatial and a kx1x1 temporal convolution, as torchvision's `s3d` and kylemin/S3D build it.

The head follows both: average-pool windows of 2 frames x `pool_size` (torchvision: 7x7; None:
the whole map, as kylemin's), a 1x1x1 classifier per window, the mean over the windows. The
classifier is linear, so `forward_features` is the mean of the pooled windows (1024) and the head
a `Linear` on it: head(features) is the reference's logits. BatchNorm eps is 1e-3 (both
references); the momentum is PyTorch's usual 0.1 (torchvision's 0.001 only matters in training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .conv import Conv3d

BN_EPS = 1e-3
# name -> (input, branch0, branch1 mid, branch1 out, branch2 mid, branch2 out, branch3 out)
MIXED = {
    "mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}
# the max-pool before a block: (kernel, stride, padding)
POOL_BEFORE = {
    "mixed_3b": ((1, 3, 3), (1, 2, 2), (0, 1, 1)),
    "mixed_4b": ((3, 3, 3), (2, 2, 2), (1, 1, 1)),
    "mixed_5b": ((2, 2, 2), (2, 2, 2), (0, 0, 0)),
}


class Unit(nn.Module):
    """Convolution (no bias), BatchNorm, ReLU."""

    def __init__(self, c_in, c_out, kernel=(1, 1, 1), stride=(1, 1, 1), padding=(0, 0, 0)):
        super().__init__()
        self.conv = Conv3d(c_in, c_out, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(c_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class SepUnit(nn.Module):
    """A k x k x k convolution split: 1 x k x k (spatial stride) then k x 1 x 1 (temporal
    stride), each with BatchNorm and ReLU; both have `c_out` channels."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1):
        super().__init__()
        self.spatial = Unit(c_in, c_out, (1, k, k), (1, stride, stride), (0, k // 2, k // 2))
        self.temporal = Unit(c_out, c_out, (k, 1, 1), (stride, 1, 1), (k // 2, 0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(x))


class Mixed(nn.Module):
    """Four branches concatenated: 1x1x1; 1x1x1 then separable 3; 1x1x1 then separable 3;
    3x3x3 max-pool (stride 1) then 1x1x1."""

    def __init__(self, c_in, b0, b1_mid, b1, b2_mid, b2, b3):
        super().__init__()
        self.branch0 = Unit(c_in, b0)
        self.branch1 = nn.Sequential(Unit(c_in, b1_mid), SepUnit(b1_mid, b1))
        self.branch2 = nn.Sequential(Unit(c_in, b2_mid), SepUnit(b2_mid, b2))
        self.branch3 = Unit(c_in, b3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool3d(x, 3, stride=1, padding=1)
        branches = (self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(pooled))
        return torch.cat(branches, 1)


class WindowPool(nn.Module):
    """Average of every window of 2 frames x `size` x `size` (None: the whole height and
    width), stride 1, then the mean over the windows: [N, C, T, H, W] -> [N, C]. A map smaller
    than the window (clips under 16 frames or 224 pixels, where the references stop) is pooled
    whole."""

    def __init__(self, size: int | None):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, h, w = x.shape[2:]
        if self.size is not None:
            h, w = min(h, self.size), min(w, self.size)
        return F.avg_pool3d(x, (min(t, 2), h, w), stride=1).mean(dim=(2, 3, 4))


class S3D(nn.Module):
    def __init__(
        self,
        n_classes: int = 400,
        n_input_channels: int = 3,
        pool_size: int | None = 7,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.conv1 = SepUnit(n_input_channels, 64, k=7, stride=2)
        self.conv2 = Unit(64, 64)
        self.conv3 = SepUnit(64, 192)
        for name, widths in MIXED.items():
            setattr(self, name, Mixed(*widths))
        self.avgpool = WindowPool(pool_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1024, n_classes)
        self.num_features = 1024
        self.feature_points = list(MIXED)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [N, 1024] of a normalised clip batch [N, C, T, H, W]."""
        x = F.max_pool3d(self.conv1(x), (1, 3, 3), (1, 2, 2), (0, 1, 1))
        x = self.conv3(self.conv2(x))
        for name in MIXED:
            if name in POOL_BEFORE:
                x = F.max_pool3d(x, *POOL_BEFORE[name])
            x = getattr(self, name)(x)
        return self.avgpool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x)))

    def reset_classifier(self, n_classes: int) -> None:
        self.classifier = nn.Linear(1024, n_classes).to(self.classifier.weight.device)

    @property
    def classifier_name(self) -> str:
        return "classifier"


def build_s3d(depth: int = 22, n_classes: int = 400, **options) -> S3D:
    """S3D; its one depth, 22, is Inception-v1's (GoogLeNet's 22 layers with parameters)."""
    if depth != 22:
        raise UsageError(f"s3d has one depth, 22 (Inception-v1's), not {depth}")
    return S3D(n_classes, **options)
