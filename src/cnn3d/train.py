"""Training: `train` reads top to bottom on one screen; the run's setup, one epoch's steps,
validation and the end of an epoch (logs, checkpoints) are named functions it calls. Single
process, or `torchrun --nproc_per_node N -m cnn3d train ...` (DDP: NCCL on GPUs, gloo on CPU;
only rank 0 writes; metrics are summed over ranks).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from . import __version__
from .data.dataset import VideoDataset, clip_loader, stop_workers
from .data.index_cache import (
    NOT_WRITTEN,
    IndexedData,
    build_index,
    check_cache_path,
    open_index,
    write_index,
)
from .data.network_input import NetworkInput
from .data.samplers import EpochSampler, ShardSampler
from .data.sources import open_source
from .data.transforms import EvalTransform, TrainTransform
from .errors import TrainingError, TrainingInterrupted, UsageError
from .evaluate import evaluate_loader
from .files import atomic_write, sweep_temporaries
from .metrics import compute_metrics
from .models import build_model, check_input_channels, load_model
from .models.zoo import canonical_family
from .normalization import Normalization, get_normalization
from .plots import write_curves
from .runlock import RunLock
from .runtime import RuntimeConfig, Torchrun, prepare_device
from .signals import STOP_SIGNALS, StopSignals, requeue_slurm_job
from .trainlog import RunLogs, format_epoch, progress_bar, write_missing
from .trainstate import Position, read_epoch, resume_from, save_training_state

__all__ = ["TrainConfig", "TrainingError", "TrainingInterrupted", "train"]


@dataclass(frozen=True)
class TrainConfig:
    # data
    video_path: str
    annotation_path: str
    result_path: str
    clip_length: int = 16
    sample_size: int = 112
    t_stride: int = 1
    train_crop: str = "corner"
    crop_scale: tuple[float, float] = (0.25, 1.0)  # area fractions of the `random` crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratios of the `random` crop
    temporal_crop: str = "random"  # where a training clip starts: random, or the centre
    flip: bool = True
    # a preset name or a Normalization; None: the pretrained model's, else 'kinetics'
    normalization: str | Normalization | None = None
    n_val_clips: int = 3
    batch_size: int = 32
    workers: int = 2
    prefetch: int = 2  # batches each DataLoader worker prepares ahead
    skip_bad_videos: bool = False
    n_classes: int | None = None  # if given, must be the annotation file's class count
    # model; family and depth None: resnet-18, or the pretrained model's (if given, they must
    # be the pretrained model's)
    family: str | None = None
    depth: int | None = None
    model_options: dict = field(default_factory=dict)
    pretrain_path: str | None = None
    n_pretrain_classes: int | None = None  # if given, must be the pretrained model's
    ft_begin_module: str = ""
    # optimisation
    lr: float = 0.1
    momentum: float = 0.9
    dampening: float = 0.0
    weight_decay: float = 1e-3
    nesterov: bool = False
    schedule: str = "multistep"  # multistep | plateau | cosine
    milestones: tuple[int, ...] = (50, 100, 150)
    gamma: float = 0.1
    plateau_patience: int = 10
    warmup_epochs: int = 0
    epochs: int = 200
    overwrite_milestones: bool = False  # on resume, the milestones given replace the saved ones
    # run
    validate: bool = True
    resume: str | None = None  # a path, or 'auto' for <result_path>/last.pth
    checkpoint_every: int = 10
    # mid-epoch checkpoints (last.pth): every so many minutes and/or steps (0: not by that)
    save_every: float = 10.0
    save_every_steps: int = 0
    stop_signals: tuple[str, ...] = STOP_SIGNALS  # each: checkpoint after the step, then stop
    requeue: bool = False  # after a stop signal, `scontrol requeue` this SLURM job
    # the built video index, mapped by restarts and ranks: "auto" (<result>/video_index.cache),
    # a file, or "none"
    index_cache: str = "auto"
    # the command's options as given (option name -> value), recorded in opts.json so that it
    # starts the same run again (`--config`); empty for runs started from Python
    options: tuple[tuple[str, object], ...] = ()
    recipe: str | None = None  # the recipe the run follows (`--recipe`), for its card
    amp: bool | None = None  # None: on for GPUs and CPUs with native bf16 (precision.py)
    channels_last: bool = True
    compile: bool = False  # torch.compile (inductor) the training network
    # steps between reads of the loss and accuracy from the device; None: every step on the
    # CPU (which computes synchronously: a read waits for nothing), every 20 on GPUs
    log_every: int | None = None
    sync_bn: bool = False
    freeze_bn: bool = False  # BatchNorm layers use and keep their running statistics
    tensorboard: bool = True
    progress: bool = True
    seed: int = 1
    device: str | None = None

    @property
    def runtime(self) -> RuntimeConfig:
        return RuntimeConfig(self.device, self.amp, self.channels_last, self.compile)


# ------------------------------------------------------------------------------------- helpers


def setup_distributed(runtime: RuntimeConfig) -> tuple[Torchrun, torch.device]:
    """This process's place and device (CUDA when present by default); joins the process group
    when started by torchrun."""
    torchrun = Torchrun.from_environment()
    device = runtime.torch_device("auto", torchrun)
    if torchrun.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    prepare_device(device)
    if torchrun.distributed:
        torchrun = replace(torchrun, rank=dist.get_rank())
    return torchrun, device


def freeze_before(model: torch.nn.Module, module_name: str) -> list[str]:
    """Freeze every parameter registered before the first one under `module_name` (e.g. layer4,
    fc, denseblock3); returns the frozen names. '' trains everything."""
    if not module_name:
        return []
    names = [n for n, _ in model.named_parameters()]
    tops = [n.removeprefix("features.").split(".")[0] for n in names]
    if module_name not in tops:
        raise UsageError(
            f"no module {module_name!r} in the model; top-level modules: {sorted(set(tops))}"
        )
    first = tops.index(module_name)
    frozen = names[:first]
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return frozen


def make_scheduler(cfg: TrainConfig, optimizer):
    if cfg.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, "min", factor=cfg.gamma, patience=cfg.plateau_patience
        )
    if cfg.schedule == "cosine":  # per-epoch cosine with linear warm-up

        def factor(epoch: int) -> float:
            if epoch < cfg.warmup_epochs:
                return (epoch + 1) / (cfg.warmup_epochs + 1)
            progress = (epoch - cfg.warmup_epochs) / max(1, cfg.epochs - cfg.warmup_epochs)
            return 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise UsageError(f"schedule must be multistep, plateau or cosine, not {cfg.schedule!r}")


# -------------------------------------------------------------------------------------- training


def build_training_model(cfg: TrainConfig, labels: list[str]):
    """A fresh network, or a pretrained one with a new head for `len(labels)` classes. Options
    given that disagree with the pretrained model or the annotation file are errors naming both."""
    if cfg.n_classes is not None and cfg.n_classes != len(labels):
        raise UsageError(
            f"--n_classes {cfg.n_classes}, but {cfg.annotation_path} has {len(labels)} classes: "
            "the annotation file decides (leave --n_classes out)"
        )
    if cfg.pretrain_path:
        model = load_model(cfg.pretrain_path, **cfg.model_options)
        check_pretrained(cfg, model.spec)
        if model.spec.n_classes != len(labels):
            model.reset_classifier(len(labels))
        normalization = model.spec.normalization
    else:
        if cfg.n_pretrain_classes is not None:
            print("--n_pretrain_classes goes with --pretrain_path; without it, it is ignored")
        family, depth = cfg.family or "resnet", cfg.depth or 18
        model = build_model(family, depth, len(labels), **cfg.model_options)
        normalization = get_normalization("kinetics")
    if isinstance(cfg.normalization, Normalization):
        normalization = cfg.normalization
    elif cfg.normalization:
        normalization = get_normalization(cfg.normalization)
    model.spec = replace(
        model.spec,
        n_classes=len(labels),
        normalization=normalization,
        class_names=list(labels),
        clip_length=cfg.clip_length,
        sample_size=cfg.sample_size,
        t_stride=cfg.t_stride,
    )
    return model


def check_pretrained(cfg: TrainConfig, spec) -> None:
    """--model, --model_depth and --n_pretrain_classes, where given, against the checkpoint."""
    path = cfg.pretrain_path
    if cfg.family is not None and canonical_family(cfg.family) != spec.family:
        raise UsageError(
            f"--model {cfg.family}, but {path} holds a {spec.arch}: leave --model out (the "
            "checkpoint decides) or give a checkpoint of that family"
        )
    if cfg.depth is not None and cfg.depth != spec.depth:
        raise UsageError(
            f"--model_depth {cfg.depth}, but {path} holds a {spec.arch}: leave --model_depth "
            "out (the checkpoint decides) or give a checkpoint of that depth"
        )
    if cfg.n_pretrain_classes is not None and cfg.n_pretrain_classes != spec.n_classes:
        raise UsageError(
            f"--n_pretrain_classes {cfg.n_pretrain_classes}, but {path} predicts "
            f"{spec.n_classes} classes"
        )


@dataclass
class Run:
    """What one training run works with (built by `setup_run`; changes as epochs go by)."""

    cfg: TrainConfig
    torchrun: Torchrun
    device: torch.device
    result: Path
    labels: list[str]
    model: torch.nn.Module
    net: torch.nn.Module  # the model, wrapped for DDP where there are several processes
    inputs: NetworkInput  # uint8 batches -> the network's input on the device
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    train_set: VideoDataset
    train_sampler: EpochSampler
    train_loader: DataLoader
    val_set: VideoDataset | None
    val_loader: DataLoader | None
    begin: Position = Position()  # where this run starts (resumed: maybe within an epoch)
    best: float = -1.0
    best_epoch: int | None = None  # the epoch best.pth holds (None: not known)
    saved: Position | None = None  # what last.pth holds, written by this run or before it
    steps_per_epoch: int = 0  # of this rank, a whole epoch
    last_save: float = field(default_factory=time.monotonic)
    epoch: int = 0  # the epoch in progress
    epoch_sums: tuple[float, float, float] = (0.0, 0.0, 0.0)  # its training sums, all ranks
    bad_videos: list[str] = field(default_factory=list)
    card: dict = field(default_factory=dict)  # how the run is made, stored in its checkpoints

    @property
    def begin_epoch(self) -> int:
        return self.begin.epoch

    @property
    def main_process(self) -> bool:
        return self.torchrun.rank == 0

    @property
    def log_every(self) -> int:
        return self.cfg.log_every or (1 if self.device.type == "cpu" else 20)


def train(cfg: TrainConfig) -> dict:
    """Train (and validate every epoch); returns the last epoch's metrics."""
    with result_folder(cfg):
        return train_in(cfg)


@contextlib.contextmanager
def result_folder(cfg: TrainConfig):
    """The result folder held for this run (rank 0; `runlock.py`) while it trains, and the
    temporary files of writes cut short by an earlier run of it removed."""
    if Torchrun.from_environment().rank != 0:
        yield
        return
    with RunLock(cfg.result_path):
        swept = sweep_temporaries(cfg.result_path)
        if swept:
            count, size = swept
            print(
                f"{cfg.result_path}: removed {count} temporary file(s) ({size / 1e6:.1f} MB) "
                "of writes an earlier run did not finish"
            )
        yield


def train_in(cfg: TrainConfig) -> dict:
    """`train` within its held result folder."""
    run = setup_run(cfg)
    metrics: dict = {}
    interrupted: TrainingInterrupted | None = None
    # Whatever Python objects exist now stay out of the garbage collector's passes, which would
    # otherwise write to (and so copy) their pages in every forked DataLoader worker.
    gc.collect()
    gc.freeze()
    try:
        logs = RunLogs(run.result, run.begin, run.main_process, cfg.tensorboard)
        stop = StopSignals(graceful=True, names=cfg.stop_signals)
        # the logs close and the signals get their usual meaning back however the loop ends
        with logs, stop:
            for epoch in range(run.begin_epoch, cfg.epochs + 1):
                # one pass over this rank's share of the clips, in an order fixed by the epoch;
                # last.pth every --save-every minutes, and at a stop signal (then StopForSignal)
                metrics = train_one_epoch(run, epoch, stop, logs)
                # video-level accuracy: softmax scores averaged over each video's clips
                if run.val_loader is not None:
                    metrics |= validate(run, epoch, stop)
                # plateau follows the validation loss (the training loss without validation)
                if cfg.schedule == "plateau":
                    run.scheduler.step(metrics.get("val_loss", metrics["train_loss"]))
                else:
                    run.scheduler.step()
                # logs, last/best/save_N checkpoints: written by rank 0 only
                end_epoch(run, metrics, logs)
                if agreed(run, bool(stop.requested)):
                    stop.commit()  # (last.pth was written at the epoch's end)
                    raise StopForSignal
    except StopForSignal:  # committed: the signals are ignored from here on
        interrupted = TrainingInterrupted(interrupted_message(run, stop), stop.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C: at once
        raise TrainingInterrupted(interrupted_message(run, stop), stop.exit_code) from None
    finally:
        # the workers ignore the signals (see worker_init); they stop with their loader
        stop_workers(run.train_loader)
        stop_workers(run.val_loader)
        gc.unfreeze()
    if interrupted is not None:
        # the very last step, the logs closed and the workers stopped: SLURM answers a requeue
        # with its own SIGTERM to the job (ignored now), and may start it again at once
        if cfg.requeue and run.main_process:
            print(requeue_slurm_job(), flush=True)
        raise interrupted
    if run.main_process:
        finish_run(run, metrics)
    return metrics


def setup_run(cfg: TrainConfig) -> Run:
    """Everything a run needs, every argument checked before anything is written: the data,
    the model, optimizer and schedule, the state resumed from, and a summary printed."""
    torchrun, device = setup_distributed(cfg.runtime)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    data, built, waited = index_data(cfg, torchrun)
    labels = data.labels
    model = build_training_model(cfg, labels)
    frozen = freeze_before(model, cfg.ft_begin_module)
    data = publish_index(cfg, torchrun, data, built, waited)
    train_videos, val_videos = data.videos["training"], data.videos["validation"]
    missing = {subset: list(ids) for subset, ids in data.missing.items()}
    first = train_videos.path(0)
    check_input_channels(model, open_source(first).channels, first)
    train_set, val_set = make_datasets(cfg, train_videos, val_videos)
    train_sampler = EpochSampler(len(train_set), cfg.seed, torchrun.rank, torchrun.world_size)
    # A last batch of one clip cannot train BatchNorm ("expected more than 1 value per
    # channel"): it is left out of the epoch (another clip order comes next epoch).
    per_process = len(train_sampler)
    if per_process == 1 and not cfg.freeze_bn:
        raise TrainingError(
            f"{cfg.annotation_path}: one training clip per process cannot train BatchNorm; "
            "add videos, use fewer processes, or --freeze-bn"
        )
    drop_last = per_process % cfg.batch_size == 1 and not cfg.freeze_bn
    # uint8 batches, pinned for copies that overlap the GPU's work; the workers live as long
    # as the run (each epoch would otherwise fork them again and reopen their decoders)
    loading = {"pin_memory": device.type == "cuda", "persistent": True, "prefetch": cfg.prefetch}
    train_loader = clip_loader(
        train_set, cfg.batch_size, cfg.workers, train_sampler, drop_last, **loading
    )
    val_loader = None
    if val_set is not None:
        val_sampler = ShardSampler(len(val_set), torchrun.rank, torchrun.world_size)
        val_loader = clip_loader(val_set, cfg.batch_size, cfg.workers, val_sampler, **loading)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr,
        momentum=cfg.momentum,
        dampening=0.0 if cfg.nesterov else cfg.dampening,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )
    scheduler = make_scheduler(cfg, optimizer)
    # fp16 (GPUs without bf16) needs loss scaling; for bf16 and fp32 the scaler does nothing.
    fp16 = cfg.runtime.amp_dtype(device) == torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    result = Path(cfg.result_path)
    begin, best, best_epoch = resume_if_asked(
        cfg, result, model, optimizer, scheduler, scaler, device, torchrun
    )
    if begin.step > len(train_loader):
        raise TrainingError(
            f"{cfg.resume}: its position (epoch {begin.epoch}, step {begin.step}) is past the "
            f"epoch's end ({len(train_loader)} steps per epoch with these options)"
        )
    net = model
    if torchrun.distributed:
        if cfg.sync_bn:
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:  # compiled on its first step (the training graph: forward and backward)
        net = torch.compile(net)
    inputs = NetworkInput(model.spec.normalization, device, cfg.runtime.memory_format)
    run = Run(
        cfg, torchrun, device, result, labels, model, net, inputs, optimizer, scheduler, scaler,
        train_set, train_sampler, train_loader, val_set, val_loader, begin, best,
        best_epoch=best_epoch, saved=begin if begin.epoch > 1 or begin.step else None,
        steps_per_epoch=len(train_loader),
        bad_videos=list(val_set.failed) if val_set else [],
        card=training_card(cfg, labels, len(train_videos), len(val_videos)),
    )  # fmt: skip
    if run.main_process:
        restore_epoch_end_files(run)
        write_start(run, train_videos, val_videos, missing)
        print(summary(run, len(train_videos), len(val_videos) if val_set else 0, drop_last))
        if frozen:
            print(f"fine-tuning from {cfg.ft_begin_module}: {len(frozen)} parameter tensors frozen")
    return run


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
    if not (cfg.validate and val_videos):
        return train_set, None
    val_set = VideoDataset(
        val_videos, EvalTransform(cfg.sample_size, "center"), "val",
        cfg.clip_length, cfg.t_stride, n_clips=cfg.n_val_clips, skip_bad=cfg.skip_bad_videos,
    )  # fmt: skip
    return train_set, val_set


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
    if cfg.overwrite_milestones and cfg.schedule == "multistep":
        scheduler.milestones = Counter(cfg.milestones)
    if torchrun.rank == 0:
        print(f"resumed from {path} at {begin.describe()}")
    return begin, resumed.best, resumed.best_epoch


# what must not change for `--resume auto` to go on with the same run (the data order and the
# position within an epoch depend on them)
SAME_RUN = {
    "annotation_path": "--annotation-path", "family": "--model", "depth": "--model-depth",
    "batch_size": "--batch-size", "clip_length": "--clip-length", "sample_size": "--sample-size",
    "t_stride": "--t-stride", "seed": "--seed", "world_size": "the process count",
}  # fmt: skip


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
    now = asdict(cfg) | {"world_size": torchrun.world_size}
    for key, option in SAME_RUN.items():
        if key == "world_size" and not mid_epoch:
            continue
        if key in before and before[key] is not None and now[key] is not None:
            if before[key] != now[key]:
                raise UsageError(
                    f"--resume auto: {result} holds another run ({option} {before[key]!r} "
                    f"there, {now[key]!r} here): give the same options, or another "
                    "--result-path"
                )


def training_card(cfg: TrainConfig, labels: list[str], n_train: int, n_val: int) -> dict:
    """What a checkpoint of this run says of how it was made (`cnn3d info` prints it)."""
    return {
        "dataset": Path(cfg.annotation_path).name,
        "annotation_path": str(cfg.annotation_path),
        "video_path": str(cfg.video_path),
        "n_training_videos": n_train,
        "n_validation_videos": n_val,
        "n_classes": len(labels),
        "class_names_from": f"the annotation file {Path(cfg.annotation_path).name}",
        "epochs_planned": cfg.epochs,
        "recipe": cfg.recipe,
        "config": dict(cfg.options)
        or {k: v for k, v in asdict(cfg).items() if k not in ("options", "normalization")},
        "pretrained_from": str(cfg.pretrain_path) if cfg.pretrain_path else None,
        "cnn3d_version": __version__,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_start(run: Run, train_videos, val_videos, missing: dict) -> None:
    """`opts.json`: the command's options (a config that starts the same run again: `cnn3d
    train --config opts.json`), and under `used` every setting with what was actually used;
    and what was not found."""
    cfg = run.cfg
    run.result.mkdir(parents=True, exist_ok=True)
    used = {k: v for k, v in asdict(cfg).items() if k != "options"} | {
        "arch": run.model.spec.arch,
        "amp": cfg.runtime.amp_dtype(run.device) is not None,
        "precision": cfg.runtime.precision_name(run.device),
        "normalization": run.model.spec.normalization.name,
        "device": str(run.device),
        "world_size": run.torchrun.world_size,
        "cnn3d_version": __version__,
    }
    opts = dict(cfg.options) | {"used": used}
    atomic_write(
        run.result / "opts.json",
        lambda tmp: Path(tmp).write_text(json.dumps(opts, indent=1, default=str)),
    )
    for note in train_videos.notes + val_videos.notes:
        print(note)
    write_missing(run.result, missing, cfg.video_path)


def summary(run: Run, n_train: int, n_val: int, drop_last: bool) -> str:
    cfg, device = run.cfg, run.device
    n_params = sum(p.numel() for p in run.model.parameters())
    return (
        f"training {run.model.spec.arch} ({n_params / 1e6:.2f} M parameters, "
        f"{len(run.labels)} classes) on {n_train} training and {n_val} validation videos\n"
        f"  device {device} x {run.torchrun.world_size} process(es), "
        f"{cfg.runtime.precision_name(device)}, "
        f"{'channels_last_3d' if cfg.channels_last else 'contiguous'} memory format, "
        f"{run.model.spec.normalization.name} input"
        + (", torch.compile" if cfg.compile else "")
        + "\n"
        f"  batch {cfg.batch_size} per process, {len(run.train_loader)} steps per epoch"
        + (" (the last clip of each epoch left out: a batch of one)" if drop_last else "")
        + f", epochs {run.begin_epoch}..{cfg.epochs}\n  results in {run.result}"
    )


class StopForSignal(Exception):
    """Raised once the checkpoint a stop signal asks for is written (and the stop committed)."""


def train_one_epoch(run: Run, epoch: int, stop: StopSignals, logs: RunLogs) -> dict:
    """One pass over the training clips (the rest of it, for the epoch a run resumes within):
    the epoch's mean loss and clip accuracy (summed over ranks) and its learning rate. The host
    reads the steps' losses from the device every `log_every` steps, and there checkpoints
    when one is due and stops when a signal asked (`checkpoint_if_due`)."""
    cfg = run.cfg
    run.epoch = epoch
    done = run.begin.step if epoch == run.begin_epoch else 0  # steps trained before a resume
    run.train_sampler.set_epoch(epoch, skip=done * cfg.batch_size)
    lr = max(g["lr"] for g in run.optimizer.param_groups)
    run.net.train()
    if cfg.freeze_bn:  # BatchNorm keeps its running statistics (DDP-exact on the CPU)
        for module in run.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    steps = run.steps_per_epoch
    bar = progress_bar(steps, f"epoch {epoch}/{cfg.epochs}", run.main_process and cfg.progress)
    bar.update(done)
    reader = StepReader(run, epoch, lr, steps, logs, bar)
    if done and run.main_process:  # the resumed steps' sums are all ranks' together
        reader.sums = list(run.begin.sums)
    # one process stops at the step after a signal; ranks agree at their reads
    alone = not run.torchrun.distributed
    for i, batch in enumerate(run.train_loader, start=done + 1):
        run.bad_videos += batch["failed"]
        if batch["clip"] is not None:
            reader.add(i, train_step(run, batch), len(batch["label"]))
        bar.update()
        if i % run.log_every == 0 or (alone and stop.requested):
            reader.read()
            checkpoint_if_due(run, epoch, i, reader, stop)
    reader.read()
    bar.close()
    run.train_set.close()
    sums = all_ranks(run, reader.sums)
    run.epoch_sums = tuple(sums.tolist())
    loss, acc = (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()
    return {"epoch": epoch, "train_loss": loss, "train_acc": acc, "lr": lr}


def checkpoint_if_due(run: Run, epoch: int, step: int, reader: StepReader, stop) -> None:
    """At a read: `last.pth` at this step if `--save-every` minutes or `--save-every-steps`
    steps have come, or a stop signal (then StopForSignal). Ranks decide together."""
    cfg = run.cfg
    due = (cfg.save_every > 0 and time.monotonic() - run.last_save >= 60 * cfg.save_every) or (
        cfg.save_every_steps > 0 and step % cfg.save_every_steps == 0
    )
    stopping, due = agreed(run, bool(stop.requested), due)
    if stopping or (due and step < run.steps_per_epoch):  # an epoch's end saves anyway
        save_position(run, Position(epoch, step, tuple(all_ranks(run, reader.sums).tolist())))
    if stopping:
        stop.commit()
        raise StopForSignal


def agreed(run: Run, *flags: bool) -> tuple[bool, ...] | bool:
    """Each flag, true if it is on any rank (one small all-reduce under DDP)."""
    if run.torchrun.distributed:
        device = run.device if run.device.type == "cuda" else torch.device("cpu")
        values = torch.tensor([int(f) for f in flags], device=device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        flags = tuple(bool(v) for v in values.tolist())
    return flags if len(flags) > 1 else flags[0]


def all_ranks(run: Run, sums) -> torch.Tensor:
    """(loss sum, correct, clips) summed over ranks, float64 on the CPU."""
    total = torch.tensor(sums, dtype=torch.float64)
    if run.torchrun.distributed:
        device = run.device if run.device.type == "cuda" else torch.device("cpu")
        total = total.to(device)
        dist.all_reduce(total)
        total = total.cpu()
    return total


def save_position(run: Run, position: Position) -> None:
    """`last.pth` at `position` (rank 0), atomically."""
    if run.main_process:
        state = (run.model, run.optimizer, run.scheduler, run.scaler, position, run.best)
        save_training_state(
            run.result / "last.pth", *state, card=run.card, best_epoch=run.best_epoch
        )
    run.saved = position
    run.last_save = time.monotonic()


def train_step(run: Run, batch: dict) -> torch.Tensor:
    """One optimisation step on a batch; its (loss, correct clips), still on the device."""
    device, cfg = run.device, run.cfg
    clips = run.inputs(batch["clip"])
    labels = batch["label"].to(device, non_blocking=True)
    with cfg.runtime.autocast(device):
        logits = run.net(clips)
    loss = F.cross_entropy(logits.float(), labels)  # the loss in fp32, whatever the autocast
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    correct = (logits.argmax(1) == labels).sum()
    return torch.stack([loss.detach(), correct.float()])


class StepReader:
    """The steps' (loss, correct) stay on the device until `read`: one transfer for all of them,
    so that the GPU is not waited for at every step. A read writes the steps' rows to the batch
    log, updates the progress bar's figures, adds to the epoch's sums, and stops the run at a
    non-finite loss, naming the first such step and the steps read together."""

    def __init__(self, run: Run, epoch: int, lr: float, steps: int, logs: RunLogs, bar):
        self.run, self.epoch, self.lr, self.steps, self.logs, self.bar = (
            run, epoch, lr, steps, logs, bar,
        )  # fmt: skip
        self.pending: list[tuple[int, torch.Tensor, int]] = []  # (step, device values, clips)
        self.sums = [0.0, 0.0, 0.0]  # loss sum, correct, clips (this rank's, in float64)
        self.started = time.perf_counter()

    def add(self, step: int, values: torch.Tensor, n: int) -> None:
        self.pending.append((step, values, n))

    def read(self) -> None:
        if not self.pending:
            return
        values = torch.stack([v for _, v, _ in self.pending]).tolist()  # the one wait
        counts = [(i, n) for i, _, n in self.pending]
        rows = [(i, loss, c, n) for (i, n), (loss, c) in zip(counts, values, strict=True)]
        first, last = rows[0][0], rows[-1][0]
        self.pending = []
        for i, loss, _, _ in rows:
            if not math.isfinite(loss):
                run = self.run
                kept = (
                    f"The last good checkpoint is {run.result / 'last.pth'} ({run.saved.describe()})"
                    if run.saved is not None
                    else "No checkpoint was written yet"
                )
                raise TrainingError(
                    f"non-finite loss ({loss}) at epoch {self.epoch}, batch {i} (read with "
                    f"batches {first}-{last}); stopped. {kept} (lower the learning rate?)"
                )
        epoch, steps = self.epoch, self.steps
        for i, loss, correct, n in rows:
            self.sums[0] += loss * n
            self.sums[1] += correct
            self.sums[2] += n
            if self.run.main_process:
                self.logs.batch.write(
                    [epoch, i, (epoch - 1) * steps + i, loss, correct / n, self.lr]
                )
        if self.run.main_process:
            elapsed = time.perf_counter() - self.started
            loss, correct, clips = self.sums
            self.bar.set_postfix(
                loss=f"{loss / clips:.3f}",
                acc=f"{correct / clips:.3f}",
                clips_s=f"{clips * self.run.torchrun.world_size / elapsed:.1f}",
            )


def validate(run: Run, epoch: int, stop: StopSignals) -> dict:
    """Validation loss, clip accuracy and video top-1/top-5 (summed over ranks). A stop signal
    during it (one process) saves the epoch's training and stops: a resumed run validates
    again from the start, never half-counted. Ranks finish it and stop after the epoch."""
    should_stop = None if run.torchrun.distributed else (lambda: bool(stop.requested))
    val = evaluate_loader(
        run.net, run.val_loader, run.val_set, len(run.labels), run.inputs, run.cfg.runtime,
        should_stop=should_stop,
    )  # fmt: skip
    if val is None:
        save_position(run, Position(epoch, run.steps_per_epoch, run.epoch_sums))
        stop.commit()
        raise StopForSignal
    labels = torch.tensor(run.val_set.videos.labels, dtype=torch.long)  # (a mapped array)
    vm = compute_metrics(val, labels, run.labels)
    return {
        "val_loss": vm.loss,
        "val_clip_acc": vm.clip_top1,
        "val_video_top1": vm.video_top1,
        "val_video_top5": vm.video_top5,
    }


def end_epoch(run: Run, metrics: dict, logs: RunLogs) -> None:
    """Rank 0: the epoch's log rows and scalars, `last.pth` (resumable), `save_<N>.pth` every
    `checkpoint_every` epochs, `best.pth` when the score improved; then every rank waits."""
    epoch = metrics["epoch"]
    if run.main_process:
        logs.epoch(metrics)
        score = metrics.get("val_video_top1", metrics["train_acc"])
        if score > run.best:
            run.best, run.best_epoch = score, epoch
        # last.pth first: it records the best epoch, so a kill before the others are written
        # leaves what resuming needs to write them (`restore_epoch_end_files`)
        save_position(run, Position(epoch + 1))
        save_epoch_end_files(run, epoch)
        print(format_epoch(metrics))
    if run.torchrun.distributed:
        dist.barrier()
    run.saved = Position(epoch + 1)
    run.last_save = time.monotonic()


def save_epoch_end_files(run: Run, epoch: int, only_missing: bool = False) -> None:
    """`save_<epoch>.pth` when it is due and `best.pth` when `epoch` is the best; with
    `only_missing`, those a kill after `last.pth` left unwritten (saying so)."""
    state = (run.model, run.optimizer, run.scheduler, run.scaler, Position(epoch + 1), run.best)
    every = run.cfg.checkpoint_every
    due = [run.result / f"save_{epoch}.pth"] if every and epoch % every == 0 else []
    if run.best_epoch == epoch:
        due.append(run.result / "best.pth")
    for path in due:
        if only_missing and read_epoch(path) == epoch:
            continue
        resumable = path.name != "best.pth"
        save_training_state(
            path, *state, resumable=resumable, card=run.card, best_epoch=run.best_epoch
        )
        if only_missing:
            print(f"{path}: written from last.pth (epoch {epoch}; the run was cut before it)")


def restore_epoch_end_files(run: Run) -> None:
    """Resumed at an epoch's start: write the files that epoch's end should have left, if a
    kill came between them and `last.pth` (the weights are `last.pth`'s: the epoch's end)."""
    if run.begin.step or run.begin.epoch <= 1 or run.best_epoch is None:
        return
    save_epoch_end_files(run, run.begin.epoch - 1, only_missing=True)


def interrupted_message(run: Run, stop: StopSignals) -> str:
    why = f" ({stop.requested})" if stop.requested else ""
    saved = run.saved
    if saved is None:
        return (
            f"interrupted{why} before anything was saved: nothing was saved; run the same "
            "command again (with --resume auto, it starts fresh)"
        )
    path = run.result / "last.pth"
    if saved.step:
        held = f"{path} holds epoch {saved.epoch} up to step {saved.step}"
        goes_on = f"it goes on with epoch {saved.epoch} after step {saved.step}"
    else:
        held = f"{path} holds epoch {saved.epoch - 1}"
        goes_on = f"it goes on with epoch {saved.epoch}, from that epoch's start"
    return (
        f"interrupted{why} during epoch {run.epoch}: {held}. Resume with the same command and "
        f"--resume auto: {goes_on}"
    )


def finish_run(run: Run, metrics: dict) -> None:
    """The videos that could not be read, and `curves.png` (rank 0)."""
    bad = sorted(set(run.bad_videos))
    if bad:
        print(f"{len(bad)} unreadable video reads were skipped:")
        for message in bad[:20]:
            print(f"  {message}")
    curves = write_curves(run.result)
    if curves is not None:
        metrics["curves"] = str(curves)
    metrics["skipped_videos"] = bad
