"""Spatial transforms on whole clips.

A clip is a uint8 tensor [T, C, H, W]; every random choice is drawn once per clip and applied to
all frames at once as batched tensor ops (no per-frame PIL). The transforms hand over uint8
[C, T, H, W] (`channels_first`): a quarter of the bytes of float through the workers' shared
memory and the copy to the device, where `network_input` converts and normalises whole batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from ..errors import UsageError

# Short-side fractions of the multi-scale crops: 1, 2^-1/4, 2^-1/2, 2^-3/4, 1/2.
MULTISCALE = tuple(2 ** (-i / 4) for i in range(5))
CORNERS = ("c", "tl", "tr", "bl", "br")


def flip_flow(clip: torch.Tensor) -> torch.Tensor:
    """A flow clip [T, 2, H, W] mirrored left-right: positions mirrored and the x displacement
    negated (255 - x in the 8-bit encoding)."""
    out = clip.flip(-1)
    out[:, 0] = 255 - out[:, 0]
    return out


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the shorter side is `size` (bilinear, antialiased: PIL's BILINEAR within one
    grey level). The long side is `int(size * long / short)`, truncated, as the original's PIL
    `Scale` and the 2020 code's torchvision `Resize` compute it (640x272 -> 263x112)."""
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    if h <= w:
        new = (size, max(1, int(size * w / h)))
    else:
        new = (max(1, int(size * h / w)), size)
    return TF.resize(clip, list(new), antialias=True)


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    return TF.center_crop(clip, [size, size])


def corner_box(height: int, width: int, side: int, position: str) -> tuple[int, int, int]:
    """(top, left, side) of the multi-scale corner crop's square at `position` (c, tl, tr, bl,
    br), with the original's arithmetic: the centre square is `side // 2` either side of
    `(h // 2, w // 2)`, so an odd side loses one pixel (201 -> 200)."""
    if position == "c":
        half = side // 2
        return height // 2 - half, width // 2 - half, 2 * half
    if position not in CORNERS:
        raise UsageError(f"crop position must be one of {', '.join(CORNERS)}, not {position!r}")
    top = 0 if position[0] == "t" else height - side
    left = 0 if position[1] == "l" else width - side
    return top, left, side


def multiscale_corner_crop(
    clip: torch.Tensor, size: int, rng: np.random.Generator, scales=MULTISCALE, positions=CORNERS
) -> torch.Tensor:
    """A square of side `int(short side * scale)` (a random scale) at the centre or a corner (a
    random position), resized to size x size."""
    h, w = clip.shape[-2:]
    side = int(min(h, w) * scales[rng.integers(len(scales))])
    top, left, side = corner_box(h, w, side, positions[rng.integers(len(positions))])
    return TF.resized_crop(clip, top, left, side, side, [size, size], antialias=True)


def multiscale_random_crop(
    clip: torch.Tensor, size: int, rng: np.random.Generator, scales=MULTISCALE
) -> torch.Tensor:
    """A square of a random scale of the short side at a uniformly random place, resized."""
    h, w = clip.shape[-2:]
    side = int(min(h, w) * scales[rng.integers(len(scales))])
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return TF.resized_crop(clip, top, left, side, side, [size, size], antialias=True)


def random_resized_crop(
    clip: torch.Tensor,
    size: int,
    rng: np.random.Generator,
    scale=(0.25, 1.0),
    ratio=(3 / 4, 4 / 3),
) -> torch.Tensor:
    """torchvision's RandomResizedCrop box (area fraction `scale`, aspect `ratio`), one per clip."""
    h, w = clip.shape[-2:]
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return TF.resized_crop(clip, top, left, ch, cw, [size, size], antialias=True)
    # torchvision's fallback: the central box of the whole frame, clamped to the ratio range
    if w / h < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif w / h > ratio[1]:
        cw, ch = round(h * ratio[1]), h
    else:
        cw, ch = w, h
    top, left = (h - ch) // 2, (w - cw) // 2
    return TF.resized_crop(clip, top, left, ch, cw, [size, size], antialias=True)


def three_crop(clip: torch.Tensor, size: int, view: int) -> torch.Tensor:
    """View 0, 1 or 2 of a clip resized to short side `size`: left/centre/right (landscape) or
    top/centre/bottom (portrait)."""
    h, w = clip.shape[-2:]
    if view == 1:
        return center_crop(clip, size)
    if view not in (0, 2):
        raise ValueError(f"three-crop views are 0, 1 and 2, not {view}")
    if w >= h:
        return TF.crop(clip, (h - size) // 2, 0 if view == 0 else w - size, size, size)
    return TF.crop(clip, 0 if view == 0 else h - size, (w - size) // 2, size, size)


def channels_first(clip: torch.Tensor) -> torch.Tensor:
    """[T, C, H, W] -> [C, T, H, W], the networks' layout (a view: still uint8, no copy)."""
    return clip.permute(1, 0, 2, 3)


TRAIN_CROPS = ("corner", "random", "multiscale_random", "center")


@dataclass(frozen=True)
class TrainTransform:
    """Training: a random crop (`corner` = the 2018 multi-scale corner crop; `random` = the 2020
    RandomResizedCrop; `multiscale_random`; `center`) and a random horizontal flip; uint8 out."""

    size: int = 112
    crop: str = "corner"
    flip: bool = True
    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self):
        if self.crop not in TRAIN_CROPS:
            raise UsageError(
                f"train crop must be one of {', '.join(TRAIN_CROPS)}, not {self.crop!r}"
            )

    @property
    def min_short_side(self) -> int:
        """The smallest short side a source may shrink frames to while decoding: twice the crop
        size, or more where the smallest crop box needs it to keep `size` real pixels."""
        if self.crop == "random":
            needed = math.ceil(self.size / math.sqrt(self.crop_scale[0]))
        elif self.crop == "center":
            needed = self.size
        else:
            needed = math.ceil(self.size / MULTISCALE[-1])
        return max(2 * self.size, needed)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if self.crop == "corner":
            clip = multiscale_corner_crop(clip, self.size, rng)
        elif self.crop == "multiscale_random":
            clip = multiscale_random_crop(clip, self.size, rng)
        elif self.crop == "random":
            clip = random_resized_crop(clip, self.size, rng, self.crop_scale, self.crop_ratio)
        else:
            clip = center_crop(resize_short_side(clip, self.size), self.size)
        if self.flip and rng.random() < 0.5:
            # a flow clip's x displacement changes sign with the mirror image
            clip = flip_flow(clip) if clip.shape[1] == 2 else TF.horizontal_flip(clip)
        return channels_first(clip)


@dataclass(frozen=True)
class EvalTransform:
    """Validation/testing: resize the short side to `size`, then a centre crop (`crop="center"`),
    one of three crops (`crop="three"`, with `view` 0-2), or none (`crop="none"`); uint8 out."""

    size: int = 112
    crop: str = "center"

    @property
    def min_short_side(self) -> None:
        """None: evaluation frames are decoded at full resolution. The resize must start from
        the frame's own size to reproduce the original's geometry and pixels (PIL within one
        grey level); a decoder-side shrink first (swscale, JPEG DCT scaling), even to an exact
        multiple of the final size, moved pixels by up to 29 grey levels on real-looking video."""
        return None

    def __call__(
        self, clip: torch.Tensor, rng: np.random.Generator | None = None, view: int = 1
    ) -> torch.Tensor:
        clip = resize_short_side(clip, self.size)
        if self.crop == "center":
            clip = center_crop(clip, self.size)
        elif self.crop == "three":
            clip = three_crop(clip, self.size, view)
        elif self.crop != "none":
            raise UsageError(f"eval crop must be center, three or none, not {self.crop!r}")
        return channels_first(clip)
