"""The settings of a training run, declared once: each field of `TrainConfig` is the option of
`cnn3d train` of the same name (`--lr` is `lr`, `--n-epochs` is `n_epochs`), with its flags
(the original's spellings as aliases), type, default and help in the field's metadata. The
parser is built from these fields (`cli/train.py`), a config file's keys and `opts.json` use the
same names, and so does the same-run check. A new option is one field here.

Torch-free, so that `cnn3d train --help` answers at once."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

from ..normalization import Normalization
from ..signals import STOP_SIGNALS
from ..values import (
    depth,
    device,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed,
    unit_interval,
)

# the option groups of `cnn3d train --help`, in order
GROUPS = ("data", "model", "optimisation", "run")


@dataclass(frozen=True)
class Option:
    """How a field is given on the command line: its flags (the canonical one first), its help
    and group, and argparse's type, choices, nargs and metavar; `switch`: `--x/--no-x`."""

    flags: tuple[str, ...]
    help: str
    group: str
    switch: bool = False
    argparse: tuple[tuple[str, object], ...] = ()


def option(default, *flags: str, help: str, group: str, switch: bool = False, **argparse):
    """A field that is an option of `cnn3d train` (`default` MISSING: required)."""
    meta = {"option": Option(flags, help, group, switch, tuple(argparse.items()))}
    return field(default=default, metadata=meta)


def in_data(default, *flags, help, **kw):
    return option(default, *flags, help=help, group="data", **kw)


def in_model(default, *flags, help, **kw):
    return option(default, *flags, help=help, group="model", **kw)


def in_optimisation(default, *flags, help, **kw):
    return option(default, *flags, help=help, group="optimisation", **kw)


def in_run(default, *flags, help, **kw):
    return option(default, *flags, help=help, group="run", **kw)


@dataclass(frozen=True)
class TrainConfig:
    # data
    video_path: str = in_data(
        MISSING,
        "--video-path",
        "--video_path",
        help="root of the videos (files, frame folders or HDF5)",
    )
    annotation_path: str = in_data(
        MISSING,
        "--annotation-path",
        "--annotation_path",
        help="the annotation JSON (`cnn3d prepare ...`)",
    )
    result_path: str = in_data(
        MISSING,
        "--result-path",
        "--result_path",
        help="folder for logs, checkpoints and plots (made if missing)",
    )
    n_classes: int | None = in_data(
        None,
        "--n-classes",
        "--n_classes",
        type=positive_int,
        help="if given, checked against the annotation file, which decides (default: the "
        "annotation file's)",
    )
    clip_length: int = in_data(
        16, "--clip-length", "--sample_duration", type=positive_int, help="frames per clip"
    )
    sample_size: int = in_data(
        112,
        "--sample-size",
        "--sample_size",
        type=positive_int,
        help="clip height and width in pixels",
    )
    t_stride: int = in_data(
        1,
        "--t-stride",
        "--sample_t_stride",
        type=positive_int,
        help="take every N-th frame within a clip",
    )
    train_crop: str = in_data(
        "corner",
        "--train-crop",
        "--train_crop",
        choices=("corner", "random", "multiscale_random", "center"),
        help="corner: the paper's multi-scale corner crop; random: the 2020 code's random "
        "resized crop",
    )
    crop_scale: tuple[float, float] = in_data(
        (0.25, 1.0),
        "--crop-scale",
        type=positive_float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="area fractions of the `random` train crop",
    )
    # aspect ratios of the `random` crop (the original's --train_crop_min_ratio)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    # where a training clip starts: random, or the centre (the original's --train_t_crop)
    temporal_crop: str = "random"
    flip: bool = in_data(True, "--flip", switch=True, help="random horizontal flip")
    # a preset name or a Normalization; None: the pretrained model's, else 'kinetics'
    normalization: str | Normalization | None = in_data(
        None,
        "--normalization",
        "--mean_dataset",
        choices=("hara2018", "kinetics", "activitynet", "0.5", "torchvision"),
        help="input preset (default: the pretrained model's, else kinetics)",
    )
    n_val_clips: int = in_data(
        3,
        "--n-val-clips",
        "--n_val_samples",
        type=positive_int,
        help="evenly spaced clips per validation video",
    )
    batch_size: int = in_data(
        32,
        "--batch-size",
        "--batch_size",
        type=positive_int,
        help="clips per step (per process under DDP)",
    )
    workers: int = in_data(
        2,
        "--workers",
        "--n_threads",
        type=non_negative_int,
        help="DataLoader worker processes (per process); they live for the whole run",
    )
    prefetch: int = in_data(
        2, "--prefetch", type=positive_int, help="batches each worker prepares ahead"
    )
    skip_bad_videos: bool = in_data(
        False,
        "--skip-bad-videos",
        switch=True,
        help="count and list unreadable videos instead of stopping",
    )
    # model
    model: str | None = in_model(
        None,
        "--model",
        help="family (`cnn3d models` lists each with its depths): resnet, preresnet, "
        "wideresnet, resnext, densenet, resnet2p1d, mc3, c3d, s3d, i3d, x3d, i3d_nl, slow, c2d, "
        "i3d_r, csn, r2plus1d_r, slowfast (or an alias: r3d, preact, wrn, r2p1d) (default: resnet, or the "
        "pretrained model's; given "
        "with --pretrain-path, it must be that one)",
    )
    model_depth: int | str | None = in_model(
        None,
        "--model-depth",
        "--model_depth",
        type=depth,
        help="depth (`cnn3d models` lists each family's) (default: the family's, 18 for the "
        "ResNets, or the pretrained "
        "model's; given with --pretrain-path, it must be that one)",
    )
    # the family's options (n_input_channels, shortcut, widen_factor...): `cli/train.py`
    model_options: dict = field(default_factory=dict)
    pretrain_path: str | None = in_model(
        None,
        "--pretrain-path",
        "--pretrain_path",
        help="checkpoint to fine-tune from (any supported format) (default: none, train from "
        "scratch)",
    )
    n_pretrain_classes: int | None = None  # if given, must be the pretrained model's
    ft_begin_module: str = in_model(
        "",
        "--ft-begin-module",
        "--ft_begin_module",
        help="train from this module on (conv1, layer1..4, fc, denseblockN...); empty: train "
        "everything",
    )
    # optimisation
    lr: float = in_optimisation(
        0.1, "--lr", "--learning_rate", type=positive_float, help="initial learning rate"
    )
    momentum: float = in_optimisation(
        0.9, "--momentum", type=fraction, help="SGD momentum, in [0, 1)"
    )
    dampening: float = in_optimisation(
        0.0,
        "--dampening",
        type=unit_interval,
        help="SGD dampening, in [0, 1] (0.9 in the 2018 code)",
    )
    weight_decay: float = in_optimisation(
        1e-3,
        "--weight-decay",
        "--weight_decay",
        type=non_negative_float,
        help="L2 weight decay",
    )
    nesterov: bool = in_optimisation(
        False, "--nesterov", action="store_true", help="Nesterov momentum"
    )
    lr_scheduler: str = in_optimisation(
        "multistep",
        "--lr-scheduler",
        "--lr_scheduler",
        choices=("multistep", "plateau", "cosine"),
        help="multistep: x0.1 at each milestone; plateau: x0.1 when the val loss stops "
        "improving; cosine: per-epoch cosine after --warmup-epochs",
    )
    milestones: tuple[int, ...] = in_optimisation(
        (50, 100, 150),
        "--milestones",
        "--multistep_milestones",
        type=positive_int,
        nargs="+",
        help="epochs after which multistep cuts the rate",
    )
    gamma: float = in_optimisation(
        0.1,
        "--gamma",
        type=positive_float,
        help="what multistep and plateau multiply the rate by at each cut",
    )
    plateau_patience: int = in_optimisation(
        10,
        "--plateau-patience",
        "--plateau_patience",
        "--lr_patience",
        type=non_negative_int,
        help="epochs without improvement before plateau cuts the rate",
    )
    warmup_epochs: int = in_optimisation(
        0,
        "--warmup-epochs",
        type=non_negative_int,
        help="linear warm-up epochs of the cosine schedule",
    )
    n_epochs: int = in_optimisation(
        200, "--n-epochs", "--n_epochs", "--epochs", type=positive_int, help="epochs to train"
    )
    # on resume, the milestones given replace the saved ones (the original's
    # --overwrite_milestones)
    overwrite_milestones: bool = False
    # run
    val: bool = in_run(True, "--val", switch=True, help="validate every epoch")
    resume: str | None = in_run(
        None,
        "--resume",
        "--resume_path",
        help="a checkpoint, or 'auto' (<result>/last.pth if there is one) (default: start fresh)",
    )
    checkpoint_every: int = in_run(
        10,
        "--checkpoint-every",
        "--checkpoint",
        type=non_negative_int,
        help="also keep save_<N>.pth every N epochs (0: never; --checkpoint is the original's "
        "spelling)",
    )
    save_every: float = in_run(
        10.0,
        "--save-every",
        type=non_negative_float,
        help="minutes between mid-epoch checkpoints to last.pth, which resume exactly from "
        "that step (0: only at epoch ends and stop signals)",
    )
    save_every_steps: int = in_run(
        0,
        "--save-every-steps",
        type=non_negative_int,
        help="also a mid-epoch checkpoint every N steps (0: not by steps)",
    )
    stop_signals: tuple[str, ...] = in_run(
        STOP_SIGNALS,
        "--stop-signals",
        nargs="*",
        choices=STOP_SIGNALS,
        help="signals that checkpoint after the step in progress and stop (exit 128 + the "
        "signal's number); a second one stops at once",
    )
    index_cache: str = in_run(
        "auto",
        "--index-cache",
        metavar="PATH|none",
        help="keep the built video index (ids, labels, resolved paths, frame counts) in this "
        "file, which restarts and every rank map instead of parsing the annotation file again; "
        "rebuilt when the annotation file or a video folder changes; a file that is not an "
        "index is never replaced (default: <result-path>/video_index.cache)",
    )
    requeue: bool = in_run(
        False,
        "--requeue",
        switch=True,
        help="after a stop signal and its checkpoint, ask SLURM to requeue the job (scontrol "
        "requeue $SLURM_JOB_ID) while SLURM still reports it RUNNING (said so where there is "
        "no SLURM)",
    )
    amp: bool | None = in_run(
        None,
        "--amp",
        switch=True,
        help="bf16 autocast (fp16 with loss scaling on GPUs without bf16); default: on for GPUs "
        "and for CPUs with native bf16 (AVX512-BF16/AMX), off elsewhere",
    )
    channels_last: bool = in_run(
        True, "--channels-last", switch=True, help="channels_last_3d memory format"
    )
    compile: bool = in_run(
        False,
        "--compile",
        switch=True,
        help="torch.compile (inductor) the training network: compiled during the first steps",
    )
    log_every: int | None = in_run(
        None,
        "--log-every",
        type=positive_int,
        help="steps between reads of the loss and accuracy from the device (the batch log, the "
        "progress bar's figures and the non-finite loss check come with each read; default: "
        "20 on GPUs, every step on the CPU, where a read waits for nothing)",
    )
    sync_bn: bool = in_run(
        False, "--sync-bn", switch=True, help="SyncBatchNorm under DDP (GPUs only)"
    )
    freeze_bn: bool = in_run(
        False,
        "--freeze-bn",
        switch=True,
        help="BatchNorm layers use and keep their running statistics while training (for small "
        "per-GPU batches, and for DDP on CPUs, where SyncBatchNorm is not available)",
    )
    tensorboard: bool = in_run(
        True, "--tensorboard", switch=True, help="TensorBoard scalars in <result>/tensorboard"
    )
    progress: bool = in_run(True, "--progress", switch=True, help="progress bar")
    seed: int = in_run(
        1,
        "--seed",
        "--manual_seed",
        type=seed,
        help="seed of the model's initialisation and the data order",
    )
    device: str | None = in_run(
        None,
        "--device",
        type=device,
        help="cpu, cuda, cuda:1 (default: cuda if available, else cpu)",
    )
    # the command's options as given (option name -> value), recorded in opts.json so that it
    # starts the same run again (`--config`); empty for runs started from Python
    options: tuple[tuple[str, object], ...] = ()
    recipe: str | None = None  # the recipe the run follows (`--recipe`), for its card

    @property
    def runtime(self):
        """Where and how the network runs (`runtime.RuntimeConfig`)."""
        from ..runtime import RuntimeConfig

        return RuntimeConfig(self.device, self.amp, self.channels_last, self.compile)


def options() -> list[tuple[str, Option, object]]:
    """(field name, how it is given, its default: MISSING if required) of every option."""
    return [
        (f.name, f.metadata["option"], f.default)
        for f in fields(TrainConfig)
        if "option" in f.metadata
    ]


def option_name(name: str) -> str:
    """The canonical flag of a setting (`model_depth` -> `--model-depth`); the process count and
    other settings that are no option by their own name."""
    found = {n: o.flags[0] for n, o, _ in options()}
    return found.get(name, "the process count" if name == "world_size" else name)


# what `opts.json` files written before the one vocabulary call these settings
OLD_NAMES = {
    "family": "model", "depth": "model_depth", "epochs": "n_epochs",
    "schedule": "lr_scheduler", "validate": "val",
}  # fmt: skip
