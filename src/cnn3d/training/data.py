"""A run's videos: the index (mapped from the index cache, or built once per node and
published to the other ranks) and the training and validation datasets."""

from __future__ import annotations

import time
from pathlib import Path

import torch.distributed as dist

from ..data.dataset import VideoDataset
from ..data.index_cache import (
    NOT_WRITTEN,
    IndexedData,
    build_index,
    check_cache_path,
    open_index,
    write_index,
)
from ..data.transforms import EvalTransform, TrainTransform
from ..errors import TrainingError
from ..runtime import Torchrun
from .config import TrainConfig

INDEX_CACHE = "video_index.cache"


def index_cache_path(cfg: TrainConfig) -> Path | None:
    """Where the built video index is kept (`--index-cache`): beside the run's checkpoints
    by default, None when switched off."""
    if cfg.index_cache in ("none", "off", ""):
        return None
    if cfg.index_cache == "auto":
        return Path(cfg.result_path) / INDEX_CACHE
    return Path(cfg.index_cache)


def index_data(cfg: TrainConfig, torchrun: Torchrun) -> tuple[IndexedData, bool, bool]:
    """(the videos, whether they were indexed here, whether this rank waited for another to
    index them). Mapped from the index cache when it is fresh; else built, and under torchrun
    built once per node: local rank 0 builds (and `publish_index` writes the cache), the others
    wait for it and map what it wrote."""
    path = index_cache_path(cfg)
    if path is not None:
        check_cache_path(path)  # never replace a file that is not an index
    say = print if torchrun.rank == 0 else (lambda *_: None)
    start = time.perf_counter()
    data, why = open_index(path, cfg.annotation_path, cfg.video_path) if path else (None, "")
    waited = False
    if data is None and path is not None and torchrun.distributed and torchrun.local_rank != 0:
        dist.barrier()  # local rank 0 indexes (one annotation parse per node, not per rank)
        waited = True
        data, why = open_index(path, cfg.annotation_path, cfg.video_path)
    built = data is None
    if built:
        if why and why != NOT_WRITTEN:
            say(f"video index {path}: {why}; indexing again")
        data = build_index(cfg.annotation_path, cfg.video_path)
    n = {subset: len(videos) for subset, videos in data.videos.items()}
    how = "indexed" if built else f"mapped from {path}"
    say(
        f"video index: {n['training']} training and {n['validation']} validation videos "
        f"{how} in {time.perf_counter() - start:.2f} s"
    )
    if not n["training"]:
        raise TrainingError(
            f"{cfg.annotation_path}: no training videos found under {cfg.video_path}"
        )
    return data, built, waited


def publish_index(
    cfg: TrainConfig, torchrun: Torchrun, data: IndexedData, built: bool, waited: bool
) -> IndexedData:
    """Write the index this process built to the cache (local rank 0 only; once the model
    and labels agree, so that a run refused at its arguments writes nothing), then release the
    ranks waiting for it. Returns the index to use: the written one mapped (its pages shared
    with the other ranks, not private to this one), or `data`."""
    path = index_cache_path(cfg)
    if path is None:
        return data
    if built and torchrun.local_rank == 0:
        try:
            write_index(path, data, cfg.video_path)
            data = open_index(path, cfg.annotation_path, cfg.video_path)[0] or data
        except OSError as error:  # the run goes on; the next start indexes again
            print(f"video index not kept: {path}: {error.strerror or error}")
    if torchrun.distributed and not waited:
        dist.barrier()
    return data


def make_datasets(cfg: TrainConfig, train_videos, val_videos):
    """(training clips, validation clips or None)."""
    transform = TrainTransform(
        cfg.sample_size, cfg.train_crop, cfg.flip, tuple(cfg.crop_scale), tuple(cfg.crop_ratio)
    )
    train_set = VideoDataset(
        train_videos, transform, "train", cfg.clip_length, cfg.t_stride,
        skip_bad=cfg.skip_bad_videos, seed=cfg.seed, temporal_crop=cfg.temporal_crop,
    )  # fmt: skip
    if not (cfg.val and val_videos):
        return train_set, None
    val_set = VideoDataset(
        val_videos, EvalTransform(cfg.sample_size, "center"), "val",
        cfg.clip_length, cfg.t_stride, n_clips=cfg.n_val_clips, skip_bad=cfg.skip_bad_videos,
    )  # fmt: skip
    return train_set, val_set
