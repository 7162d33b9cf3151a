"""SlowFast (pytorchvideo's hub `slowfast_r50` / `slowfast_r101`), built from `pv_resnet`'s
stems and stages.

The network takes one clip of T frames, as every cnn3d network does: the fast pathway sees all
of them, the slow pathway `slow_frame_indices(T, alpha)` of them (PySlowFast's and the hub
tutorial's `PackPathway`: `torch.linspace(0, T - 1, T // alpha).long()`). After the stem and
each of the first three stages, a strided (k,1,1) convolution of the fast map (stride alpha in
time, twice the fast width out) is concatenated to the slow map. The head averages each
pathway over its own fixed window, concatenates them (2048 + 256 = 2304 features at width 64,
beta 1/8), and applies fc.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from .pv_resnet import (
    STAGE_BLOCKS,
    Stem,
    WindowAvgPool,
    conv,
    init_pytorchvideo,
    make_stage,
    new_head,
)
from .resnet import check_depth

FUSION_KERNEL = {50: 7, 101: 5}  # the hub's slowfast_fusion_conv_kernel_size (time)


def slow_frame_indices(n_frames: int, alpha: int) -> torch.Tensor:
    """The frames of a T-frame clip the slow pathway takes: T // alpha of them, spread from the
    first to the last (float32 linspace truncated to integers, as PySlowFast picks them)."""
    return torch.linspace(0, n_frames - 1, n_frames // alpha).long()


class FuseFastToSlow(nn.Module):
    """The lateral connection: (k,1,1) conv with stride (alpha,1,1) -> BN -> ReLU."""

    def __init__(self, fast_width: int, kernel_t: int, alpha: int):
        super().__init__()
        self.conv = conv(fast_width, 2 * fast_width, (kernel_t, 1, 1), (alpha, 1, 1))
        self.norm = nn.BatchNorm3d(2 * fast_width)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, fast):
        return self.relu(self.norm(self.conv(fast)))


class Pathway(nn.Module):
    """One pathway's stem and four stages; stage i takes `fused[i]` channels more than the
    previous one gives (the slow pathway receives the lateral connections)."""

    def __init__(self, c_in, width, depth, stem_t, conv_a_t, fused=(0, 0, 0, 0)):
        super().__init__()
        self.stem = Stem(c_in, width, stem_t, pool=True)
        c_in = width
        for i, n_blocks in enumerate(STAGE_BLOCKS[depth]):
            c_out = width * 4 * 2**i
            s = 1 if i == 0 else 2
            stage = make_stage(c_in + fused[i], c_out // 4, c_out, n_blocks, conv_a_t[i], "2d",
                               (1, s, s))  # fmt: skip
            setattr(self, f"layer{i + 1}", stage)
            c_in = c_out
        self.num_features = c_in


class SlowFast(nn.Module):
    """SlowFast-R50/101 on one [N, C, T, H, W] clip; `alpha` the frame-rate ratio, the fast
    pathway `beta_inv` times narrower. Head windows: (8, 7, 7) on the slow map and (32, 7, 7)
    on the fast one, the hub's (one window each at the native 32-frame clip)."""

    def __init__(
        self,
        depth: int,
        *,
        n_classes: int = 400,
        n_input_channels: int = 3,
        width: int = 64,
        beta_inv: int = 8,
        alpha: int = 4,
        fusion_kernel: int | None = None,
        dropout: float = 0.5,
    ):
        super().__init__()
        check_depth("slowfast", depth, tuple(STAGE_BLOCKS))
        fast_width = width // beta_inv
        fast_widths = [fast_width * m for m in (1, 4, 8, 16)]  # at the four fusions
        kernel = fusion_kernel or FUSION_KERNEL.get(depth, 7)
        self.alpha = alpha
        self.slow = Pathway(n_input_channels, width, depth, 1, ((1,), (1,), (3,), (3,)),
                            [2 * w for w in fast_widths])  # fmt: skip
        self.fast = Pathway(n_input_channels, fast_width, depth, 5, ((3,),) * 4)
        self.fuse = nn.ModuleList(FuseFastToSlow(w, kernel, alpha) for w in fast_widths)
        self.slow_pool = WindowAvgPool((8, 7, 7))
        self.fast_pool = WindowAvgPool((32, 7, 7))
        self.dropout = nn.Dropout(dropout)
        self.num_features = self.slow.num_features + self.fast.num_features
        self.fc = nn.Linear(self.num_features, n_classes)
        self.feature_points = [f"{p}.layer{i}" for p in ("slow", "fast") for i in range(1, 5)]
        init_pytorchvideo(self)

    @property
    def avgpool(self):
        raise UsageError(
            "--spatial: SlowFast's two pathways end in maps of different frame counts; take "
            "pooled features, or one pathway's map with --layer slow.layer4 / fast.layer4"
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [N, slow + fast width] of a normalised clip batch [N, C, T, H, W]."""
        if x.shape[2] % self.alpha:  # the lateral connections would not meet the slow frames
            raise UsageError(
                f"SlowFast takes clips of a multiple of alpha = {self.alpha} frames, not "
                f"{x.shape[2]} (its release: 32)"
            )
        slow = x.index_select(2, slow_frame_indices(x.shape[2], self.alpha).to(x.device))
        slow, fast = self.slow.stem(slow), self.fast.stem(x)
        for i in range(1, 5):
            slow = torch.cat([slow, self.fuse[i - 1](fast)], 1)
            slow = getattr(self.slow, f"layer{i}")(slow)
            fast = getattr(self.fast, f"layer{i}")(fast)
        pooled = torch.cat([self.slow_pool(slow), self.fast_pool(fast)], 1)
        return torch.flatten(pooled, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, n_classes] of a normalised clip batch [N, C, T, H, W]."""
        return self.fc(self.dropout(self.forward_features(x)))

    def reset_classifier(self, n_classes: int) -> None:
        """Replace the head with a freshly initialised one for `n_classes` (fine-tuning)."""
        self.fc = new_head(self.num_features, n_classes).to(self.fc.weight.device)

    @property
    def classifier_name(self) -> str:
        return "fc"


def build_slowfast(depth: int, n_classes: int = 400, **options) -> SlowFast:
    """SlowFast-R50/101 (alpha 4, beta 1/8, 32-frame clips); options: n_input_channels, width,
    beta_inv, alpha, fusion_kernel, dropout."""
    return SlowFast(depth, n_classes=n_classes, **options)
