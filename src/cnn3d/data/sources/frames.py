"""Frame folders (`image_%05d.jpg`, or mmaction/TSN's `img_%05d.jpg`, 1-based) and the original
HDF5 layout (dataset `video` of JPEG bytes, 0-based)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import VideoReadError
from ...files import FRAME_PREFIXES
from .base import (
    StoredFrames,
    decode_jpeg,
    hdf5_length,
    positions_of,
    read_hdf5_frames,
    stack_frames,
)


@dataclass
class FrameFolderSource(StoredFrames):
    """A folder of `image_%05d.jpg` files (or mmaction/TSN's `img_%05d.jpg`), 1-based: position i
    is `image_{i+1:05d}.jpg`.

    Decodes with libjpeg-turbo (simplejpeg); with `min_short_side` it decodes in the DCT domain at
    the smallest 1/2, 1/4 or 1/8 scale whose short side stays at least that large.
    """

    channels = 3  # RGB
    path: Path
    min_short_side: int | None = None
    _n_frames: int | None = field(default=None, repr=False)
    _prefix: str = field(default=FRAME_PREFIXES[0], repr=False)

    @property
    def n_frames(self) -> int:
        if self._n_frames is None:
            if not self.path.is_dir():
                raise VideoReadError(self.path, "no such frame folder")
            listed = os.listdir(self.path)
            for prefix in FRAME_PREFIXES:
                numbers = [
                    n[len(prefix) : -4]
                    for n in listed
                    if n.startswith(prefix) and n.endswith(".jpg")
                ]
                numbers = [int(k) for k in numbers if k.isdigit()]
                if numbers:
                    break
            else:
                raise VideoReadError(
                    self.path, "the frame folder holds no image_*.jpg (or img_*.jpg) files"
                )
            # the largest index, as the original's n_frames files did; gaps fail loudly on read
            self._prefix, self._n_frames = prefix, max(numbers)
        return self._n_frames

    def read(self, indices) -> torch.Tensor:
        positions = positions_of(indices)
        self.n_frames  # noqa: B018 (finds the folder's frame names)
        frames = {}
        for p in np.unique(positions):
            name = self.path / f"{self._prefix}{int(p) + 1:05d}.jpg"
            try:
                data = name.read_bytes()
            except FileNotFoundError:
                raise VideoReadError(name, "missing frame file") from None
            frames[int(p)] = decode_jpeg(data, name, self.min_short_side)
        return stack_frames([frames[int(p)] for p in positions], self.path)


@dataclass
class HDF5Source(StoredFrames):
    """The original HDF5 layout: dataset `video` of JPEG bytes (vlen uint8), 0-based."""

    channels = 3  # RGB
    path: Path
    min_short_side: int | None = None
    dataset: str = "video"
    _n_frames: int | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        if self._n_frames is None:
            self._n_frames = hdf5_length(self.path, (self.dataset,))
        return self._n_frames

    def read(self, indices) -> torch.Tensor:
        positions = positions_of(indices)
        self._n_frames, unique, (blobs,) = read_hdf5_frames(self.path, (self.dataset,), positions)
        frames = {
            int(p): decode_jpeg(bytes(b), self.path, self.min_short_side)
            for p, b in zip(unique, blobs, strict=True)
        }
        return stack_frames([frames[int(p)] for p in positions], self.path)
