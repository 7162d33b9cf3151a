"""C3D (Tran et al. 2015): eight 3x3x3 convolutions and five max-pools, then fc6, fc7, fc8.

The layer names and shapes are those of the Sports-1M weights every port carries (Caffe's
`conv1a`... read as `conv1, conv2, conv3a ... conv5b, fc6, fc7, fc8`). Each convolution and
fc6/fc7 ends in its ReLU, as Caffe's in-place ReLU leaves the blobs that feature extraction
reads (`fc6-1` is post-ReLU). fc6 reads a fixed 512x1x4x4 map, so the network takes 16x112x112
clips only (pool5 pads height and width by one to reach 4x4 from 7x7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .conv import Conv3d

FEATURE_LAYERS = ("fc6", "fc7")
# (name, input channels, output channels, max-pool after it: kernel = stride, padding)
CONVS = (
    ("conv1", 3, 64, ((1, 2, 2), 0)),
    ("conv2", 64, 128, ((2, 2, 2), 0)),
    ("conv3a", 128, 256, None),
    ("conv3b", 256, 256, ((2, 2, 2), 0)),
    ("conv4a", 256, 512, None),
    ("conv4b", 512, 512, ((2, 2, 2), 0)),
    ("conv5a", 512, 512, None),
    ("conv5b", 512, 512, ((2, 2, 2), (0, 1, 1))),
)


class ConvReLU(Conv3d):
    """3x3x3 convolution with bias, then ReLU (its output is Caffe's blob of the same name)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class LinearReLU(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class HeadView(nn.Module):
    """The layers after the feature point as one module (what `classifier_name` names), holding
    its network's own layers without registering them, so the weights keep the flat names
    (`fc7`, `fc8`) whichever feature point is chosen."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        object.__setattr__(self, "layers", layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class C3D(nn.Module):
    """`forward_features`: the post-ReLU fc6 (4096, the UCF-Crime release's feature) or, with
    `feature_layer="fc7"`, the post-ReLU fc7; `head` maps it to the logits (dropout, [fc7,
    dropout,] fc8). `features --layer` takes conv3b...conv5b (pooled) or fc6/fc7."""

    def __init__(self, n_classes: int = 487, n_input_channels: int = 3, feature_layer="fc6"):
        super().__init__()
        if feature_layer not in FEATURE_LAYERS:
            raise UsageError(f"c3d: feature_layer must be fc6 or fc7, not {feature_layer!r}")
        self.feature_layer = feature_layer
        for name, c_in, c_out, pool in CONVS:
            setattr(self, name, ConvReLU(n_input_channels if name == "conv1" else c_in, c_out))
            if pool is not None:
                size, padding = pool
                setattr(self, "pool" + name[4], nn.MaxPool3d(size, size, padding))
        self.avgpool = nn.Flatten(1)  # named for `--spatial`, which takes its input: pool5's map
        self.fc6 = LinearReLU(8192, 4096)
        self.fc7 = LinearReLU(4096, 4096)
        self.fc8 = nn.Linear(4096, n_classes)
        self.dropout = nn.Dropout(0.5)
        self.num_features = 4096
        self.feature_points = ["conv3b", "conv4b", "conv5b", "fc6", "fc7"]
        self._make_head()
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def _make_head(self) -> None:
        after = (self.fc7, self.dropout) if self.feature_layer == "fc6" else ()
        self.head = HeadView(self.dropout, *after, self.fc8)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Post-ReLU fc6 (or fc7) [N, 4096] of a normalised clip batch [N, 3, 16, 112, 112]."""
        for name, *_, pool in CONVS:
            x = getattr(self, name)(x)
            if pool is not None:
                x = getattr(self, "pool" + name[4])(x)
        x = self.avgpool(x)
        if x.shape[1] != self.fc6.in_features:
            raise UsageError(
                "C3D takes 16x112x112 clips (its fc6 reads a 512x1x4x4 map); this clip gives "
                f"{x.shape[1]} values after pool5"
            )
        x = self.fc6(x)
        if self.feature_layer == "fc7":
            x = self.fc7(self.dropout(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, n_classes] (the reference ends in a softmax; cnn3d returns logits)."""
        return self.head(self.forward_features(x))

    def reset_classifier(self, n_classes: int) -> None:
        self.fc8 = nn.Linear(4096, n_classes).to(self.fc8.weight.device)
        self._make_head()

    @property
    def classifier_name(self) -> str:
        return "head"


def build_c3d(depth: int = 8, n_classes: int = 487, **options) -> C3D:
    """C3D with its 8 convolutional layers (the depth names them; 11 with fc6-fc8)."""
    if depth != 8:
        raise UsageError(f"c3d has one depth, 8 (its convolutional layers), not {depth}")
    return C3D(n_classes, **options)
