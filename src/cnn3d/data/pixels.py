"""Resizing and cropping uint8 frames [..., C, H, W] with torchvision's v2 arithmetic, without
importing torchvision (its import was 1.5 s of the 3.8 s every cnn3d process spent starting).

`resize` is bilinear and antialiased, as torchvision's `resize(antialias=True)`: on a CPU with
AVX2 or AVX-512 (or an ARM64 one) its native uint8 kernel (`interpolate` on the uint8 tensor),
elsewhere in float32, rounded back to uint8. `crop` and `center_crop` pad with zeros where the
box leaves the frame, and place the centre box at `round((H - h) / 2)`, as torchvision does.
tests/test_transforms.py checks each against torchvision's own function.
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F


def _native_uint8(clip: torch.Tensor) -> bool:
    if clip.dtype != torch.uint8 or clip.device.type != "cpu":
        return False
    capability = torch.backends.cpu.get_cpu_capability()
    return capability in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")


def resize(clip: torch.Tensor, size: list[int] | tuple[int, int]) -> torch.Tensor:
    """Every frame to `size` (height, width): bilinear, antialiased where it shrinks."""
    height, width = size
    shape = clip.shape
    if tuple(shape[-2:]) == (height, width) or clip.numel() == 0:
        return clip
    x = clip.reshape(-1, *shape[-3:])
    cast = x.dtype not in (torch.float32, torch.float64) and not _native_uint8(x)
    if cast:
        x = x.to(torch.float32)
    x = F.interpolate(x, size=[height, width], mode="bilinear", align_corners=False, antialias=True)
    if cast:
        x = x.round_().to(clip.dtype)
    return x.reshape(*shape[:-2], height, width)


def crop(clip: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The box `height` x `width` at (`top`, `left`); zeros where it leaves the frame."""
    h, w = clip.shape[-2:]
    right, bottom = left + width, top + height
    if left < 0 or top < 0 or right > w or bottom > h:
        inside = clip[..., max(top, 0) : bottom, max(left, 0) : right]
        padding = [
            max(min(right, 0) - left, 0),
            max(right - max(w, left), 0),
            max(min(bottom, 0) - top, 0),
            max(bottom - max(h, top), 0),
        ]
        return F.pad(inside, padding, mode="constant", value=0)
    return clip[..., top:bottom, left:right]


def center_crop(clip: torch.Tensor, size: list[int] | tuple[int, int]) -> torch.Tensor:
    """The centred `size` (height, width) box, the frame zero-padded first where it is smaller."""
    height, width = size
    h, w = clip.shape[-2:]
    if height > h or width > w:
        pad_w, pad_h = max(width - w, 0), max(height - h, 0)
        # left, right, top, bottom: the odd pixel goes right and bottom
        clip = F.pad(clip, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2], value=0)
        h, w = clip.shape[-2:]
    top, left = int(round((h - height) / 2.0)), int(round((w - width) / 2.0))
    return clip[..., top : top + height, left : left + width]


def resized_crop(
    clip: torch.Tensor, top: int, left: int, height: int, width: int, size: list[int]
) -> torch.Tensor:
    """`crop`, then `resize` to `size`."""
    return resize(crop(clip, top, left, height, width), size)


def horizontal_flip(clip: torch.Tensor) -> torch.Tensor:
    return clip.flip(-1)
