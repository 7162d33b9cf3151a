"""Features of a network beside its logits: the pooled output of the last stage (what
`forward_features` returns), of another stage (`layer`), or a stage's map unpooled (`spatial`),
taken with forward hooks so the networks stay plain."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

STAGE = re.compile(r"(^|\.)(layer\d+|denseblock\d+|transition\d+)$")


def stage_names(model) -> list[str]:
    """The stages `--layer` can take features from: what the network names in its
    `feature_points` (I3D's Mixed_4f, SlowFast's pathways...), else layer1-4 or DenseNet's blocks."""
    named = getattr(model, "feature_points", None)
    if named is not None:
        return list(named)
    return [name for name, _ in model.named_modules() if STAGE.search(name)]


class FeatureExtractor(nn.Module):
    """(features, logits) per clip. Features: the pooled output of the last stage (what
    `forward_features` returns), or of stage `layer`; with `spatial`, that stage's map before
    pooling (clips x C x T' x H' x W')."""

    def __init__(self, model, layer: str | None = None, spatial: bool = False):
        super().__init__()
        self.model = model
        self.layer, self.spatial = layer, spatial
        self._seen: list[torch.Tensor] = []
        self._hook = None
        if layer is not None:
            if layer not in stage_names(model):
                raise UsageError(
                    f"--layer {layer!r} is not a stage of this {model.spec.arch}; choose one of "
                    + ", ".join(stage_names(model))
                )
            self._hook = model.get_submodule(layer).register_forward_hook(
                lambda _m, _i, out: self._seen.append(out)
            )
        elif spatial:  # the last stage's map: what the network's `avgpool` receives
            self._hook = model.avgpool.register_forward_pre_hook(
                lambda _m, i: self._seen.append(i[0])
            )

    def remove_hooks(self) -> None:
        if self._hook is not None:
            self._hook.remove()

    def forward(self, x):
        self._seen.clear()
        features = self.model.forward_features(x)
        logits = getattr(self.model, self.model.classifier_name)(features)
        if self._seen:
            kept = self._seen[-1]
            if self.spatial or kept.dim() == 2:  # a vector already (C3D's fc6, fc7)
                features = kept
            else:
                features = torch.flatten(F.adaptive_avg_pool3d(kept, 1), 1)
        return features, logits
