"""What every frame source shares: the `FrameSource` protocol, position checks, JPEG decoding
and opening HDF5 files with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ...errors import VideoReadError


@runtime_checkable
class FrameSource(Protocol):
    """Where a video's frames come from. `read` takes 0-based frame positions (any order,
    repeats allowed) and returns uint8 [T, C, H, W]: C is 3 (RGB) or 2 (flow x, y).

    `min_short_side` (given when the source is made) lets a source shrink large frames while
    decoding, never below that short side; sources that cannot shrink ignore it. `fps` is
    None where the storage has no frame rate (frame folders, HDF5). `close()` releases what a
    read left open (a decoder); reads reopen as needed.
    """

    path: Path
    min_short_side: int | None
    channels: int  # 3 (RGB) or 2 (flow x, y), known without reading a frame

    @property
    def n_frames(self) -> int: ...

    @property
    def fps(self) -> float | None: ...

    def read(self, indices) -> torch.Tensor: ...

    def close(self) -> None: ...


def positions_of(indices) -> np.ndarray:
    """0-based frame positions as a non-empty 1-D int64 array."""
    positions = np.asarray(indices, dtype=np.int64)
    if positions.ndim != 1 or len(positions) == 0:
        raise ValueError("a clip needs a non-empty 1-D list of frame positions")
    return positions


def check_range(path, positions: np.ndarray, n_frames: int) -> None:
    """A named error for positions outside a video of `n_frames`."""
    if positions.min() < 0 or positions.max() >= n_frames:
        raise VideoReadError(
            path, f"frame position {int(positions.max())} asked for, but it has {n_frames} frames"
        )


def decode_jpeg(data: bytes, path, min_short_side: int | None = None) -> np.ndarray:
    """RGB [H, W, 3]; with `min_short_side`, decoded in the DCT domain at the smallest 1/2, 1/4
    or 1/8 scale whose short side stays at least that large."""
    import simplejpeg

    try:
        if min_short_side:
            return simplejpeg.decode_jpeg(
                data, colorspace="RGB", min_height=min_short_side, min_width=min_short_side
            )
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except (ValueError, RuntimeError) as error:
        raise VideoReadError(path, f"corrupt JPEG: {error}") from None


def decode_gray(data: bytes, path) -> np.ndarray:
    """A grayscale JPEG as uint8 [H, W]."""
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(data, colorspace="GRAY")[..., 0]
    except (ValueError, RuntimeError) as error:
        raise VideoReadError(path, f"corrupt JPEG: {error}") from None


def stack_frames(frames: list[np.ndarray], path) -> torch.Tensor:
    """RGB frames [H, W, 3] -> uint8 [T, 3, H, W]; a named error if their sizes differ."""
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoReadError(path, f"frames of different sizes in one clip: {sorted(shapes)}")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def open_hdf5(path: Path, datasets: tuple[str, ...]):
    """An HDF5 file open for reading that holds `datasets`; errors name the file."""
    import h5py

    if not path.is_file():
        raise VideoReadError(path, "no such HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise VideoReadError(path, f"not a readable HDF5 file ({error})") from None
    missing = [d for d in datasets if d not in f]
    if missing:
        f.close()
        raise VideoReadError(path, f"has no dataset {missing[0]!r}")
    return f


class StoredFrames:
    """For sources that keep no frame rate and nothing open between reads (JPEG folders and
    HDF5 files, RGB or flow)."""

    @property
    def fps(self) -> None:
        return None

    def close(self) -> None:
        """Nothing stays open between reads."""


def read_hdf5_frames(path: Path, datasets: tuple[str, ...], positions: np.ndarray):
    """(frame count, unique positions, one array of JPEG blobs per dataset at those positions)
    from an HDF5 file whose `datasets` hold one encoded frame per element; the datasets must be
    of one length, the positions within it."""
    unique = np.unique(positions)  # h5py wants increasing indices
    with open_hdf5(path, datasets) as f:
        n_frames = _one_length(f, path, datasets)
        check_range(path, positions, n_frames)
        blobs = [f[d][unique] for d in datasets]
    return n_frames, unique, blobs


def hdf5_length(path: Path, datasets: tuple[str, ...]) -> int:
    """Frames in an HDF5 file's `datasets` (which must be of one length)."""
    with open_hdf5(path, datasets) as f:
        return _one_length(f, path, datasets)


def _one_length(f, path: Path, datasets: tuple[str, ...]) -> int:
    lengths = {len(f[d]) for d in datasets}
    if len(lengths) != 1:
        raise VideoReadError(path, " but ".join(f"{d} has {len(f[d])} frames" for d in datasets))
    return lengths.pop()
