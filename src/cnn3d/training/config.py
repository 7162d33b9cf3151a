"""The settings of a training run (`TrainConfig`), frozen: what `train` is given."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..normalization import Normalization
from ..runtime import RuntimeConfig
from ..signals import STOP_SIGNALS


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
