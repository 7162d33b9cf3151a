"""Resuming: from `--resume PATH`, `--resume auto` (`last.pth`) or a torchrun restart, after
checking that the folder holds the same run."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from ..errors import UsageError
from ..runtime import Torchrun
from .config import OLD_NAMES, TrainConfig, option_name
from .state import Position, resume_from


def resume_if_asked(cfg, result, model, optimizer, scheduler, scaler, device, torchrun):
    """(where to start, best score so far): from `--resume` (a path, or `auto` for last.pth).
    A job torchrun restarts (`--max-restarts`) resumes as with `auto`, with no one to ask."""
    resume = cfg.resume
    if resume is None and torchrun.restart > 0:
        resume = "auto"
        if torchrun.rank == 0:
            print(f"torchrun restart {torchrun.restart}: resuming as with --resume auto")
    if resume is None:
        return Position(), -1.0, None
    path = result / "last.pth" if resume == "auto" else Path(resume)
    if resume == "auto" and not path.exists():
        if torchrun.rank == 0:
            print(f"--resume auto: nothing to resume ({path} does not exist); starting fresh")
        return Position(), -1.0, None
    if resume == "auto":  # before the weights: a changed option is named, not a key mismatch
        check_same_run(cfg, result, torchrun, mid_epoch=None)
    resumed = resume_from(path, model, optimizer, scheduler, scaler, device)
    begin = resumed.position
    if resume == "auto":
        check_same_run(cfg, result, torchrun, mid_epoch=begin.step > 0)
    if cfg.overwrite_milestones and cfg.lr_scheduler == "multistep":
        scheduler.milestones = Counter(cfg.milestones)
    if torchrun.rank == 0:
        print(f"resumed from {path} at {begin.describe()}")
    return begin, resumed.best, resumed.best_epoch


# what must not change for `--resume auto` to go on with the same run (the data order and the
# position within an epoch depend on them)
SAME_RUN = (
    "annotation_path", "model", "model_depth", "batch_size", "clip_length", "sample_size",
    "t_stride", "seed", "world_size",
)  # fmt: skip


def check_same_run(
    cfg: TrainConfig, result: Path, torchrun: Torchrun, mid_epoch: bool | None
) -> None:
    """The options in `<result>/opts.json` (written at the run's start) against these; the
    process count only within an epoch (at an epoch's end a run may go on with more GPUs;
    `mid_epoch` None: not known yet, not compared)."""
    try:
        before = json.loads((result / "opts.json").read_text())
    except (OSError, ValueError):
        return  # a run of cnn3d before opts.json, or written by hand: nothing to compare
    before = before.get("used", before)  # (opts.json kept only these settings before 0.1)
    before = {OLD_NAMES.get(key, key): value for key, value in before.items()}
    now = asdict(cfg) | {"world_size": torchrun.world_size}
    for key in SAME_RUN:
        if key == "world_size" and not mid_epoch:
            continue
        if key in before and before[key] is not None and now[key] is not None:
            if before[key] != now[key]:
                raise UsageError(
                    f"--resume auto: {result} holds another run ({option_name(key)} {before[key]!r} "
                    f"there, {now[key]!r} here): give the same options, or another "
                    "--result-path"
                )
