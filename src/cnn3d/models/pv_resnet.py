"""pytorchvideo's bottleneck ResNets: Slow, C2D, I3D-ResNet, CSN and the bottleneck R(2+1)D.

One network (`PVResNet`) whose variants differ in a few numbers: the stem's temporal kernel,
the temporal kernel of each block's first 1x1x1-or-3x1x1 convolution (`conv_a`), what the 3x3
convolution (`conv_b`) is (a 1x3x3 one, a depthwise 3x3x3 one for CSN, a (2+1)D pair for
R(2+1)D), where time is subsampled, and the head's fixed pooling window. The blocks keep
pytorchvideo's names inside (`branch1_conv`, `branch2.conv_a`...); the stages are `layer1-4`
and the head `fc`, as in cnn3d's other ResNets. `slowfast.py` builds its two pathways from the
same stages.

The head re-creates pytorchvideo's: an average over a fixed window (stride 1), the linear
layer at each window position, then the mean over positions. The linear layer commutes with
that mean, so `fc(avgpool(x))` gives the same logits; at the native clip there is one window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import init_weights
from .conv import Conv3d
from .resnet import check_depth

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def conv(c_in, c_out, kernel, stride=(1, 1, 1), groups=1) -> Conv3d:
    """A bias-free convolution padded by half its kernel in each dimension."""
    return Conv3d(c_in, c_out, kernel, stride, [k // 2 for k in kernel], groups=groups, bias=False)


class Conv2plus1d(nn.Module):
    """(t,1,1) conv -> BN -> ReLU -> (1,3,3) conv, the inner width equal to the output's."""

    def __init__(self, c_in: int, c_out: int, stride: Sequence[int]):
        super().__init__()
        self.conv_t = conv(c_in, c_out, (3, 1, 1), (stride[0], 1, 1))
        self.norm = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv_xy = conv(c_out, c_out, (1, 3, 3), (1, stride[1], stride[2]))

    def forward(self, x):
        return self.conv_xy(self.relu(self.norm(self.conv_t(x))))


class Bottleneck(nn.Module):
    """conv_a (t_a x 1 x 1) -> conv_b (3x3, strided) -> conv_c (1x1x1), BN after each, ReLU
    after the first two. `conv_b`: "2d" (1x3x3), "depthwise" (3x3x3, one group per channel),
    "2plus1d" (`Conv2plus1d`)."""

    def __init__(self, c_in, inner, c_out, t_a: int, conv_b: str, stride: Sequence[int]):
        super().__init__()
        self.conv_a = conv(c_in, inner, (t_a, 1, 1))
        self.norm_a = nn.BatchNorm3d(inner)
        if conv_b == "2plus1d":
            self.conv_b = Conv2plus1d(inner, inner, stride)
        else:
            depthwise = conv_b == "depthwise"
            kernel = (3, 3, 3) if depthwise else (1, 3, 3)
            self.conv_b = conv(inner, inner, kernel, stride, groups=inner if depthwise else 1)
        self.norm_b = nn.BatchNorm3d(inner)
        self.conv_c = conv(inner, c_out, (1, 1, 1))
        self.norm_c = nn.BatchNorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu(self.norm_a(self.conv_a(x)))
        x = self.relu(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class ResBlock(nn.Module):
    """`branch2` (the bottleneck) plus the input, through a strided 1x1x1 conv + BN
    (`branch1_*`) where the width or the size changes; ReLU after the sum."""

    def __init__(self, c_in, inner, c_out, t_a, conv_b, stride):
        super().__init__()
        if c_in != c_out or any(s != 1 for s in stride):
            self.branch1_conv = conv(c_in, c_out, (1, 1, 1), stride)
            self.branch1_norm = nn.BatchNorm3d(c_out)
        else:
            self.branch1_conv = self.branch1_norm = None
        self.branch2 = Bottleneck(c_in, inner, c_out, t_a, conv_b, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.relu(shortcut + self.branch2(x))


def make_stage(c_in, inner, c_out, n_blocks, t_a_pattern, conv_b, stride) -> nn.Sequential:
    """One stage; `t_a_pattern` (conv_a's temporal kernels) repeats over the blocks, as
    pytorchvideo's I3D alternates 3 and 1; only the first block is strided."""
    blocks = []
    for b in range(n_blocks):
        t_a = t_a_pattern[b % len(t_a_pattern)]
        blocks.append(ResBlock(c_in, inner, c_out, t_a, conv_b, stride if b == 0 else (1, 1, 1)))
        c_in = c_out
    return nn.Sequential(*blocks)


class Stem(nn.Module):
    """(t,7,7) conv, stride (1,2,2) -> BN -> ReLU -> optional (1,3,3) max-pool, stride (1,2,2)."""

    def __init__(self, c_in: int, width: int, t: int, pool: bool):
        super().__init__()
        self.conv = conv(c_in, width, (t, 7, 7), (1, 2, 2))
        self.norm = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if pool else nn.Identity()

    def forward(self, x):
        return self.pool(self.relu(self.norm(self.conv(x))))


class WindowAvgPool(nn.Module):
    """pytorchvideo's head pooling: the mean over a fixed `window` (stride 1), then over the
    window positions, to [N, C, 1, 1, 1]. A map smaller than the window in some dimension is
    averaged whole there (pytorchvideo raises)."""

    def __init__(self, window: Sequence[int]):
        super().__init__()
        self.window = tuple(window)

    def forward(self, x):
        window = tuple(min(w, s) for w, s in zip(self.window, x.shape[2:], strict=True))
        return F.adaptive_avg_pool3d(F.avg_pool3d(x, window, stride=1), 1)

    def extra_repr(self) -> str:
        return f"window={self.window}"


@dataclass(frozen=True)
class Variant:
    """What sets one pytorchvideo ResNet apart. `conv_a_t`: per stage, the temporal kernels
    of conv_a (a pattern over the blocks); strides per stage are (time, space) of conv_b."""

    stem_t: int
    stem_pool: bool
    stage1_pool: bool  # C2D and I3D: a (2,1,1) max-pool after stage 1
    conv_a_t: tuple[tuple[int, ...], ...]
    conv_b: str
    t_strides: tuple[int, int, int, int]
    s_strides: tuple[int, int, int, int]
    head_window: tuple[int, int, int]
    dropout: float


VARIANTS = {  # the arguments pytorchvideo's hub (models/hub/*.py) gives its builders
    "slow": Variant(1, True, False, ((1,), (1,), (3,), (3,)), "2d", (1, 1, 1, 1), (1, 2, 2, 2),
                    (8, 7, 7), 0.5),
    "c2d": Variant(1, True, True, ((1,), (1,), (1,), (1,)), "2d", (1, 1, 1, 1), (1, 2, 2, 2),
                   (4, 7, 7), 0.5),
    "i3d_r": Variant(5, True, True, ((3,), (3, 1), (3, 1), (1, 3)), "2d", (1, 1, 1, 1),
                     (1, 2, 2, 2), (4, 7, 7), 0.5),
    "csn": Variant(3, True, False, ((1,),) * 4, "depthwise", (1, 2, 2, 2), (1, 2, 2, 2),
                   (4, 7, 7), 0.0),
    "r2plus1d_r": Variant(1, False, False, ((1,),) * 4, "2plus1d", (1, 1, 2, 2), (2, 2, 2, 2),
                          (4, 7, 7), 0.5),
}  # fmt: skip


class PVResNet(nn.Module):
    """Stem -> layer1 (-> (2,1,1) max-pool) -> layer2-4 -> window average pool -> fc.

    Stage i's output width is `width * 4 * 2**i`, its inner width a quarter of that.
    """

    def __init__(
        self,
        variant: Variant,
        depth: int,
        *,
        n_classes: int = 400,
        n_input_channels: int = 3,
        width: int = 64,
        dropout: float | None = None,
    ):
        super().__init__()
        self.stem = Stem(n_input_channels, width, variant.stem_t, variant.stem_pool)
        c_in = width
        for i, n_blocks in enumerate(STAGE_BLOCKS[depth]):
            c_out = width * 4 * 2**i
            stride = (variant.t_strides[i], variant.s_strides[i], variant.s_strides[i])
            stage = make_stage(
                c_in, c_out // 4, c_out, n_blocks, variant.conv_a_t[i], variant.conv_b, stride
            )
            setattr(self, f"layer{i + 1}", stage)
            c_in = c_out
        self.pool1 = nn.MaxPool3d((2, 1, 1), (2, 1, 1)) if variant.stage1_pool else nn.Identity()
        self.avgpool = WindowAvgPool(variant.head_window)
        self.dropout = nn.Dropout(variant.dropout if dropout is None else dropout)
        self.fc = nn.Linear(c_in, n_classes)
        self.num_features = c_in
        init_pytorchvideo(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [N, num_features] of a normalised clip batch [N, C, T, H, W]."""
        x = self.pool1(self.layer1(self.stem(x)))
        x = self.layer4(self.layer3(self.layer2(x)))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, n_classes] (pytorchvideo's R(2+1)D applies a softmax after them)."""
        return self.fc(self.dropout(self.forward_features(x)))

    def reset_classifier(self, n_classes: int) -> None:
        """Replace the head with a freshly initialised one for `n_classes` (fine-tuning)."""
        self.fc = new_head(self.num_features, n_classes).to(self.fc.weight.device)

    @property
    def classifier_name(self) -> str:
        return "fc"


def new_head(n_features: int, n_classes: int) -> nn.Linear:
    fc = nn.Linear(n_features, n_classes)
    nn.init.normal_(fc.weight, std=0.01)
    nn.init.zeros_(fc.bias)
    return fc


def init_pytorchvideo(model: nn.Module) -> None:
    """cnn3d's init (Kaiming fan-out convs, unit BN), then pytorchvideo's two changes: each
    block's last BN starts at zero (the block starts as the identity) and fc ~ N(0, 0.01).
    A network on the meta device (shapes only: FLOP counts, layout checks) is left as is."""
    if model.fc.weight.is_meta:
        return
    init_weights(model)
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.norm_c.weight)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


def _builder(name: str):
    def build(depth: int, n_classes: int = 400, **options) -> PVResNet:
        check_depth(name, depth, tuple(STAGE_BLOCKS))
        return PVResNet(VARIANTS[name], depth, n_classes=n_classes, **options)

    build.__name__ = f"build_{name}"
    build.__doc__ = f"pytorchvideo's {name} ResNet; options: n_input_channels, width, dropout."
    return build


build_slow = _builder("slow")
build_c2d = _builder("c2d")
build_i3d_r = _builder("i3d_r")
build_csn = _builder("csn")
build_r2plus1d_r = _builder("r2plus1d_r")
