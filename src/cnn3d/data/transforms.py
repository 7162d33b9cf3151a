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

from ..errors import UsageError
from . import pixels

# Short-side fractions of the multi-scale crops: 1, 2^-1/4, 2^-1/2, 2^-3/4, 1/2.
MULTISCALE = tuple(2 ** (-i / 4) for i in range(5))
CORNERS = ("c", "tl", "tr", "bl", "br")


def flip_flow(clip: torch.Tensor) -> torch.Tensor:
    """A flow clip [T, 2, H, W] mirrored left-right: positions mirrored and the x displacement
    negated (255 - x in the 8-bit encoding)."""
    out = clip.flip(-1)
    out[:, 0] = 255 - out[:, 0]
    return out


RESIZERS = ("torch", "pil")


def resize_short_side(clip: torch.Tensor, size: int, resizer: str = "torch") -> torch.Tensor:
    """Resize so that the shorter side is `size` (bilinear, antialiased: PIL's BILINEAR within one
    grey level). The long side is `int(size * long / short)`, truncated, as the original's PIL
    `Scale` and the 2020 code's torchvision `Resize` compute it (640x272 -> 263x112).
    `resizer="pil"`: PIL's BILINEAR itself, frame by frame (`pil_resize`)."""
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    if h <= w:
        new = (size, max(1, int(size * w / h)))
    else:
        new = (max(1, int(size * h / w)), size)
    return resize_to(clip, new, resizer)


def resize_frames(
    clip: torch.Tensor, resize: int | tuple[int, int], resizer: str = "torch"
) -> torch.Tensor:
    """`resize_short_side` for an int; for (width, height), every frame stretched to exactly
    that size (bilinear, antialiased where it shrinks), whatever its aspect ratio."""
    if isinstance(resize, int):
        return resize_short_side(clip, resize, resizer)
    width, height = resize
    if tuple(clip.shape[-2:]) == (height, width):
        return clip
    return resize_to(clip, (height, width), resizer)


def resize_to(clip: torch.Tensor, size: tuple[int, int], resizer: str) -> torch.Tensor:
    """Every frame to `size` (height, width) by `resizer` (`RESIZERS`)."""
    return pil_resize(clip, size) if resizer == "pil" else pixels.resize(clip, list(size))


def pil_resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A uint8 clip [T, C, H, W] resized to `size` (h, w) by PIL's BILINEAR (`Image.resize`):
    the pixels of the PIL-based extractors, not one grey level apart. RGB frames go through as
    RGB images, other channel counts (flow) one greyscale image per channel (PIL resamples
    each channel alike)."""
    from PIL import Image

    def resized(array: np.ndarray) -> np.ndarray:
        image = Image.fromarray(np.ascontiguousarray(array))
        return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR))

    frames = clip.permute(0, 2, 3, 1).numpy()  # [T, H, W, C]
    out = np.empty((len(frames), *size, frames.shape[-1]), np.uint8)
    for t, frame in enumerate(frames):
        if frame.shape[-1] == 3:
            out[t] = resized(frame)
        else:
            for c in range(frame.shape[-1]):
                out[t, ..., c] = resized(frame[..., c])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    return pixels.center_crop(clip, [size, size])


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
    return pixels.resized_crop(clip, top, left, side, side, [size, size])


def multiscale_random_crop(
    clip: torch.Tensor, size: int, rng: np.random.Generator, scales=MULTISCALE
) -> torch.Tensor:
    """A square of a random scale of the short side at a uniformly random place, resized."""
    h, w = clip.shape[-2:]
    side = int(min(h, w) * scales[rng.integers(len(scales))])
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return pixels.resized_crop(clip, top, left, side, side, [size, size])


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
            return pixels.resized_crop(clip, top, left, ch, cw, [size, size])
    # torchvision's fallback: the central box of the whole frame, clamped to the ratio range
    if w / h < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif w / h > ratio[1]:
        cw, ch = round(h * ratio[1]), h
    else:
        cw, ch = w, h
    top, left = (h - ch) // 2, (w - cw) // 2
    return pixels.resized_crop(clip, top, left, ch, cw, [size, size])


def three_crop(clip: torch.Tensor, size: int, view: int) -> torch.Tensor:
    """View 0, 1 or 2 of a clip resized to short side `size`: left/centre/right (landscape) or
    top/centre/bottom (portrait)."""
    h, w = clip.shape[-2:]
    if view == 1:
        return center_crop(clip, size)
    if view not in (0, 2):
        raise ValueError(f"three-crop views are 0, 1 and 2, not {view}")
    if w >= h:
        return pixels.crop(clip, (h - size) // 2, 0 if view == 0 else w - size, size, size)
    return pixels.crop(clip, 0 if view == 0 else h - size, (w - size) // 2, size, size)


# Where each of the five crops of a five- or ten-crop sits, in the order of the named convention.
# The mirrored five of a ten-crop are the same five boxes taken from the mirrored frame (both
# torchvision's `ten_crop` and the VAD extractors flip the frame first, then crop it), so
# crop 5 + k is crop k of the mirror image, and the mirror of the box across the vertical axis.
CROP_ORDERS = {
    # the VAD releases (DeepMIL README: 0 the centre, 1-4 the corners, 5-9 mirrored); the order
    # of the corners is not stated there: torchvision's corner order is taken (unverified)
    "center_first": ("c", "tl", "tr", "bl", "br"),
    # torchvision `five_crop`/`ten_crop` (horizontal flip by default): tl, tr, bl, br, centre
    "torchvision": ("tl", "tr", "bl", "br", "c"),
    # `oversample_data` of the ten-crop I3D-ResNet-50 extractors (Finspire13's, Gowtham's)
    "oversample": ("tl", "tr", "c", "bl", "br"),
}
CROP_COUNTS = (1, 3, 5, 10)


def crop_box(height: int, width: int, size: int, position: str) -> tuple[int, int]:
    """(top, left) of a size x size crop at `position` (c, tl, tr, bl, br) of a frame; the
    centre's offsets round half to even, as torchvision's `center_crop` computes them."""
    if position == "c":
        return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    top = 0 if position[0] == "t" else height - size
    left = 0 if position[1] == "l" else width - size
    return top, left


def mirror(clip: torch.Tensor) -> torch.Tensor:
    """Left-right mirror image of an RGB or flow clip [T, C, H, W]."""
    return flip_flow(clip) if clip.shape[1] == 2 else pixels.horizontal_flip(clip)


def multi_crop(clip: torch.Tensor, size: int, crops: int, order: str) -> list[torch.Tensor]:
    """`crops` (3, 5 or 10) size x size crops of a clip [T, C, H, W] whose short side is at
    least `size`: 3 is `three_crop`'s views 0, 1, 2 (along the long side); 5 the centre and
    four corners in `CROP_ORDERS[order]`; 10 those five, then the same five of the mirror
    image. Each crop costs one copy of size x size x T x C bytes."""
    if crops == 3:
        return [three_crop(clip, size, view) for view in range(3)]
    h, w = clip.shape[-2:]
    boxes = [crop_box(h, w, size, p) for p in CROP_ORDERS[order]]
    frames = [clip] if crops == 5 else [clip, mirror(clip)]
    return [pixels.crop(f, top, left, size, size) for f in frames for top, left in boxes]


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
            clip = mirror(clip)  # a flow clip's x displacement changes sign
        return channels_first(clip)


@dataclass(frozen=True)
class EvalTransform:
    """Validation/testing: resize the short side to `resize` (None: to `size`; a (width,
    height) pair stretches every frame to exactly that size, `resize_frames`), then a centre
    crop (`crop="center"`), one of three crops (`crop="three"`, with `view` 0-2), or none
    (`crop="none"`); uint8 [C, T, H, W] out. `crops` 3, 5 or 10 (with `crop="center"`) gives
    every crop of `multi_crop` at once instead, stacked: [crops, C, T, size, size]."""

    size: int = 112
    crop: str = "center"
    resize: int | tuple[int, int] | None = None
    crops: int = 1
    crop_order: str = "center_first"
    resizer: str = "torch"  # `RESIZERS`: torchvision's uint8 kernel, or PIL's (`pil_resize`)

    def __post_init__(self):
        if self.resizer not in RESIZERS:
            raise UsageError(f"--resizer must be torch or pil, not {self.resizer!r}")
        if self.crop not in ("center", "three", "none"):
            raise UsageError(f"eval crop must be center, three or none, not {self.crop!r}")
        if self.crops not in CROP_COUNTS:
            raise UsageError(f"--crops must be 1, 3, 5 or 10, not {self.crops}")
        if self.crop_order not in CROP_ORDERS:
            names = ", ".join(CROP_ORDERS)
            raise UsageError(f"--crop-order must be one of {names}, not {self.crop_order!r}")
        short = min(self.resize) if isinstance(self.resize, tuple) else self.resize
        if short is not None and short < self.size:
            shown = "x".join(map(str, self.resize)) if isinstance(self.resize, tuple) else short
            raise UsageError(
                f"--resize {shown} is smaller than the crop ({self.size} pixels): the "
                "short side must hold the crop"
            )
        if self.crops > 1 and self.crop != "center":
            raise UsageError(f"--crops {self.crops} takes the place of the {self.crop} crop")

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
        clip = resize_frames(clip, self.resize or self.size, self.resizer)
        if self.crops > 1:
            views = multi_crop(clip, self.size, self.crops, self.crop_order)
            return torch.stack([channels_first(v) for v in views])
        if self.crop == "center":
            clip = center_crop(clip, self.size)
        elif self.crop == "three":
            clip = three_crop(clip, self.size, view)
        return channels_first(clip)
