"""Map-style datasets over annotated videos: training clips, validation clips, test windows.

Each item is a dict with `clip` (uint8 [C, T, H, W]; `network_input` makes it float on the
device), `label`, `video` (index into `videos`), `start` (first frame position) and `view`.
Randomness is drawn from a generator seeded by (seed, epoch, item), so results do not depend on
the number of workers or on process restarts; an item may be asked for as `(epoch, index)`
(what `EpochSampler` yields), which persistent workers need.
Datasets hold only paths and numbers: they pickle, work under spawn, with many DataLoader
workers and with a DistributedSampler.
"""

from __future__ import annotations

import signal
import time
from collections import OrderedDict

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from ..errors import VideoReadError
from . import sampling
from .index import Video, VideoIndex
from .sources import FrameSource, open_source

__all__ = [
    "Video",
    "VideoDataset",
    "VideoIndex",
    "clip_loader",
    "collate_clips",
    "stop_workers",
]

# Sources kept open per process: enough for the windows of a few videos read in turn; a
# training epoch touches each video once, so a larger cache would only grow.
OPEN_SOURCES = 4


class VideoDataset(Dataset):
    """`mode="train"`: one random clip per video per epoch.
    `mode="val"`: `n_clips` evenly spaced clips per video.
    `mode="test"`: every sliding window (`window_stride`, default one clip span) per video;
    `tail` says what happens at the end (`sampling.sliding_clips`); with `fps`, windows are cut
    from the video resampled to that rate (frame i = the source frame shown at i / fps).
    `n_views` > 1 (val/test, with a `three`-crop EvalTransform) adds spatial views per clip.

    `videos` is a `VideoIndex` (or a list of `Video`s, converted to one). Items are kept as
    arrays, so a dataset of 650k videos costs tens of MB, shared by forked workers. Val/test
    items need each video's frame count: recorded counts are used as they are, a video without
    one is opened once here.

    With `skip_bad`, an unreadable video yields an item with `error` instead of a clip;
    `collate_clips` counts and names it. Otherwise the VideoReadError (naming the file) is raised.
    With `timed`, items also carry `decode_s` and `transform_s`, the seconds spent reading the
    clip's frames and transforming them (for `cnn3d benchmark loader`).
    """

    def __init__(
        self,
        videos: VideoIndex | list[Video],
        transform,
        mode: str = "train",
        clip_length: int = 16,
        stride: int = 1,
        n_clips: int = 3,
        window_stride: int | None = None,
        tail: str = "pad",
        fps: float | None = None,
        n_views: int = 1,
        skip_bad: bool = False,
        seed: int = 0,
        temporal_crop: str = "random",
        timed: bool = False,
    ):
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be train, val or test, not {mode!r}")
        self.videos = videos if isinstance(videos, VideoIndex) else VideoIndex.from_videos(videos)
        self.transform = transform
        self.mode = mode
        self.clip_length = clip_length
        self.stride = stride
        self.skip_bad = skip_bad
        self.seed = seed
        self.timed = timed
        if temporal_crop not in ("random", "center"):
            raise ValueError(f"temporal_crop must be random or center, not {temporal_crop!r}")
        self.temporal_crop = temporal_crop
        self.target_fps = fps if mode == "test" else None
        self.n_clips = n_clips if mode == "val" else None
        self.window_stride, self.tail = window_stride, tail
        self.epoch = 0
        self.failed: list[str] = []  # unreadable videos found while indexing (skip_bad only)
        self._sources: OrderedDict[int, FrameSource] = OrderedDict()
        self._counts = self.videos.n_frames.copy()  # -1: not known yet
        self._fps = np.full(len(self.videos), np.nan)  # of the sources opened to count frames
        self._plans: dict[tuple[int, float | None], sampling.ClipPlan] = {}
        if mode == "train":
            self._items = None  # item i is video i
            return
        videos, starts = [], []
        arrays: dict[int, np.ndarray] = {}  # id of a (cached, shared) plan -> its starts
        for v in range(len(self.videos)):
            try:
                plan = self.plan(v)
            except VideoReadError as error:
                if not skip_bad:
                    raise
                self.failed.append(str(error))
                continue
            if id(plan) not in arrays:
                arrays[id(plan)] = np.asarray(plan.starts, dtype=np.int64)
            videos.append(np.full(len(plan.starts), v, dtype=np.int64))
            starts.append(arrays[id(plan)])
        video = np.concatenate(videos) if videos else np.zeros(0, np.int64)
        start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self._items = np.stack(
            [
                np.repeat(video, n_views),
                np.repeat(start, n_views),
                np.tile(np.arange(n_views), len(video)),
            ],
            axis=1,
        )

    @property
    def items(self) -> np.ndarray:
        """(video, first frame position, view) of every item, one row each."""
        if self._items is None:
            n = len(self.videos)
            return np.stack([np.arange(n), np.zeros(n, np.int64), np.zeros(n, np.int64)], 1)
        return self._items

    def set_epoch(self, epoch: int) -> None:
        """Reseed the training draws of items asked for by index alone."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos) if self._items is None else len(self._items)

    def _item(self, i: int) -> tuple[int, int, int]:
        if self._items is None:
            return i, 0, 0
        v, start, view = self._items[i]
        return int(v), int(start), int(view)

    def _source(self, v: int):
        if v in self._sources:
            self._sources.move_to_end(v)
            return self._sources[v]
        if self._sources:  # at most one decoder open: the video being read
            next(reversed(self._sources.values())).close()
        while len(self._sources) >= OPEN_SOURCES:
            self._sources.popitem(last=False)[1].close()
        min_side = self.transform.min_short_side
        self._sources[v] = source = open_source(self.videos.path(v), min_side)
        return source

    def n_frames(self, v: int) -> int:
        """Frames of video v (its annotated segment): the recorded count, else its source's."""
        n = int(self._counts[v])
        if n < 0:
            source = self._source(v)
            n = source.n_frames - int(self.videos.first_frames[v])
            self._counts[v] = n
            self._fps[v] = source.fps or np.nan
        return n

    def fps(self, v: int) -> float | None:
        """Video v's frame rate, where counting its frames opened it and it has one."""
        fps = float(self._fps[v])
        return None if np.isnan(fps) else fps

    def _source_fps(self, v: int) -> float:
        """Video v's frame rate, opening it if need be; an error naming it if it has none."""
        fps = self.fps(v)
        if fps is None:
            fps = self._source(v).fps
            if not fps:
                raise VideoReadError(
                    self.videos.path(v),
                    "--fps needs the video's frame rate, and it has none (a frame folder?)",
                )
            self._fps[v] = fps
        return fps

    def plan(self, v: int) -> sampling.ClipPlan:
        """Video v's evaluation clips (val: `n_clips` evenly spaced; test: every window, over
        the resampled stream with `fps`): starts, source frames, segments and times."""
        n = self.n_frames(v)
        source_fps = self._source_fps(v) if self.target_fps else self.fps(v)
        # a plan depends on the frame count and rate alone, and videos share few of those:
        # one per pair keeps building 650k items and reading each as fast as a lookup
        plan = self._plans.get((n, source_fps))
        if plan is None:
            plan = self._plans[n, source_fps] = sampling.plan_clips(
                n,
                self.clip_length,
                self.stride,
                n_clips=self.n_clips,
                window_stride=self.window_stride,
                tail=self.tail,
                source_fps=source_fps,
                target_fps=self.target_fps,
            )
        return plan

    def videos_with_items(self) -> set[int]:
        """The videos that have at least one item (the others could not be read)."""
        return (
            set(range(len(self.videos)))
            if self._items is None
            else set(np.unique(self._items[:, 0]).tolist())
        )

    def close(self) -> None:
        """Release open decoders (this process's); reads reopen them as needed."""
        for source in self._sources.values():
            source.close()
        self._sources.clear()

    def positions(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """0-based frame positions (within the segment) of item `i`."""
        v, start, _ = self._item(i)
        if self.mode == "train" and self.temporal_crop == "center":
            return sampling.center_clip(self.n_frames(v), self.clip_length, self.stride)
        if self.mode == "train":
            return sampling.random_clip(self.n_frames(v), self.clip_length, self.stride, rng)
        return self.plan(v).positions(start)

    def _read(self, v: int, positions: np.ndarray) -> torch.Tensor:
        first = int(self.videos.first_frames[v])
        source = self._source(v)
        try:
            return source.read(positions + first)
        except VideoReadError:
            recorded = int(self.videos.n_frames[v])
            if recorded >= 0 and source.n_frames < first + recorded:
                raise VideoReadError(
                    self.videos.path(v),
                    f"has {source.n_frames} frames, but the annotation file records "
                    f"{first + recorded} (a stale count: re-run `cnn3d prepare` with --video-path)",
                ) from None
            raise

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        v, window, view = self._item(i)
        rng = np.random.default_rng([self.seed, epoch, i])
        started = time.perf_counter()
        try:
            positions = self.positions(i, rng)
            clip = self._read(v, positions)
        except VideoReadError as error:
            if not self.skip_bad:
                raise
            return {"error": str(error), "video": v}
        decoded = time.perf_counter()
        if self.mode == "train":
            x = self.transform(clip, rng)
        else:
            x = self.transform(clip, rng, view=view)
        timing = {}
        if self.timed:
            timing = {"decode_s": decoded - started, "transform_s": time.perf_counter() - decoded}
        return timing | {
            "clip": x,
            "label": int(self.videos.labels[v]),
            "video": v,
            "start": int(positions[0]),  # the first source frame
            "window": window,  # where the window starts in its stream (val/test)
            "view": view,
        }


def collate_clips(batch: list[dict]) -> dict:
    """Stack the good items; name the failed ones under `failed` (a list of messages)."""
    good = [b for b in batch if "error" not in b]
    failed = [b["error"] for b in batch if "error" in b]
    out = (
        default_collate(good) if good else {"clip": None, "video": torch.zeros(0, dtype=torch.long)}
    )
    out["failed"] = failed
    out["failed_video"] = [int(b["video"]) for b in batch if "error" in b]
    return out


def worker_init(worker_id: int) -> None:
    """One torch thread per DataLoader worker: the cores belong to the model. Ctrl-C, SIGTERM
    and SIGUSR1 (a scheduler may send them to every process of a job) are left to the main
    process, which stops the workers (no worker tracebacks); a worker whose main process is
    gone ends by itself (PyTorch watches the parent)."""
    torch.set_num_threads(1)
    for number in WORKER_IGNORES:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_IGNORES)  # blocked at the fork


WORKER_IGNORES = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class ClipLoader(DataLoader):
    """A DataLoader whose workers are forked with the stop signals blocked: a signal sent to
    every process of a job (SLURM does) while a worker starts waits, pending, until
    `worker_init` ignores it, instead of killing the worker with the action it inherited
    (after a first stop signal, the default one)."""

    def __iter__(self):
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_IGNORES)
        try:
            return super().__iter__()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def clip_loader(
    dataset: VideoDataset,
    batch_size: int,
    workers: int,
    sampler=None,
    drop_last: bool = False,
    pin_memory: bool = False,
    persistent: bool = False,
    prefetch: int | None = None,
    collate=None,
) -> DataLoader:
    """A DataLoader of `dataset`'s clips in order (or `sampler`'s), with failed items counted by
    `collate_clips` and one thread per worker (`worker_init`). `pin_memory` for copies to a GPU
    that overlap the computation; `persistent` keeps the workers (and their open decoders)
    from one pass to the next, for loaders iterated once per epoch; `prefetch` batches are
    prepared ahead by each worker (PyTorch's default, 2, where None); `collate` replaces
    `collate_clips` (a wrapper of it that also times it, in `benchmark`)."""
    options = {}
    if workers > 0:
        options = {"persistent_workers": persistent, "prefetch_factor": prefetch}
    return ClipLoader(
        dataset,
        batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate or collate_clips,
        worker_init_fn=worker_init,
        drop_last=drop_last,
        pin_memory=pin_memory,
        **options,
    )


def stop_workers(loader: DataLoader | None) -> None:
    """Shut down a loader's persistent workers now, rather than whenever the loader is garbage
    collected (the iterator kept for them is private to PyTorch: `_iterator`)."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
        loader._iterator = None
