"""Optical-flow input: two-channel clips (x and y displacement as 8-bit images) from the layouts users
keep flow in.

- The original's HDF5: datasets `video_u` and `video_v`, one grayscale JPEG per frame each,
  0-based (the original's loader built (u, v, v) and kept the first two channels).
- TSN/denseflow folders: `flow_x_00001.jpg` + `flow_y_00001.jpg` (or `x_00001.jpg` +
  `y_00001.jpg`), 1-based.

8-bit values map linearly to a clipped displacement (commonly +-20 px), so 255 - v is the
opposite displacement: a horizontal flip of a flow clip also negates its x channel
(`transforms.flip_flow`). Crops and resizes leave the values as they are, as the original's did (a resize
does not rescale displacements). A clip is uint8 [T, 2, H, W], x first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import VideoReadError
from .base import (
    StoredFrames,
    check_range,
    decode_gray,
    hdf5_length,
    positions_of,
    read_hdf5_frames,
)

FOLDER_PATTERNS = (("flow_x_", "flow_y_"), ("x_", "y_"))
DATASETS = ("video_u", "video_v")


def stack_flow(pairs: list[tuple[np.ndarray, np.ndarray]], path) -> torch.Tensor:
    shapes = {u.shape for u, _ in pairs} | {v.shape for _, v in pairs}
    if len(shapes) != 1:
        raise VideoReadError(path, f"flow images of different sizes in one clip: {sorted(shapes)}")
    return torch.from_numpy(np.stack([np.stack([u, v]) for u, v in pairs]))


@dataclass
class FlowHDF5Source(StoredFrames):
    """The original's flow HDF5: `video_u` and `video_v`, grayscale JPEG bytes, 0-based."""

    channels = 2  # flow x, y
    path: Path
    min_short_side: int | None = None  # accepted for the common signature; flow is not shrunk
    _n_frames: int | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        if self._n_frames is None:
            self._n_frames = hdf5_length(self.path, DATASETS)
        return self._n_frames

    def read(self, indices) -> torch.Tensor:
        positions = positions_of(indices)
        self._n_frames, unique, (us, vs) = read_hdf5_frames(self.path, DATASETS, positions)
        frames = {
            int(p): (decode_gray(bytes(u), self.path), decode_gray(bytes(v), self.path))
            for p, u, v in zip(unique, us, vs, strict=True)
        }
        return stack_flow([frames[int(p)] for p in positions], self.path)


@dataclass
class FlowFolderSource(StoredFrames):
    """A TSN/denseflow folder: `flow_x_%05d.jpg`/`flow_y_%05d.jpg` (or `x_`/`y_`), 1-based."""

    channels = 2  # flow x, y
    path: Path
    min_short_side: int | None = None
    _prefixes: tuple[str, str] | None = field(default=None, repr=False)
    _n_frames: int | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        if self._n_frames is None:
            if not self.path.is_dir():
                raise VideoReadError(self.path, "no such flow folder")
            names = os.listdir(self.path)
            for x, y in FOLDER_PATTERNS:
                xs = _indices(names, x)
                if xs:
                    ys = _indices(names, y)
                    if max(xs) != max(ys, default=0):
                        raise VideoReadError(
                            self.path, f"{x}* goes to {max(xs)} but {y}* to {max(ys, default=0)}"
                        )
                    self._prefixes, self._n_frames = (x, y), max(xs)
                    break
            else:
                raise VideoReadError(self.path, "holds no flow_x_*.jpg or x_*.jpg files")
        return self._n_frames

    def read(self, indices) -> torch.Tensor:
        positions = positions_of(indices)
        check_range(self.path, positions, self.n_frames)
        x, y = self._prefixes
        frames = {}
        for p in np.unique(positions):
            pair = []
            for prefix in (x, y):
                name = self.path / f"{prefix}{int(p) + 1:05d}.jpg"
                try:
                    pair.append(decode_gray(name.read_bytes(), name))
                except FileNotFoundError:
                    raise VideoReadError(name, "missing flow image") from None
            frames[int(p)] = tuple(pair)
        return stack_flow([frames[int(p)] for p in positions], self.path)


def _indices(names: list[str], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.jpg$")
    return [int(m.group(1)) for m in map(pattern.match, names) if m]


def is_flow_folder(path: Path) -> bool:
    """A folder in one of the flow layouts (its first x image exists)."""
    return any((path / f"{x}00001.jpg").is_file() for x, _ in FOLDER_PATTERNS)


def is_flow_hdf5(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "video_u" in f and "video" not in f
    except OSError:
        return False
