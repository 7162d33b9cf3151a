"""I3D ResNet-50 of facebookresearch/video-nonlocal-net (Wang et al., CVPR 2018), as
Tushar-N/pytorch-resnet3d ports its Caffe2 weights (`i3d_r50_kinetics.pth`,
`i3d_r50_nl_kinetics.pth`): the network behind the "I3D" ten-crop features of UCF-Crime and
ShanghaiTech that RTFM, MGFN and PEL4VAD use.

A torchvision-style ResNet-50 whose kernels are inflated unevenly: a 5x7x7 stem with stride 2 in
time, a max-pool 2x3x3 (stride 2, no padding), one more temporal max-pool (2x1x1) after layer1,
and bottlenecks whose first conv is 3x1x1 or 1x1x1 (alternating, per a fixed table) and whose
second is 1x3x3. The non-local variant adds an embedded-Gaussian non-local block after every
other block of layer2 and layer3.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from .blocks import Bottleneck, init_weights, stem_conv
from .conv import Conv3d

LAYERS = (3, 4, 6, 3)
PLANES = (64, 128, 256, 512)
# per stage, per block: whether the bottleneck's first conv is 3x1x1 (1) or 1x1x1 (0)
TEMPORAL = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
NONLOCAL_STAGES = (2, 3)  # the non-local variant: blocks 1, 3, 5 of these stages


class NonLocal(nn.Module):
    """Embedded-Gaussian non-local block: softmax(theta(x)^T phi(x') / sqrt(d)) over g(x'), where
    x' is x max-pooled 1x2x2; a 1x1x1 conv and BatchNorm map it back, added to x."""

    def __init__(self, channels: int):
        super().__init__()
        inner = channels // 2
        self.theta = Conv3d(channels, inner, 1)
        self.phi = Conv3d(channels, inner, 1)
        self.g = Conv3d(channels, inner, 1)
        self.maxpool = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.out = Conv3d(inner, channels, 1)
        self.bn = nn.BatchNorm3d(channels)
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.maxpool(x)
        theta = self.theta(x).flatten(2)  # N, d, THW
        phi, g = self.phi(pooled).flatten(2), self.g(pooled).flatten(2)  # N, d, THW/4
        attention = torch.softmax(theta.transpose(1, 2) @ phi * self.inner**-0.5, dim=-1)
        y = (g @ attention.transpose(1, 2)).view(x.shape[0], self.inner, *x.shape[2:])
        return x + self.bn(self.out(y))


class InflatedBottleneck(Bottleneck):
    """The shared `Bottleneck` with a (3 or 1)x1x1 first conv and a 1x3x3 second conv (stride
    (1, s, s)), optionally followed by a non-local block (`nl`)."""

    def __init__(self, in_planes, planes, stride, downsample, temporal: bool, nonlocal_: bool):
        super().__init__(in_planes, planes, stride, downsample)
        t = 3 if temporal else 1
        self.conv1 = Conv3d(in_planes, planes, (t, 1, 1), padding=(t // 2, 0, 0), bias=False)
        self.conv2 = Conv3d(
            planes, planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
        )
        self.nl = NonLocal(planes * 4) if nonlocal_ else None

    def forward(self, x):
        out = super().forward(x)
        return out if self.nl is None else self.nl(out)


class I3DResNetNL(nn.Module):
    """conv1 (5x7x7, stride 2) -> bn1 -> ReLU -> maxpool1 (2x3x3, stride 2) -> layer1 ->
    maxpool2 (2x1x1, stride (2, 1, 1)) -> layer2-4 -> avgpool -> fc (dropout 0.5 before it in
    training). A 16-frame clip leaves 2 frames at layer4. Features: the 2048 average of layer4's
    map (what GowthamGottimukkala/I3D_Feature_Extraction_resnet saves)."""

    def __init__(
        self,
        *,
        n_classes: int = 400,
        n_input_channels: int = 3,
        nonlocal_blocks: bool = False,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.conv1 = stem_conv(n_input_channels, 64, 5, 2)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool1 = nn.MaxPool3d((2, 3, 3), stride=2)
        self.maxpool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        in_planes = 64
        for index, (n_blocks, planes) in enumerate(zip(LAYERS, PLANES, strict=True)):
            stride = 1 if index == 0 else 2
            blocks = []
            for b in range(n_blocks):
                downsample = None
                if b == 0:  # every stage's first block changes the width
                    downsample = nn.Sequential(
                        Conv3d(in_planes, planes * 4, 1, stride=(1, stride, stride), bias=False),
                        nn.BatchNorm3d(planes * 4),
                    )
                nonlocal_ = nonlocal_blocks and index + 1 in NONLOCAL_STAGES and b % 2 == 1
                blocks.append(
                    InflatedBottleneck(
                        in_planes,
                        planes,
                        stride if b == 0 else 1,
                        downsample,
                        bool(TEMPORAL[index][b]),
                        nonlocal_,
                    )
                )
                in_planes = planes * 4
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, n_classes)
        self.num_features = in_planes
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [N, 2048] of a normalised clip batch [N, C, T, H, W] (T >= 8)."""
        x = self.maxpool1(self.relu(self.bn1(self.conv1(x))))
        x = self.maxpool2(self.layer1(x))
        x = self.layer4(self.layer3(self.layer2(x)))
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


def build_i3d_nl(
    depth: int,
    n_classes: int = 400,
    n_input_channels: int = 3,
    nonlocal_blocks: bool = False,
    dropout: float = 0.5,
) -> I3DResNetNL:
    """The I3D ResNet-50 (depth 50 only); `nonlocal_blocks`: the non-local variant."""
    if depth != 50:
        raise UsageError(f"i3d_nl has no depth {depth}; choose 50")
    return I3DResNetNL(
        n_classes=n_classes,
        n_input_channels=n_input_channels,
        nonlocal_blocks=nonlocal_blocks,
        dropout=dropout,
    )
