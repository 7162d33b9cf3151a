"""R(2+1)D (10-200): each 3x3x3 conv split into a (1,3,3) spatial and a (3,1,1) temporal conv."""

from __future__ import annotations

from torch import nn

from .blocks import conv1x1x1
from .conv import Conv3d
from .resnet import DEPTHS, ResNet, check_depth, stage_planes


def mid_width(in_planes: int, out_planes: int, t: int = 3, k: int = 3) -> int:
    """Inner width that gives the (2+1)D pair the parameter count of a t x k x k 3D conv."""
    return (in_planes * out_planes * t * k * k) // (in_planes * k * k + t * out_planes)


def spatial_conv(in_planes, out_planes, stride=1):
    return Conv3d(in_planes, out_planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


def temporal_conv(in_planes, out_planes, stride=1):
    return Conv3d(in_planes, out_planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False)


class BasicBlock2p1d(nn.Module):
    """Two (2+1)D convs. `per_block_mid` reuses the first pair's inner width for the second, as
    torchvision's r2plus1d_18 does; the original computes it per conv."""

    def __init__(self, in_planes, planes, stride=1, downsample=None, per_block_mid=False):
        super().__init__()
        mid1 = mid_width(in_planes, planes)
        mid2 = mid1 if per_block_mid else mid_width(planes, planes)
        self.conv1_s = spatial_conv(in_planes, mid1, stride)
        self.bn1_s = nn.BatchNorm3d(mid1)
        self.conv1_t = temporal_conv(mid1, planes, stride)
        self.bn1_t = nn.BatchNorm3d(planes)
        self.conv2_s = spatial_conv(planes, mid2)
        self.bn2_s = nn.BatchNorm3d(mid2)
        self.conv2_t = temporal_conv(mid2, planes)
        self.bn2_t = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1_s(self.conv1_s(x)))
        out = self.relu(self.bn1_t(self.conv1_t(out)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.bn2_t(self.conv2_t(out))
        return self.relu(out + identity)


class Bottleneck2p1d(nn.Module):
    def __init__(self, in_planes, planes, stride=1, downsample=None):
        super().__init__()
        mid = mid_width(planes, planes)
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2_s = spatial_conv(planes, mid, stride)
        self.bn2_s = nn.BatchNorm3d(mid)
        self.conv2_t = temporal_conv(mid, planes, stride)
        self.bn2_t = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.relu(self.bn2_t(self.conv2_t(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet2p1D(ResNet):
    """ResNet skeleton with a (2+1)D stem: `conv1_s` (1,7,7) then `conv1_t` (t,1,1)."""

    def _build_stem(self, n_input_channels, width, t_size, t_stride, stem_mid_width=None):
        # The original hard-codes 3 input channels in this formula; kept so its files load.
        mid = stem_mid_width or (3 * width * t_size * 49) // (3 * 49 + t_size * width)
        self.conv1_s = Conv3d(n_input_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1_s = nn.BatchNorm3d(mid)
        self.conv1_t = Conv3d(
            mid, width, (t_size, 1, 1), (t_stride, 1, 1), (t_size // 2, 0, 0), bias=False
        )
        self.bn1_t = nn.BatchNorm3d(width)

    def _stem(self, x):
        x = self.relu(self.bn1_s(self.conv1_s(x)))
        return self.relu(self.bn1_t(self.conv1_t(x)))


def build_resnet2p1d(
    depth: int,
    n_classes: int = 400,
    widen_factor: float = 1.0,
    per_block_mid: bool = False,
    bn_eps: float = 1e-5,
    **options,
) -> ResNet2p1D:
    """R(2+1)D-10...200. `stem_mid_width` and `per_block_mid` reproduce torchvision's r2plus1d_18
    (45 and True); the defaults reproduce the original's 2020 release. `bn_eps`: every
    BatchNorm's epsilon (1e-3 in the Caffe2 weights of IG-65M and TSP, PyTorch's 1e-5 else)."""
    check_depth("resnet2p1d", depth, tuple(DEPTHS))
    kind, layers = DEPTHS[depth]
    if kind == "basic":

        def block(in_planes, planes, stride, downsample):
            return BasicBlock2p1d(in_planes, planes, stride, downsample, per_block_mid)

        expansion = 1
    else:
        block, expansion = Bottleneck2p1d, 4
    model = ResNet2p1D(
        block, layers, stage_planes(widen_factor), expansion, n_classes=n_classes, **options
    )
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.eps = bn_eps
    return model
