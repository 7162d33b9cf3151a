"""One optimisation step: what the training loop runs for every batch and `cnn3d benchmark`
times, the same code for both."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..precision import autocast_of


def optimisation_step(
    net, optimizer, scaler, clips: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype | None
) -> torch.Tensor:
    """Forward under autocast of `dtype` (None: fp32), the loss in fp32 whatever the autocast,
    backward (scaled for fp16), and the update; returns (loss, correct clips), still on the
    device (reading them waits for the step)."""
    with autocast_of(clips.device, dtype):
        logits = net(clips)
    loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    correct = (logits.argmax(1) == labels).sum()
    return torch.stack([loss.detach(), correct.float()])
