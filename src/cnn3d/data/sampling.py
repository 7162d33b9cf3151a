"""Temporal sampling: which frames a clip takes.

Pure functions of (number of frames, settings, random generator) -> 0-based frame positions
within the video (or annotated segment). A clip of `length` frames with temporal `stride` spans
`(length - 1) * stride + 1` frames. Videos shorter than that are loop-padded: the frames they
have are repeated in order until the clip is full. The same `stride` applies in training,
validation and testing (the original ignored it outside training).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


def span(length: int, stride: int = 1) -> int:
    """Frames covered by a clip of `length` frames taken every `stride` frames."""
    return (length - 1) * stride + 1


def loop_pad(indices: np.ndarray, length: int) -> np.ndarray:
    """Repeat `indices` cyclically until there are `length` of them."""
    if len(indices) == 0:
        raise ValueError("cannot loop-pad an empty clip (the video has no frames)")
    return np.resize(np.asarray(indices, dtype=np.int64), length)


def clip_at(start: int, n_frames: int, length: int, stride: int = 1) -> np.ndarray:
    """The clip starting at `start`, loop-padded with its own frames where the video ends."""
    if n_frames <= 0:
        raise ValueError("the video has no frames")
    indices = start + stride * np.arange(length, dtype=np.int64)
    return loop_pad(indices[indices < n_frames], length)


def _check(n_frames: int, length: int, stride: int) -> None:
    if n_frames <= 0:
        raise ValueError("the video has no frames")
    if length <= 0 or stride <= 0:
        raise ValueError(f"clip length and stride must be positive (got {length}, {stride})")


def random_clip(n_frames: int, length: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """A clip at a start drawn uniformly from every valid start (the last one included)."""
    _check(n_frames, length, stride)
    last_start = max(0, n_frames - span(length, stride))
    return clip_at(int(rng.integers(0, last_start + 1)), n_frames, length, stride)


def center_clip(n_frames: int, length: int, stride: int = 1) -> np.ndarray:
    _check(n_frames, length, stride)
    return clip_at(max(0, (n_frames - span(length, stride)) // 2), n_frames, length, stride)


def even_clips(n_frames: int, length: int, n_clips: int, stride: int = 1) -> list[np.ndarray]:
    """`n_clips` clips with evenly spaced starts, the first at frame 0 and the last ending on the
    last frame; `n_clips == 1` gives the centre clip. Always exactly `n_clips` clips (a short
    video repeats the same loop-padded clip)."""
    _check(n_frames, length, stride)
    if n_clips <= 0:
        raise ValueError(f"n_clips must be positive (got {n_clips})")
    if n_clips == 1:
        return [center_clip(n_frames, length, stride)]
    last_start = max(0, n_frames - span(length, stride))
    starts = np.floor(np.linspace(0, last_start, n_clips) + 0.5).astype(np.int64)
    return [clip_at(int(s), n_frames, length, stride) for s in starts]


TAILS = ("pad", "drop", "complete")


def sliding_clips(
    n_frames: int,
    length: int,
    window_stride: int | None = None,
    stride: int = 1,
    tail: str = "pad",
) -> list[np.ndarray]:
    """Windows starting at frame 0 and every `window_stride` frames after it (default: one clip
    span, no overlap).

    `tail="pad"`: windows until every frame is covered; the first window that runs past the
    end is loop-padded and is the last one. `tail="drop"`: the sister tool's windows: only
    windows that end before the last frame (its `range(1, n - 16 + 1, 16)`, so a window that
    would end exactly on the last frame is dropped too); a video too short for any still gets
    one loop-padded window. `tail="complete"`: every window that fits, the one ending on the
    last frame included: `(n - span) // step + 1` windows (Finspire13's I3D extractor, whose
    features ActionFormer and CMCS released); a video too short for any gets one loop-padded
    window, as with drop."""
    _check(n_frames, length, stride)
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {', '.join(TAILS)}, not {tail!r}")
    extent = span(length, stride)
    step = window_stride or extent
    if tail in ("drop", "complete"):
        starts = range(0, n_frames - extent + (tail == "complete"), step)
        return [clip_at(s, n_frames, length, stride) for s in starts] or [
            clip_at(0, n_frames, length, stride)
        ]
    clips = []
    for start in range(0, n_frames, step):
        clips.append(clip_at(start, n_frames, length, stride))
        if start + extent >= n_frames:
            break
    return clips


def resampled_length(n_frames: int, source_fps: float, target_fps: float) -> int:
    """Frames of a video of `n_frames` at `source_fps` resampled to `target_fps`: frame i of the
    resampled stream is shown at i / target_fps, and exists while that is before the end."""
    if source_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive (source {source_fps}, target {target_fps})")
    return max(1, math.ceil(n_frames * target_fps / source_fps - 1e-9))


def resampled_positions(indices: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Source frame positions of resampled frames `indices`: the source frame being shown at
    time i / target_fps (source frame k is shown from k / source_fps to (k + 1) / source_fps)."""
    indices = np.asarray(indices, dtype=np.int64)
    return np.floor(indices * source_fps / target_fps + 1e-9).astype(np.int64)


@functools.lru_cache(maxsize=4096)
def _window_starts(
    length_in_stream: int,
    clip_length: int,
    stride: int,
    n_clips: int | None,
    window_stride: int | None,
    tail: str,
) -> tuple[int, ...]:
    # a dataset's videos have few distinct lengths: each is planned once
    if n_clips is not None:
        clips = even_clips(length_in_stream, clip_length, n_clips, stride)
        return tuple(int(c[0]) for c in clips)
    clips = sliding_clips(length_in_stream, clip_length, window_stride, stride, tail)
    return tuple(sorted({int(c[0]) for c in clips}))


@dataclass(frozen=True)
class ClipPlan:
    """Every clip of one video at evaluation time, in one place: the stream the windows are cut
    from (the video's own frames, or the video resampled to `stream_fps`), where each window
    starts in it, which source frames it reads, and when it is shown.

    Frame positions are 0-based; `segment` gives 1-based inclusive frame numbers of the stream
    (the sister tool's segments); `time` gives [start, end) in seconds (stream frame i is shown
    from (i - 1) / fps to i / fps).
    """

    n_frames: int  # of the source (or annotated segment)
    source_fps: float | None  # None: the source has no frame rate (frame folders, HDF5)
    stream_fps: float | None  # the rate windows count in: `target_fps`, else the source's
    stream_length: int
    starts: tuple[int, ...]  # 0-based window starts in the stream
    clip_length: int
    stride: int
    resampled: bool

    def positions(self, start: int) -> np.ndarray:
        """0-based source frame positions of the window starting at `start` (in the stream)."""
        clip = clip_at(start, self.stream_length, self.clip_length, self.stride)
        if self.resampled:
            return resampled_positions(clip, self.source_fps, self.stream_fps)
        return clip

    def segment(self, start: int) -> tuple[int, int]:
        """1-based first and last stream frame of the window starting at `start`."""
        return start + 1, min(start + span(self.clip_length, self.stride), self.stream_length)

    def time(self, start: int) -> list[float] | None:
        """[start, end) in seconds of the window; None without a frame rate."""
        if not self.stream_fps:
            return None
        first, last = self.segment(start)
        return [(first - 1) / self.stream_fps, last / self.stream_fps]

    @property
    def duration_s(self) -> float | None:
        return self.n_frames / self.source_fps if self.source_fps else None


def plan_clips(
    n_frames: int,
    clip_length: int,
    stride: int = 1,
    *,
    n_clips: int | None = None,
    window_stride: int | None = None,
    tail: str = "pad",
    source_fps: float | None = None,
    target_fps: float | None = None,
) -> ClipPlan:
    """The clips of a video of `n_frames`: `n_clips` evenly spaced ones (`even_clips`), else
    every sliding window (`sliding_clips`: `window_stride`, `tail`). With `target_fps`, the
    windows are cut from the video resampled to that rate (needs `source_fps`)."""
    resampled = target_fps is not None
    if resampled and not source_fps:
        raise ValueError("resampling to a frame rate needs the source's frame rate")
    length = resampled_length(n_frames, source_fps, target_fps) if resampled else n_frames
    starts = _window_starts(length, clip_length, stride, n_clips, window_stride, tail)
    return ClipPlan(
        n_frames=n_frames,
        source_fps=source_fps,
        stream_fps=target_fps if resampled else source_fps,
        stream_length=length,
        starts=starts,
        clip_length=clip_length,
        stride=stride,
        resampled=resampled,
    )
