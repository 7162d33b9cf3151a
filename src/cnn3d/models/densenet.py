"""3D DenseNet-BC (121/169/201/264): growth 32, bottleneck width 4x growth, compression 0.5."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import init_weights, stem_conv
from .conv import Conv3d
from .resnet import check_depth

BLOCK_CONFIGS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}


class DenseLayer(nn.Module):
    def __init__(self, in_features: int, growth_rate: int, bn_size: int):
        super().__init__()
        inner = bn_size * growth_rate
        self.norm1 = nn.BatchNorm3d(in_features)
        self.conv1 = Conv3d(in_features, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm3d(inner)
        self.conv2 = Conv3d(inner, growth_rate, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out), inplace=True))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.norm = nn.BatchNorm3d(in_features)
        self.conv = Conv3d(in_features, out_features, 1, bias=False)

    def forward(self, x):
        x = self.conv(F.relu(self.norm(x), inplace=True))
        # 2x2x2 average pool; a dimension already down to 1 (short clips) is left as it is
        kernel = tuple(min(2, size) for size in x.shape[2:])
        return F.avg_pool3d(x, kernel, kernel)


class DenseNet(nn.Module):
    def __init__(
        self,
        block_config,
        *,
        n_classes: int = 400,
        n_input_channels: int = 3,
        conv1_t_size: int = 7,
        conv1_t_stride: int = 1,
        no_max_pool: bool = False,
        growth_rate: int = 32,
        bn_size: int = 4,
        num_init_features: int = 64,
    ):
        super().__init__()
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", stem_conv(n_input_channels, num_init_features, conv1_t_size, conv1_t_stride)),
            ("norm1", nn.BatchNorm3d(num_init_features)),
            ("relu1", nn.ReLU(inplace=True)),
        ]
        if not no_max_pool:
            layers.append(("pool1", nn.MaxPool3d(3, stride=2, padding=1)))
        n = num_init_features
        for i, n_layers in enumerate(block_config, start=1):
            block = nn.Sequential()
            for j in range(1, n_layers + 1):
                layer = DenseLayer(n + (j - 1) * growth_rate, growth_rate, bn_size)
                block.add_module(f"denselayer{j}", layer)
            layers.append((f"denseblock{i}", block))
            n += n_layers * growth_rate
            if i != len(block_config):
                layers.append((f"transition{i}", Transition(n, n // 2)))
                n //= 2
        layers.append(("norm5", nn.BatchNorm3d(n)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(n, n_classes)
        self.num_features = n
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x), inplace=True)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    def reset_classifier(self, n_classes: int) -> None:
        self.classifier = nn.Linear(self.num_features, n_classes).to(self.classifier.weight.device)

    @property
    def classifier_name(self) -> str:
        return "classifier"


def build_densenet(depth: int, n_classes: int = 400, **options) -> DenseNet:
    check_depth("densenet", depth, tuple(BLOCK_CONFIGS))
    return DenseNet(BLOCK_CONFIGS[depth], n_classes=n_classes, **options)
