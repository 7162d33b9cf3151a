"""Map-style datasets over annotated videos: training clips, validation clips, test windows.

Each item is a dict with `clip` (float [C, T, H, W]), `label`, `video` (index into `videos`),
`start` (first frame position) and `view`. Randomness is drawn from a generator seeded by
(seed, epoch, item), so results do not depend on the number of workers or on process restarts.
Datasets hold only paths and numbers: they pickle, work under spawn, with many DataLoader
workers and with a DistributedSampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from . import sampling
from .annotations import Annotations, Entry
from .sources import VideoReadError, find_video, open_source


@dataclass(frozen=True)
class Video:
    """One annotated video (or ActivityNet segment): where it is and which frames it spans."""

    video_id: str
    path: str
    label: int  # -1 when unlabelled
    first_frame: int = 0  # 0-based position of the segment's first frame in the source
    n_frames: int | None = None  # None: ask the source


def _segment_to_positions(entry: Entry, path: Path) -> tuple[int, int | None]:
    if entry.segment is None:
        return 0, None
    start, end = int(entry.segment[0]), int(entry.segment[1])
    first = start - 1 if path.is_dir() else start  # frame folders are 1-based
    return max(0, first), max(0, end - start)


def videos_from_annotations(
    annotations: Annotations, subset: str, video_root: str | Path
) -> tuple[list[Video], list[str]]:
    """The subset's videos found under `video_root`, and the ids of those that are not there."""
    root = Path(video_root)
    index = annotations.class_index
    videos, missing = [], []
    for entry in annotations.subset(subset):
        path = (
            root / entry.video_path
            if entry.video_path
            else find_video(root, entry.label, entry.video_id)
        )
        if path is None and isinstance(entry.extra.get("annotations"), list):
            path = find_video(root, None, f"v_{entry.video_id}")
        if path is None or not path.exists():
            missing.append(entry.video_id)
            continue
        label = index[entry.label] if entry.label is not None else -1
        segments = entry.extra.get("annotations")
        if isinstance(segments, list):  # ActivityNet: one item per segment, seconds -> frames
            fps = float(entry.extra.get("fps") or 30.0)
            for seg in segments:
                first = int(round(seg["segment"][0] * fps))
                n = max(1, int(round((seg["segment"][1] - seg["segment"][0]) * fps)))
                videos.append(Video(entry.video_id, str(path), index[seg["label"]], first, n))
            continue
        first, n_frames = _segment_to_positions(entry, path)
        if n_frames == 0:
            missing.append(entry.video_id)
            continue
        videos.append(Video(entry.video_id, str(path), label, first, n_frames))
    return videos, missing


class VideoDataset(Dataset):
    """`mode="train"`: one random clip per video per epoch.
    `mode="val"`: `n_clips` evenly spaced clips per video.
    `mode="test"`: every sliding window (`window_stride`, default one clip span) per video.
    `n_views` > 1 (val/test, with a `three`-crop EvalTransform) adds spatial views per clip.

    With `skip_bad`, an unreadable video yields an item with `error` instead of a clip;
    `collate_clips` counts and names it. Otherwise the VideoReadError (naming the file) is raised.
    """

    def __init__(
        self,
        videos: list[Video],
        transform,
        mode: str = "train",
        clip_length: int = 16,
        stride: int = 1,
        n_clips: int = 3,
        window_stride: int | None = None,
        n_views: int = 1,
        skip_bad: bool = False,
        seed: int = 0,
    ):
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be train, val or test, not {mode!r}")
        self.videos = list(videos)
        self.transform = transform
        self.mode = mode
        self.clip_length = clip_length
        self.stride = stride
        self.skip_bad = skip_bad
        self.seed = seed
        self.epoch = 0
        self.failed: list[str] = []  # unreadable videos found while indexing (skip_bad only)
        self._sources: dict[int, object] = {}
        self._open: int | None = None
        if mode == "train":
            self.items = [(v, 0, 1) for v in range(len(self.videos))]
            return
        self.items = []
        for v in range(len(self.videos)):
            try:
                n = self._n_frames(v)
            except VideoReadError as error:
                if not skip_bad:
                    raise
                self.failed.append(str(error))
                continue
            if mode == "val":
                clips = sampling.even_clips(n, clip_length, n_clips, stride)
            else:
                clips = sampling.sliding_clips(n, clip_length, window_stride, stride)
            starts = (
                sorted({int(c[0]) for c in clips}) if mode == "test" else [int(c[0]) for c in clips]
            )
            self.items += [(v, s, view) for s in starts for view in range(n_views)]

    def set_epoch(self, epoch: int) -> None:
        """Reseed the training draws; call before each epoch (workers are re-forked per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _source(self, v: int):
        if v not in self._sources:
            min_side = getattr(self.transform, "min_short_side", None)
            self._sources[v] = open_source(self.videos[v].path, min_side)
        if self._open != v:  # at most one decoder open: the video being read
            previous = self._sources.get(self._open)
            if previous is not None and hasattr(previous, "close"):
                previous.close()
            self._open = v
        return self._sources[v]

    def _n_frames(self, v: int) -> int:
        video = self.videos[v]
        return (
            video.n_frames
            if video.n_frames is not None
            else self._source(v).n_frames - video.first_frame
        )

    def close(self) -> None:
        """Release open decoders (this process's); reads reopen them as needed."""
        for source in self._sources.values():
            if hasattr(source, "close"):
                source.close()
        self._open = None

    def positions(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """0-based frame positions (within the segment) of item `i`."""
        v, start, _ = self.items[i]
        n = self._n_frames(v)
        if self.mode == "train":
            return sampling.random_clip(n, self.clip_length, self.stride, rng)
        return sampling.clip_at(start, n, self.clip_length, self.stride)

    def __getitem__(self, i: int) -> dict:
        v, _, view = self.items[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        video = self.videos[v]
        try:
            positions = self.positions(i, rng)
            clip = self._source(v).read(positions + video.first_frame)
        except VideoReadError as error:
            if not self.skip_bad:
                raise
            return {"error": str(error), "video": v}
        if self.mode == "train":
            x = self.transform(clip, rng)
        else:
            x = self.transform(clip, rng, view=view)
        return {
            "clip": x,
            "label": video.label,
            "video": v,
            "start": int(positions[0]),
            "view": view,
        }


def collate_clips(batch: list[dict]) -> dict:
    """Stack the good items; name the failed ones under `failed` (a list of messages)."""
    good = [b for b in batch if "error" not in b]
    failed = [b["error"] for b in batch if "error" in b]
    out = default_collate(good) if good else {"clip": None}
    out["failed"] = failed
    return out


def worker_init(worker_id: int) -> None:
    """One torch thread per DataLoader worker: the cores belong to the model."""
    torch.set_num_threads(1)
