"""Optical-flow input: two-channel clips (x and y displacement as 8-bit images) from the layouts
users keep flow in.

- The original's HDF5: datasets `video_u` and `video_v`, one grayscale JPEG per frame each,
  0-based (the original's loader built (u, v, v) and kept the first two channels).
- TSN/denseflow folders: `flow_x_00001.jpg` + `flow_y_00001.jpg` (or `x_00001.jpg` +
  `y_00001.jpg`), 1-based.

8-bit values map linearly to a clipped displacement (commonly +-20 px), so 255 - v is the
opposite displacement: a horizontal flip of a flow clip also negates its x channel
(`flip_flow`). Crops and resizes leave the values as they are, as the original's did (a resize
does not rescale displacements). A clip is uint8 [T, 2, H, W], x first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .sources import VideoReadError, _check_range, _positions, open_hdf5

FOLDER_PATTERNS = (("flow_x_", "flow_y_"), ("x_", "y_"))


def _decode_gray(data: bytes, path) -> np.ndarray:
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(data, colorspace="GRAY")[..., 0]
    except (ValueError, RuntimeError) as error:
        raise VideoReadError(path, f"corrupt JPEG: {error}") from None


def _stack(pairs: list[tuple[np.ndarray, np.ndarray]], path) -> torch.Tensor:
    shapes = {u.shape for u, _ in pairs} | {v.shape for _, v in pairs}
    if len(shapes) != 1:
        raise VideoReadError(path, f"flow images of different sizes in one clip: {sorted(shapes)}")
    return torch.from_numpy(np.stack([np.stack([u, v]) for u, v in pairs]))


@dataclass
class FlowHDF5Source:
    """The original's flow HDF5: `video_u` and `video_v`, grayscale JPEG bytes, 0-based."""

    path: Path
    min_short_side: int | None = None  # accepted for the common signature; flow is not shrunk
    _n_frames: int | None = field(default=None, repr=False)

    def _open(self):
        f = open_hdf5(self.path, ("video_u", "video_v"))
        if len(f["video_u"]) != len(f["video_v"]):
            n_u, n_v = len(f["video_u"]), len(f["video_v"])
            f.close()
            raise VideoReadError(self.path, f"video_u has {n_u} frames but video_v has {n_v}")
        return f

    @property
    def n_frames(self) -> int:
        if self._n_frames is None:
            with self._open() as f:
                self._n_frames = len(f["video_u"])
        return self._n_frames

    def read(self, indices) -> torch.Tensor:
        positions = _positions(indices)
        unique = np.unique(positions)
        with self._open() as f:
            self._n_frames = len(f["video_u"])
            _check_range(self.path, positions, self._n_frames)
            us, vs = f["video_u"][unique], f["video_v"][unique]
        frames = {
            int(p): (_decode_gray(bytes(u), self.path), _decode_gray(bytes(v), self.path))
            for p, u, v in zip(unique, us, vs, strict=True)
        }
        return _stack([frames[int(p)] for p in positions], self.path)


@dataclass
class FlowFolderSource:
    """A TSN/denseflow folder: `flow_x_%05d.jpg`/`flow_y_%05d.jpg` (or `x_`/`y_`), 1-based."""

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
        positions = _positions(indices)
        _check_range(self.path, positions, self.n_frames)
        x, y = self._prefixes
        frames = {}
        for p in np.unique(positions):
            pair = []
            for prefix in (x, y):
                name = self.path / f"{prefix}{int(p) + 1:05d}.jpg"
                try:
                    pair.append(_decode_gray(name.read_bytes(), name))
                except FileNotFoundError:
                    raise VideoReadError(name, "missing flow image") from None
            frames[int(p)] = tuple(pair)
        return _stack([frames[int(p)] for p in positions], self.path)


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


def flip_flow(clip: torch.Tensor) -> torch.Tensor:
    """A flow clip [T, 2, H, W] mirrored left-right: positions mirrored and the x displacement
    negated (255 - x in the 8-bit encoding)."""
    out = clip.flip(-1)
    out[:, 0] = 255 - out[:, 0]
    return out


BOUND = 20.0  # pixels of displacement that map to 0 and 255


def to_8bit(displacement: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """Displacements in pixels -> uint8: -bound..bound linearly onto 0..255, clipped."""
    scaled = (np.clip(displacement, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.round(scaled).astype(np.uint8)


def compute_flow(frames: list[np.ndarray], bound: float = BOUND) -> list[tuple[np.ndarray, ...]]:
    """Dense optical flow between consecutive RGB frames with OpenCV's DIS (medium preset):
    `len(frames) - 1` pairs of uint8 (x, y) images, as TSN/denseflow number them (pair i is the
    motion from frame i to frame i + 1)."""
    try:
        import cv2
    except ImportError:
        raise RuntimeError(
            "computing optical flow needs OpenCV: pip install 'cnn3d[flow]' "
            "(opencv-python-headless)"
        ) from None
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    out = []
    for a, b in zip(gray[:-1], gray[1:], strict=True):
        flow = dis.calc(a, b, None)
        out.append((to_8bit(flow[..., 0], bound), to_8bit(flow[..., 1], bound)))
    return out


def check_channels(clips: torch.Tensor, model, where) -> None:
    """A named error where data and model disagree on RGB (3 channels) against flow (2)."""
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    if clips.shape[1] != stem.in_channels:
        kind = {2: "flow (x, y)", 3: "RGB"}
        raise ValueError(
            f"{where}: {kind.get(clips.shape[1], clips.shape[1])} input, but the model takes "
            f"{kind.get(stem.in_channels, stem.in_channels)} ({stem.in_channels} channels): "
            "flow needs a flow model (--input flow) and flow_x_/x_ folders or video_u/video_v "
            "HDF5 files"
        )
