"""Where a loader's uint8 clips become a network's input: on the device, a whole batch at once.

DataLoader workers crop, flip and resize, and hand over uint8 [B, C, T, H, W]: a quarter of the
bytes of float32 through their shared memory, through pinned host memory and over PCIe. Here,
after the copy, the batch takes the memory format, becomes float and is normalised with the
model's preset: `(pixel * value_range / 255 - mean) / std` per channel, three separate
element-wise operations in fp32, so that every element is what the per-clip float path of the
CPU computed, bit for bit. Every path that feeds a network goes through `NetworkInput`: training,
validation, `test`, `classify`, `features`, RGB and two-channel flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import UsageError
from ..normalization import Normalization

__all__ = ["NetworkInput", "normalize"]


def normalize(clips: torch.Tensor, normalization: Normalization) -> torch.Tensor:
    """uint8 clips [..., C, T, H, W] (one clip or a batch) -> float32, normalised per channel
    with the preset cut to C channels (2 for optical flow, as the original does)."""
    scale, mean, std, bgr = constants(normalization, clips.shape[-4], clips.device)
    return apply(clips, scale, mean, std, bgr)


def constants(normalization: Normalization, channels: int, device: torch.device):
    """(scale, mean, std, bgr) of the preset for `channels` channels, mean/std float32
    [C,1,1,1]; bgr: reverse an RGB clip's channels first."""
    norm = normalization.for_channels(channels)
    mean = torch.tensor(norm.mean, device=device).view(-1, 1, 1, 1)
    std = torch.tensor(norm.std, device=device).view(-1, 1, 1, 1)
    bgr = norm.channel_order == "bgr" and channels == 3
    return norm.value_range / 255.0, mean, std, bgr


def apply(
    clips: torch.Tensor, scale: float, mean: torch.Tensor, std: torch.Tensor, bgr: bool = False
):
    if clips.dtype != torch.uint8:
        raise UsageError(f"clips must be uint8 pixels, not {clips.dtype}")
    if bgr:
        clips = clips.flip(-4)
    return (clips.float() * scale - mean) / std


@dataclass(frozen=True)
class NetworkInput:
    """uint8 batches from a loader -> the network's float input on `device` in `memory_format`.
    On CUDA the copy is `non_blocking` (from the pinned memory that `clip_loader` gives there)."""

    normalization: Normalization
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    memory_format: torch.memory_format = torch.contiguous_format
    # (scale, mean, std) per channel count, made on the device once (no copy per batch)
    _constants: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips.to(self.device, non_blocking=True)
        channels = x.shape[-4]
        if channels not in self._constants:
            self._constants[channels] = constants(self.normalization, channels, x.device)
        scale, mean, std, bgr = self._constants[channels]
        if bgr:
            x = x.flip(-4)
        # the layout first, on uint8 (a quarter of the bytes); float ops then keep it
        x = x.contiguous(memory_format=self.memory_format)
        return apply(x, scale, mean, std)
