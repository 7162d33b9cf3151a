"""Training: one function, `train`, that reads top to bottom; AMP, DDP and checkpoints are short
helpers. Single process, or `torchrun --nproc_per_node N -m cnn3d train ...` (DDP: NCCL on GPUs,
gloo on CPU; only rank 0 writes; metrics are summed over ranks).
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from .data.annotations import read_annotations
from .data.dataset import VideoDataset, collate_clips, worker_init
from .data.flow import check_channels
from .data.index import FolderListing, index_subset
from .data.transforms import EvalTransform, TrainTransform
from .evaluate import Accumulator, compute_metrics
from .files import atomic_write
from .models import build_model, load_model
from .models.checkpoint import CheckpointError, read_file, unwrap_state_dict
from .normalization import get_normalization
from .plots import write_curves
from .precision import amp_dtype, autocast, default_amp, precision_name  # noqa: F401


class TrainingError(RuntimeError):
    pass


class TrainingInterrupted(TrainingError):
    """Ctrl-C: what was saved and how to go on."""


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
    flip: bool = True
    normalization: str | None = None  # None: the pretrained model's, else 'kinetics'
    n_val_clips: int = 3
    batch_size: int = 32
    workers: int = 2
    skip_bad_videos: bool = False
    # model
    family: str = "resnet"
    depth: int = 18
    model_options: dict = field(default_factory=dict)
    pretrain_path: str | None = None
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
    # run
    validate: bool = True
    resume: str | None = None  # a path, or 'auto' for <result_path>/last.pth
    checkpoint_every: int = 10
    amp: bool | None = None  # None: default_amp (GPUs, and CPUs with native bf16)
    channels_last: bool = True
    sync_bn: bool = False
    freeze_bn: bool = False  # BatchNorm layers use and keep their running statistics
    tensorboard: bool = True
    progress: bool = True
    seed: int = 1
    device: str | None = None


# ------------------------------------------------------------------------------------- helpers


def setup_distributed(device: torch.device | None) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return (dist.get_rank() if world > 1 else 0), world, device


class GracefulStop:
    """The first Ctrl-C asks training to stop after the step in progress (so the loader and its
    workers shut down in order); a second one stops at once. Single-process runs only: DDP ranks
    must stop together, so there Ctrl-C stops at once."""

    def __init__(self, enabled: bool):
        import signal
        import threading

        self.requested = False
        self._previous = None
        if enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        import signal

        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def restore(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class ShardSampler(Sampler):
    """Rank r of w takes items r, r+w, ... in order: no padding, so summed metrics are exact."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class EpochSampler(Sampler):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees the same data.

    Under DDP, rank r of w takes every w-th item of the same order (padded by repeating its
    start, as DistributedSampler does, when w does not divide n): batch k of w ranks x B items
    holds exactly the items of batch k of one process with w x B, so the two runs train alike.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.epoch = n, seed, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        order += order[: len(self) * self.world - self.n]
        return iter(order[self.rank :: self.world])

    def __len__(self):
        return -(-self.n // self.world)


def freeze_before(model: torch.nn.Module, module_name: str) -> list[str]:
    """Freeze every parameter registered before the first one under `module_name` (e.g. layer4,
    fc, denseblock3); returns the frozen names. '' trains everything."""
    if not module_name:
        return []
    names = [n for n, _ in model.named_parameters()]
    tops = [n.removeprefix("features.").split(".")[0] for n in names]
    if module_name not in tops:
        raise ValueError(
            f"no module {module_name!r} in the model; top-level modules: {sorted(set(tops))}"
        )
    first = tops.index(module_name)
    frozen = names[:first]
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return frozen


def make_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int):
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
    raise ValueError(f"schedule must be multistep, plateau or cosine, not {cfg.schedule!r}")


class TSVLog:
    """The original's tab-separated logs: a header row, then one flushed row per call."""

    def __init__(self, path: Path, columns: list[str], resume: bool, begin_epoch: int = 1):
        exists = resume and path.exists()
        if exists:  # rows of epochs that will run again (an interrupted epoch) go
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = lines[:1] + [
                ln for ln in lines[1:] if ln.split("\t")[0].isdigit()
                and int(ln.split("\t")[0]) < begin_epoch
            ]  # fmt: skip
            atomic_write(path, lambda tmp: Path(tmp).write_text("".join(f"{ln}\n" for ln in kept)))
        self.file = open(path, "a" if exists else "w", encoding="utf-8")  # noqa: SIM115
        if not exists:
            self.write(columns)

    def write(self, values) -> None:
        self.file.write(
            "\t".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values) + "\n"
        )
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def save_training_state(
    path: Path, model, optimizer, scheduler, epoch: int, best: float, resumable: bool = True
) -> None:
    """A checkpoint; `resumable` adds the optimizer, scheduler and RNG state (`best.pth`, meant
    for inference and fine-tuning, leaves them out and is about half the size)."""
    from .models.checkpoint import save_model

    extra = {"epoch": epoch, "best_video_top1": best}
    if resumable:
        extra |= {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
    save_model(path, model, extra=extra)


# -------------------------------------------------------------------------------------- training


def build_training_model(cfg: TrainConfig, labels: list[str]):
    """A fresh network, or a pretrained one with a new head for `len(labels)` classes."""
    if cfg.pretrain_path:
        model = load_model(cfg.pretrain_path, **cfg.model_options)
        if model.spec.n_classes != len(labels):
            model.reset_classifier(len(labels))
        model.spec.n_classes = len(labels)
        if cfg.normalization:
            model.spec.normalization = get_normalization(cfg.normalization)
    else:
        model = build_model(cfg.family, cfg.depth, len(labels), **cfg.model_options)
        model.spec.normalization = get_normalization(cfg.normalization or "kinetics")
    model.spec.class_names = list(labels)
    model.spec.clip_length, model.spec.sample_size = cfg.clip_length, cfg.sample_size
    model.spec.t_stride = cfg.t_stride
    return model


def train(cfg: TrainConfig) -> dict:
    """Train (and validate every epoch); returns the last epoch's metrics."""
    rank, world, device = setup_distributed(torch.device(cfg.device) if cfg.device else None)
    main_process = rank == 0
    result = Path(cfg.result_path)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    annotations = read_annotations(cfg.annotation_path)
    listing = FolderListing()  # each folder listed once for both subsets
    train_videos, missing_train = index_subset(annotations, "training", cfg.video_path, listing)
    val_videos, missing_val = index_subset(annotations, "validation", cfg.video_path, listing)
    labels_list = annotations.labels
    del annotations, listing  # a Python object per video: workers must not inherit them
    if not train_videos:
        raise TrainingError(
            f"{cfg.annotation_path}: no training videos found under {cfg.video_path}"
        )
    model = build_training_model(cfg, labels_list)
    frozen = freeze_before(model, cfg.ft_begin_module)
    # every argument is checked by now: only from here on is anything written
    if main_process:
        result.mkdir(parents=True, exist_ok=True)
        used = asdict(cfg) | {
            "amp": amp_dtype(device, cfg.amp) is not None,
            "precision": precision_name(device, cfg.amp),
            "normalization": model.spec.normalization.name,
            "device": str(device),
            "world_size": world,
        }
        atomic_write(
            result / "opts.json",
            lambda tmp: Path(tmp).write_text(json.dumps(used, indent=1, default=str)),
        )
        for note in train_videos.notes + val_videos.notes:
            print(note)
    if main_process and (missing_train or missing_val):
        listed = result / "missing_videos.txt"
        atomic_write(
            listed,
            lambda tmp: Path(tmp).write_text(
                "\n".join(
                    [f"training\t{v}" for v in missing_train]
                    + [f"validation\t{v}" for v in missing_val]
                )
                + "\n"
            ),
        )
        print(
            f"{len(missing_train)} training and {len(missing_val)} validation videos of the "
            f"annotation file are not under {cfg.video_path} (left out; all named in {listed}), "
            f"e.g. {(missing_train + missing_val)[:3]}"
        )

    normalization = model.spec.normalization
    train_set = VideoDataset(
        train_videos,
        TrainTransform(
            cfg.sample_size, cfg.train_crop, cfg.flip, normalization, tuple(cfg.crop_scale)
        ),
        "train",
        cfg.clip_length,
        cfg.t_stride,
        skip_bad=cfg.skip_bad_videos,
        seed=cfg.seed,
    )
    val_set = (
        VideoDataset(
            val_videos,
            EvalTransform(cfg.sample_size, "center", normalization),
            "val",
            cfg.clip_length,
            cfg.t_stride,
            n_clips=cfg.n_val_clips,
            skip_bad=cfg.skip_bad_videos,
        )
        if cfg.validate and val_videos
        else None
    )

    train_sampler = EpochSampler(len(train_set), cfg.seed, rank, world)
    loader_options = {
        "num_workers": cfg.workers,
        "collate_fn": collate_clips,
        "worker_init_fn": worker_init,
        "pin_memory": device.type == "cuda",
    }
    # A last batch of one clip cannot train BatchNorm ("expected more than 1 value per
    # channel"): it is left out of the epoch (another clip order comes next epoch).
    per_process = len(train_sampler)
    if per_process == 1 and not cfg.freeze_bn:
        raise TrainingError(
            f"{cfg.annotation_path}: one training clip per process cannot train BatchNorm; "
            "add videos, use fewer processes, or --freeze-bn"
        )
    drop_last = per_process % cfg.batch_size == 1 and not cfg.freeze_bn
    train_loader = DataLoader(
        train_set, cfg.batch_size, sampler=train_sampler, drop_last=drop_last, **loader_options
    )
    val_loader = (
        DataLoader(
            val_set,
            cfg.batch_size,
            sampler=ShardSampler(len(val_set), rank, world),
            **loader_options,
        )
        if val_set
        else None
    )

    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        trainable,
        lr=cfg.lr,
        momentum=cfg.momentum,
        dampening=0.0 if cfg.nesterov else cfg.dampening,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )
    scheduler = make_scheduler(cfg, optimizer, len(train_loader))
    # fp16 (GPUs without bf16) needs loss scaling; for bf16 and fp32 the scaler does nothing.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype(device, cfg.amp) == torch.float16)

    begin_epoch, best = 1, -1.0
    resume_path = (
        result / "last.pth" if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    )
    if resume_path is not None and (cfg.resume != "auto" or resume_path.exists()):
        begin_epoch, best = resume_from(resume_path, model, optimizer, scheduler, cfg, device)
        if main_process:
            print(f"resumed from {resume_path} at epoch {begin_epoch}")
    elif cfg.resume == "auto" and main_process:
        print(f"--resume auto: nothing to resume ({resume_path} does not exist); starting fresh")
    if main_process:
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"training {model.spec.arch} ({n_params / 1e6:.2f} M parameters, "
            f"{len(labels_list)} classes) on {len(train_videos)} training and "
            f"{len(val_videos) if val_set else 0} validation videos\n"
            f"  device {device} x {world} process(es), {precision_name(device, cfg.amp)}, "
            f"{'channels_last_3d' if cfg.channels_last else 'contiguous'} memory format, "
            f"{cfg.normalization or model.spec.normalization.name} input\n"
            f"  batch {cfg.batch_size} per process, {len(train_loader)} steps per epoch"
            + (" (the last clip of each epoch left out: a batch of one)" if drop_last else "")
            + f", epochs {begin_epoch}..{cfg.epochs}\n  results in {result}"
        )

    net = model
    if world > 1:
        if cfg.sync_bn:
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )

    logs = {}
    if main_process:
        logs["train"] = TSVLog(
            result / "train.log", ["epoch", "loss", "acc", "lr"], begin_epoch > 1, begin_epoch
        )
        logs["batch"] = TSVLog(
            result / "train_batch.log",
            ["epoch", "batch", "iter", "loss", "acc", "lr"],
            begin_epoch > 1,
            begin_epoch,
        )
        logs["val"] = TSVLog(
            result / "val.log",
            ["epoch", "loss", "acc", "video_acc", "video_top5"],
            begin_epoch > 1,
            begin_epoch,
        )
        if frozen:
            print(f"fine-tuning from {cfg.ft_begin_module}: {len(frozen)} parameter tensors frozen")
    writer = make_writer(result, begin_epoch) if main_process and cfg.tensorboard else None

    # Whatever Python objects exist now stay out of the garbage collector's passes, which would
    # otherwise write to (and so copy) their pages in every forked DataLoader worker.
    gc.collect()
    gc.freeze()
    metrics: dict = {}
    bad_videos: list[str] = list(val_set.failed) if val_set else []
    finished = begin_epoch - 1  # the last epoch whose checkpoint is written
    stop = GracefulStop(enabled=world == 1)
    try:
        for epoch in range(begin_epoch, cfg.epochs + 1):
            train_set.set_epoch(epoch)
            train_sampler.set_epoch(epoch)
            lr = max(g["lr"] for g in optimizer.param_groups)
            net.train()
            if cfg.freeze_bn:  # BatchNorm keeps its running statistics (DDP-exact on the CPU)
                for module in model.modules():
                    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                        module.eval()
            sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
            start_time = time.perf_counter()
            bar = progress_bar(
                len(train_loader), f"epoch {epoch}/{cfg.epochs}", main_process and cfg.progress
            )
            batches = iter(train_loader)
            for i, batch in enumerate(batches, start=1):
                if stop.requested:
                    break
                bad_videos += batch["failed"]
                if batch["clip"] is None:
                    continue
                clips = batch["clip"].to(device, non_blocking=True)
                _check_channels(clips, model, train_set, batch)
                if cfg.channels_last:
                    clips = clips.contiguous(memory_format=torch.channels_last_3d)
                labels = batch["label"].to(device, non_blocking=True)
                with autocast(device, cfg.amp):
                    logits = net(clips)
                loss = F.cross_entropy(logits.float(), labels)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"non-finite loss ({loss.item()}) at epoch {epoch}, batch {i}; stopped. The "
                        f"last good checkpoint is {result / 'last.pth'} (lower the learning rate?)"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                correct = (logits.argmax(1) == labels).sum().item()
                n = len(labels)
                sums += torch.tensor([loss.item() * n, correct, n], dtype=torch.float64)
                if main_process:
                    step = (epoch - 1) * len(train_loader) + i
                    logs["batch"].write([epoch, i, step, loss.item(), correct / n, lr])
                    elapsed = time.perf_counter() - start_time
                    bar.set_postfix(
                        loss=f"{sums[0] / sums[2]:.3f}",
                        acc=f"{sums[1] / sums[2]:.3f}",
                        clips_s=f"{sums[2] * world / elapsed:.1f}",
                    )
                    bar.update()
            bar.close()
            batches = None  # its workers stop here
            train_set.close()
            if stop.requested:
                raise KeyboardInterrupt
            if world > 1:
                dist.all_reduce(sums)
            train_loss, train_acc = (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()
            metrics = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "lr": lr}

            if val_loader is not None:
                val = evaluate_loader(net, val_loader, val_set, len(labels_list), device, cfg)
                vm = compute_metrics(
                    val, torch.from_numpy(val_set.videos.labels).long(), labels_list
                )
                metrics.update(
                    val_loss=vm.loss,
                    val_clip_acc=vm.clip_top1,
                    val_video_top1=vm.video_top1,
                    val_video_top5=vm.video_top5,
                )
            if cfg.schedule == "plateau":
                scheduler.step(metrics.get("val_loss", train_loss))
            else:
                scheduler.step()

            if main_process:
                logs["train"].write([epoch, train_loss, train_acc, lr])
                if val_loader is not None:
                    logs["val"].write([epoch, vm.loss, vm.clip_top1, vm.video_top1, vm.video_top5])
                if writer:
                    for key, value in metrics.items():
                        if key != "epoch":
                            writer.add_scalar(key.replace("_", "/", 1), value, epoch)
                    writer.flush()
                score = metrics.get("val_video_top1", train_acc)
                improved = score > best
                best = max(best, score)
                save_training_state(result / "last.pth", model, optimizer, scheduler, epoch, best)
                if cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0:
                    save_training_state(
                        result / f"save_{epoch}.pth", model, optimizer, scheduler, epoch, best
                    )
                if improved:
                    save_training_state(
                        result / "best.pth", model, optimizer, scheduler, epoch, best, False
                    )
                print(format_epoch(metrics))
            if world > 1:
                dist.barrier()
            finished = epoch
    except KeyboardInterrupt:
        # Ctrl-C: the workers ignore it (see worker_init); they were stopped with their loader
        stop.restore()
        for log in logs.values():
            log.close()
        if writer:
            writer.close()
        if finished >= 1:
            saved = f"{result / 'last.pth'} holds epoch {finished}"
        else:
            saved = "nothing was saved (no epoch had finished)"
        raise TrainingInterrupted(
            f"interrupted during epoch {finished + 1}: {saved}. Resume with the same command "
            "and --resume auto" + (" (it re-runs that epoch)" if finished >= 1 else "")
        ) from None
    finally:
        stop.restore()

    stop.restore()
    if main_process:
        for log in logs.values():
            log.close()
        if writer:
            writer.close()
        if bad_videos:
            print(f"{len(bad_videos)} unreadable video reads were skipped:")
            for message in sorted(set(bad_videos))[:20]:
                print(f"  {message}")
        curves = write_curves(result)
        if curves is not None:
            metrics["curves"] = str(curves)
        metrics["skipped_videos"] = sorted(set(bad_videos))
    gc.unfreeze()
    return metrics


def _check_channels(clips: torch.Tensor, model, dataset, batch) -> None:
    try:
        check_channels(clips, model, dataset.videos.path(int(batch["video"][0])))
    except ValueError as error:
        raise TrainingError(str(error)) from None


def evaluate_loader(net, loader, dataset, n_classes, device, cfg) -> Accumulator:
    """Scores of every clip in `loader`, summed per video and over ranks."""
    acc = Accumulator(len(dataset.videos), n_classes)
    net.eval()
    with torch.inference_mode():
        for batch in loader:
            dataset.failed += batch["failed"]
            if batch["clip"] is None:
                continue
            clips = batch["clip"].to(device)
            check_channels(clips, net, dataset.videos.path(int(batch["video"][0])))
            if cfg.channels_last:
                clips = clips.contiguous(memory_format=torch.channels_last_3d)
            with autocast(device, cfg.amp):
                logits = net(clips)
            acc.add(logits, batch["label"], batch["video"])
    dataset.close()
    acc.all_reduce()
    return acc


def resume_from(
    path: Path, model, optimizer, scheduler, cfg: TrainConfig, device
) -> tuple[int, float]:
    obj = read_file(path, map_location=device)
    state = unwrap_state_dict(obj, path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: does not fit this model: {str(error).splitlines()[0]}"
        ) from None
    if "optimizer" in obj and obj["optimizer"]:
        optimizer.load_state_dict(obj["optimizer"])
    if "scheduler" in obj and obj["scheduler"]:
        scheduler.load_state_dict(obj["scheduler"])
    if "torch_rng" in obj:
        torch.set_rng_state(obj["torch_rng"].cpu())
    # cnn3d and the 2020 code store the epoch just finished
    return int(obj.get("epoch", 0)) + 1, float(obj.get("best_video_top1", -1.0))


def make_writer(result: Path, begin_epoch: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed: no TensorBoard scalars")
        return None
    return SummaryWriter(log_dir=str(result / "tensorboard"), purge_step=begin_epoch)


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled, leave=False)


def format_epoch(m: dict) -> str:
    text = f"epoch {m['epoch']}: train loss {m['train_loss']:.4f} clip acc {m['train_acc']:.3f} lr {m['lr']:.3g}"
    if "val_loss" in m:
        text += (
            f" | val loss {m['val_loss']:.4f} clip acc {m['val_clip_acc']:.3f} "
            f"video top-1 {m['val_video_top1']:.3f} top-5 {m['val_video_top5']:.3f}"
        )
    return text
