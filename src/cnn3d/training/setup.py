"""A run's setup: the process group and device, the model (pretrained, fine-tuned), the
optimizer and schedule, the data, the state resumed from, and what is written at the start
(`opts.json`, the card, the summary): every argument checked before anything is written."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .. import __version__
from ..data.dataset import clip_loader
from ..data.network_input import NetworkInput
from ..data.samplers import EpochSampler, ShardSampler
from ..data.sources import open_source
from ..errors import TrainingError, UsageError
from ..files import atomic_write
from ..models import build_model, check_input_channels, load_model
from ..models.zoo import FAMILIES, canonical_family
from ..normalization import Normalization, get_normalization
from ..runtime import RuntimeConfig, Torchrun, prepare_device
from .config import TrainConfig
from .data import index_data, make_datasets, publish_index
from .epoch_files import restore_epoch_end_files
from .logs import write_missing
from .resume import resume_if_asked
from .run import Run


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
    if cfg.lr_scheduler == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
    if cfg.lr_scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, "min", factor=cfg.gamma, patience=cfg.plateau_patience
        )
    if cfg.lr_scheduler == "cosine":  # per-epoch cosine with linear warm-up

        def factor(epoch: int) -> float:
            if epoch < cfg.warmup_epochs:
                return (epoch + 1) / (cfg.warmup_epochs + 1)
            progress = (epoch - cfg.warmup_epochs) / max(1, cfg.n_epochs - cfg.warmup_epochs)
            return 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise UsageError(f"schedule must be multistep, plateau or cosine, not {cfg.lr_scheduler!r}")


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
        family = canonical_family(cfg.model or "resnet")
        depth = cfg.model_depth or FAMILIES[family].default_depth
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
    if cfg.model is not None and canonical_family(cfg.model) != spec.family:
        raise UsageError(
            f"--model {cfg.model}, but {path} holds a {spec.arch}: leave --model out (the "
            "checkpoint decides) or give a checkpoint of that family"
        )
    if cfg.model_depth is not None and cfg.model_depth != spec.depth:
        raise UsageError(
            f"--model_depth {cfg.model_depth}, but {path} holds a {spec.arch}: leave --model_depth "
            "out (the checkpoint decides) or give a checkpoint of that depth"
        )
    if cfg.n_pretrain_classes is not None and cfg.n_pretrain_classes != spec.n_classes:
        raise UsageError(
            f"--n_pretrain_classes {cfg.n_pretrain_classes}, but {path} predicts "
            f"{spec.n_classes} classes"
        )


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
        "epochs_planned": cfg.n_epochs,
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
        + f", epochs {run.begin_epoch}..{cfg.n_epochs}\n  results in {run.result}"
    )
