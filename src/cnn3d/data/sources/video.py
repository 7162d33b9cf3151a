"""Encoded video files (mp4, avi, webm, mkv, ...) decoded with PyAV, frame-exactly."""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import VideoReadError
from .base import check_range, positions_of, stack_frames

# Video files with an open decoder. Before this process forks (DataLoader workers), they are
# closed: a child that inherits a decoder inherits its codec threads' locks but not the threads,
# and hung when it freed the decoder or decoded. They reopen at the next read. The containers are
# also held here (strongly) until closed: a source dropped inside a reference cycle is freed only
# by a later garbage collection, which may run in the child.
_OPEN_DECODERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_OPEN_CONTAINERS: dict[int, object] = {}


def _close_container(container) -> None:
    _OPEN_CONTAINERS.pop(id(container), None)
    container.close()


def _close_open_decoders() -> None:
    for source in list(_OPEN_DECODERS.values()):
        source.close()
    for container in list(_OPEN_CONTAINERS.values()):
        _close_container(container)


os.register_at_fork(before=_close_open_decoders)


# Decoders reorder frames by at most their delay (H.264 allows 16); a timestamp whose rank among
# all timestamps lies further than this from its packet's place in decode order is not a
# presentation order the decoder will follow, so such files are read by counting frames only.
MAX_REORDER = 32


class _Inconsistent(Exception):
    """Decoded frames contradicted the timestamp ranks: count frames from the start instead."""


@dataclass
class VideoFileSource:
    """An encoded video file (mp4, avi, webm, mkv, ...) decoded directly with PyAV, frame-exact.

    Position n is the n-th frame PyAV decodes from the start of the file, whatever the file's
    timestamps say. The first access scans the packets once (no decoding): the frame count, and
    the keyframes that can be seek targets. A keyframe is a seek target when its timestamp is
    unique, all timestamps are present and they rank in an order a decoder can produce (B-frame
    reordering, open GOPs and non-zero starts are fine); its position is then its timestamp's
    rank. After a seek, decoded frames are counted from that anchor and checked against the
    ranks of unique timestamps; frames with repeated or missing timestamps are placed by
    counting. A file whose timestamps cannot be trusted (missing, out of any decodable order, or
    contradicted while decoding) is read by decoding from its start, still frame-exact but slower
    for random clips far into it.

    A read decodes forward from where the previous read stopped when no seek target lies in
    between (so the windows of a video, read in order, decode it once, whatever its keyframe
    interval). The decoder stays open between reads in this process; `close()` releases it.
    Random clips cost the distance to the previous keyframe: re-encode with short keyframe
    intervals (`cnn3d prepare frames --format mp4`) for fast training reads.
    """

    channels = 3  # RGB
    path: Path
    min_short_side: int | None = None
    _n_frames: int | None = field(default=None, repr=False)
    _fps: float | None = field(default=None, repr=False)
    _rank: dict[int, int] | None = field(default=None, repr=False)  # unique pts -> position
    _seek_positions: list[int] | None = field(default=None, repr=False)  # 0 = from the start
    _seek_pts: list[int | None] | None = field(default=None, repr=False)
    _cursor: dict | None = field(default=None, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cursor"] = None  # an open decoder belongs to one process
        return state

    def _open(self):
        import av

        if not self.path.is_file():
            raise VideoReadError(self.path, "no such video file")
        if self.path.stat().st_size == 0:
            raise VideoReadError(self.path, "the file is empty")
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise VideoReadError(self.path, f"not a readable video ({error})") from None
        if not container.streams.video:
            container.close()
            raise VideoReadError(self.path, "has no video stream")
        return container

    def _index(self) -> None:
        """The frame count and the seek targets, from one pass over the packets (no decoding)."""
        import av

        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self._fps = float(rate) if rate else None
            try:
                packets = [
                    (p.pts, p.is_keyframe)
                    for p in container.demux(stream)
                    if p.size and not p.is_discard
                ]
            except av.error.FFmpegError as error:
                raise VideoReadError(self.path, f"cannot read its packets ({error})") from None
        if not packets:
            raise VideoReadError(self.path, "has no video frames")
        self._n_frames = len(packets)
        self._rank, self._seek_positions, self._seek_pts = {}, [0], [None]
        if any(pts is None for pts, _ in packets):
            return
        pts = np.array([p for p, _ in packets], dtype=np.int64)
        ordered = np.sort(pts)
        first = np.searchsorted(ordered, pts, side="left")
        unique = np.searchsorted(ordered, pts, side="right") - first == 1
        if np.abs(first - np.arange(len(pts))).max() > MAX_REORDER:
            return
        self._rank = {int(p): int(r) for p, r in zip(pts[unique], first[unique], strict=True)}
        targets = sorted(
            (int(first[i]), int(pts[i]))
            for i, (_, key) in enumerate(packets)
            if key and unique[i] and first[i] > 0
        )
        self._seek_positions += [position for position, _ in targets]
        self._seek_pts += [p for _, p in targets]

    @property
    def n_frames(self) -> int:
        if self._n_frames is None:
            self._index()
        return self._n_frames

    @property
    def fps(self) -> float | None:
        """The stream's average frame rate (None if the file does not say)."""
        if self._n_frames is None:
            self._index()
        return self._fps

    def close(self) -> None:
        """Release the open decoder, if any (reads reopen as needed)."""
        cursor, self._cursor = self._cursor, None
        _OPEN_DECODERS.pop(id(self), None)
        if cursor is not None and cursor["pid"] == os.getpid():
            cursor["finalizer"]()  # closes the container (once)

    def _target_before(self, position: int) -> int:
        """Index (into the seek targets) of the last target at or before `position`."""
        return max(0, int(np.searchsorted(self._seek_positions, position, side="right")) - 1)

    def _resumable(self, first: int) -> bool:
        """Whether the open cursor reaches `first` no slower than a seek would."""
        cursor = self._cursor
        if cursor is None or cursor["pid"] != os.getpid() or cursor["next"] is None:
            return False
        if first >= cursor["next"]:  # ahead: decode through unless a seek target lies between
            return self._seek_positions[self._target_before(first)] <= cursor["next"]
        return all(p in cursor["frames"] for p in range(first, cursor["next"]))  # overlap

    def _seek(self, target: int) -> dict:
        """A fresh cursor at seek target `target` (0: the start of the file, no seek)."""
        self.close()
        container = self._open()
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if target > 0:
            container.seek(self._seek_pts[target], stream=stream, backward=True, any_frame=False)
        _OPEN_CONTAINERS[id(container)] = container
        self._cursor = {
            "pid": os.getpid(),
            "finalizer": weakref.finalize(self, _close_container, container),
            "decoder": container.decode(stream),
            "floor": self._seek_positions[target],  # frames before it are not trusted
            "next": None if target > 0 else 0,  # the position of the next decoded frame
            "pending": [],  # frames decoded after a seek, before one with a unique timestamp
            "frames": {},  # position -> av.VideoFrame, decoded and possibly wanted again
        }
        _OPEN_DECODERS[id(self)] = self
        return self._cursor

    def _place(self, cursor: dict, frame, keep_from: int) -> None:
        """Give a decoded frame its position (by rank or by counting) and keep it if wanted."""
        rank = self._rank.get(frame.pts) if frame.pts is not None else None
        if cursor["next"] is None:  # after a seek: wait for a frame whose timestamp is unique
            if rank is None:
                cursor["pending"].append(frame)
                return
            if rank < cursor["floor"]:  # an open GOP's leading frames: decoded without refs
                cursor["pending"].clear()
                return
            placed = list(enumerate(cursor["pending"], start=rank - len(cursor["pending"])))
            cursor["pending"] = []
            for position, earlier in placed:
                if position >= max(keep_from, cursor["floor"]):
                    cursor["frames"][position] = earlier
            cursor["next"] = rank
        elif rank is not None and rank != cursor["next"]:
            raise _Inconsistent
        if cursor["next"] >= keep_from:
            cursor["frames"][cursor["next"]] = frame
        cursor["next"] += 1

    def _decode(self, first: int, last: int) -> dict:
        """Decoded frames covering positions first..last (a dict position -> frame)."""
        import av

        if self._resumable(first):
            cursor = self._cursor
        else:
            target = self._target_before(first)
            cursor = self._seek(target)
        while True:
            try:
                while cursor["next"] is None or cursor["next"] <= last:
                    frame = next(cursor["decoder"], None)
                    if frame is None:
                        break
                    self._place(cursor, frame, first)
            except av.error.FFmpegError as error:
                self.close()
                raise VideoReadError(self.path, f"decoding failed ({error})") from None
            landed = cursor["next"] is not None and min(cursor["frames"], default=first) <= first
            if landed or cursor["floor"] == 0:
                return cursor["frames"]
            # the seek landed after the frames wanted (an imprecise container index): go back
            cursor = self._seek(self._target_before(cursor["floor"] - 1))

    def read(self, indices) -> torch.Tensor:
        positions = positions_of(indices)
        check_range(self.path, positions, self.n_frames)
        first, last = int(positions.min()), int(positions.max())
        try:
            frames = self._decode(first, last)
        except _Inconsistent:
            # the timestamps lied: from now on, count frames from the start of the file
            self._rank, self._seek_positions, self._seek_pts = {}, [0], [None]
            self.close()
            frames = self._decode(first, last)
        wanted = [int(p) for p in np.unique(positions)]
        missing = [p for p in wanted if p not in frames]
        if missing:
            self.close()
            raise VideoReadError(
                self.path,
                f"frames {missing[0]}..{missing[-1]} could not be decoded (truncated or corrupt?)",
            )
        arrays = {p: self._to_array(frames[p]) for p in wanted}
        for p in [p for p in frames if p < first]:  # a later window never starts earlier
            del frames[p]
        return stack_frames([arrays[int(p)] for p in positions], self.path)

    def _to_array(self, frame) -> np.ndarray:
        return frame_array(frame, self.min_short_side)


def frame_array(frame, min_short_side: int | None = None) -> np.ndarray:
    """A decoded frame as uint8 RGB [H, W, 3], upright; with `min_short_side`, a very large
    frame is shrunk while converting (never below that short side): what every reader of
    video frames does, files and live streams alike."""
    if min_short_side and min(frame.width, frame.height) > 2 * min_short_side:
        # let swscale shrink very large frames while converting (never below the short side)
        factor = min(frame.width, frame.height) / min_short_side
        w, h = round(frame.width / factor), round(frame.height / factor)
        array = frame.to_ndarray(format="rgb24", width=w - w % 2, height=h - h % 2)
    else:
        array = frame.to_ndarray(format="rgb24")
    return upright(frame, array)


def upright(frame, array: np.ndarray) -> np.ndarray:
    """The frame as it is meant to be shown: turned as the file's display matrix says (phone
    videos shot upright are stored sideways with a rotation), as ffmpeg's command line does."""
    quarter_turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    if not quarter_turns:
        return array
    return np.ascontiguousarray(np.rot90(array, quarter_turns))  # counter-clockwise
