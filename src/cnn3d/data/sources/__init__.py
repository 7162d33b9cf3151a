"""Where frames come from: JPEG frame folders, the original HDF5 layout, encoded video files,
and optical flow in the original's HDF5 or TSN/denseflow folders.

Every source is a `FrameSource`: it reads a clip as a uint8 tensor [T, C, H, W] (RGB, or flow
x/y) from 0-based frame positions. How those positions map onto the storage is stated per
source: frame folders hold `image_00001.jpg` for position 0 (1-based file names); HDF5 element
i is position i (0-based); video files count decoded frames in presentation order from 0.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import VideoReadError
from ...files import VIDEO_SUFFIXES
from .base import FrameSource, open_hdf5
from .flow import FlowFolderSource, FlowHDF5Source, is_flow_folder, is_flow_hdf5
from .frames import FrameFolderSource, HDF5Source
from .video import VideoFileSource, upright

__all__ = [
    "FlowFolderSource",
    "FlowHDF5Source",
    "FrameFolderSource",
    "FrameSource",
    "HDF5Source",
    "VideoFileSource",
    "VideoReadError",
    "open_hdf5",
    "open_source",
    "probe",
    "upright",
]


def open_source(path, min_short_side: int | None = None) -> FrameSource:
    """The source for a frame folder, an `.hdf5`/`.h5` file or a video file; flow folders and
    flow HDF5 files give two-channel clips."""
    path = Path(path)
    if path.is_dir():
        if is_flow_folder(path):
            return FlowFolderSource(path)
        return FrameFolderSource(path, min_short_side)
    if path.suffix.lower() in (".hdf5", ".h5"):
        if is_flow_hdf5(path):
            return FlowHDF5Source(path)
        return HDF5Source(path, min_short_side)
    if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        return VideoFileSource(path, min_short_side)
    raise VideoReadError(path, "no such file or frame folder")


def probe(path: str | os.PathLike) -> tuple[int, float | None]:
    """(frame count, frames per second or None) of a video file, frame folder or HDF5 file.
    Video files: one pass over the packets, no decoding."""
    source = open_source(path)
    return source.n_frames, source.fps
