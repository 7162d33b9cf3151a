"""`cnn3d train`: train or fine-tune a 3D CNN (single process, or DDP under torchrun)."""

from __future__ import annotations

import os

from ..errors import UsageError
from . import checks, original
from .common import (
    add_clip_shape,
    add_config_options,
    add_parser,
    device,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    recorded_options,
    seed,
    switch,
    unit_interval,
)

# the model zoo's families (`models.zoo.FAMILIES`; a test keeps the two equal), named here so
# that `--help` does not import torch
FAMILIES = ("resnet", "preresnet", "wideresnet", "resnext", "densenet", "resnet2p1d")


def add(sub) -> None:
    p = add_parser(sub, "train", "train or fine-tune a 3D CNN (torchrun for DDP)")
    add_options(p)
    add_config_options(p, "training options")
    p.set_defaults(run=run)


def add_options(p) -> None:
    """Every training option (`train`, and `reproduce`, which trains first)."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--video-path",
        "--video_path",
        required=True,
        help="root of the videos (files, frame folders or HDF5)",
    )
    g.add_argument(
        "--annotation-path",
        "--annotation_path",
        required=True,
        help="the annotation JSON (`cnn3d prepare ...`)",
    )
    g.add_argument(
        "--result-path",
        "--result_path",
        required=True,
        help="folder for logs, checkpoints and plots (made if missing)",
    )
    g.add_argument(
        "--dataset",
        default=None,
        help="accepted for old command lines; the annotation file says what the data is "
        "(default: not needed)",
    )
    g.add_argument(
        "--n-classes",
        "--n_classes",
        type=positive_int,
        default=None,
        help="if given, checked against the annotation file, which decides (default: the "
        "annotation file's)",
    )
    add_clip_shape(g)
    g.add_argument(
        "--t-stride",
        "--sample_t_stride",
        type=positive_int,
        default=1,
        help="take every N-th frame within a clip",
    )
    g.add_argument(
        "--train-crop",
        "--train_crop",
        default="corner",
        choices=["corner", "random", "multiscale_random", "center"],
        help="corner: the paper's multi-scale corner crop; random: the 2020 code's "
        "random resized crop",
    )
    g.add_argument(
        "--crop-scale",
        type=positive_float,
        nargs=2,
        default=(0.25, 1.0),
        metavar=("MIN", "MAX"),
        help="area fractions of the `random` train crop",
    )
    switch(g, "flip", True, "random horizontal flip")
    g.add_argument(
        "--normalization",
        "--mean_dataset",
        default=None,
        choices=["hara2018", "kinetics", "activitynet", "0.5", "torchvision"],
        help="input preset (default: the pretrained model's, else kinetics)",
    )
    g.add_argument(
        "--n-val-clips",
        "--n_val_samples",
        type=positive_int,
        default=3,
        help="evenly spaced clips per validation video",
    )
    g.add_argument(
        "--batch-size",
        "--batch_size",
        type=positive_int,
        default=32,
        help="clips per step (per process under DDP)",
    )
    g.add_argument(
        "--workers",
        "--n_threads",
        type=non_negative_int,
        default=2,
        help="DataLoader worker processes (per process); they live for the whole run",
    )
    g.add_argument(
        "--prefetch",
        type=positive_int,
        default=2,
        help="batches each worker prepares ahead",
    )
    switch(g, "skip-bad-videos", False, "count and list unreadable videos instead of stopping")
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=None,
        help=f"family: {', '.join(FAMILIES)} (or an alias: r3d, preact, wrn, r2p1d) (default: "
        "resnet, or the pretrained model's; given with --pretrain-path, it must be that one)",
    )
    g.add_argument(
        "--model-depth",
        "--model_depth",
        type=positive_int,
        default=None,
        help="depth (`cnn3d models` lists each family's) (default: 18, or the pretrained "
        "model's; given with --pretrain-path, it must be that one)",
    )
    g.add_argument(
        "--n-input-channels",
        "--n_input_channels",
        type=positive_int,
        help="input channels (default: 3 for RGB, 2 for flow: --input sets it)",
    )
    g.add_argument(
        "--input",
        "--input_type",
        choices=["rgb", "flow"],
        default="rgb",
        help="flow: two-channel optical flow (flow_x_/x_ JPEG folders or the original's "
        "video_u/video_v HDF5), the preset's first two mean/std values",
    )
    g.add_argument(
        "--conv1-t-size",
        "--conv1_t_size",
        type=positive_int,
        help="temporal kernel of the first conv (default: 7, as in the 2020 code)",
    )
    g.add_argument(
        "--conv1-t-stride",
        "--conv1_t_stride",
        type=positive_int,
        help="temporal stride of the first conv (default: 1)",
    )
    g.add_argument(
        "--no-max-pool",
        "--no_max_pool",
        action="store_true",
        help="no max-pool after the first conv",
    )
    g.add_argument(
        "--shortcut",
        "--resnet_shortcut",
        choices=["A", "B"],
        help="A: zero-padded identity (2018 ResNet-18/34); B: 1x1x1 conv (default: B, or the "
        "pretrained model's)",
    )
    g.add_argument(
        "--widen-factor",
        "--resnet_widen_factor",
        "--wide_resnet_k",
        type=positive_float,
        help="width multiplier (Wide ResNet's k) (default: 1; Wide ResNet 2)",
    )
    g.add_argument(
        "--cardinality",
        "--resnext_cardinality",
        type=positive_int,
        help="ResNeXt groups (default: 32)",
    )
    g.add_argument(
        "--stem-width",
        type=positive_int,
        help="first conv's width (default: the first stage's, as in the 2020 code; the 2018 "
        "ResNeXt and Wide ResNet files use 64)",
    )
    g.add_argument(
        "--pretrain-path",
        "--pretrain_path",
        help="checkpoint to fine-tune from (any supported format) (default: none, train from "
        "scratch)",
    )
    g.add_argument(
        "--ft-begin-module",
        "--ft_begin_module",
        default="",
        help="train from this module on (conv1, layer1..4, fc, denseblockN...); "
        "empty: train everything",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--lr", "--learning_rate", type=positive_float, default=0.1, help="initial learning rate"
    )
    g.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum, in [0, 1)")
    g.add_argument(
        "--dampening",
        type=unit_interval,
        default=0.0,
        help="SGD dampening, in [0, 1] (0.9 in the 2018 code)",
    )
    g.add_argument(
        "--weight-decay",
        "--weight_decay",
        type=non_negative_float,
        default=1e-3,
        help="L2 weight decay",
    )
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    g.add_argument(
        "--lr-scheduler",
        "--lr_scheduler",
        default="multistep",
        choices=["multistep", "plateau", "cosine"],
        help="multistep: x0.1 at each milestone; plateau: x0.1 when the val loss "
        "stops improving; cosine: per-epoch cosine after --warmup-epochs",
    )
    g.add_argument(
        "--milestones",
        "--multistep_milestones",
        type=positive_int,
        nargs="+",
        default=[50, 100, 150],
        help="epochs after which multistep cuts the rate",
    )
    g.add_argument(
        "--plateau-patience",
        "--plateau_patience",
        "--lr_patience",
        type=non_negative_int,
        default=10,
        help="epochs without improvement before plateau cuts the rate",
    )
    g.add_argument(
        "--warmup-epochs",
        type=non_negative_int,
        default=0,
        help="linear warm-up epochs of the cosine schedule",
    )
    g.add_argument(
        "--n-epochs",
        "--n_epochs",
        "--epochs",
        type=positive_int,
        default=200,
        help="epochs to train",
    )
    g = p.add_argument_group("run")
    switch(g, "val", True, "validate every epoch")
    g.add_argument(
        "--resume",
        "--resume_path",
        help="a checkpoint, or 'auto' (<result>/last.pth if there is one) (default: start fresh)",
    )
    g.add_argument(
        "--checkpoint",
        type=non_negative_int,
        default=10,
        help="also keep save_<N>.pth every N epochs (0: never)",
    )
    g.add_argument(
        "--save-every",
        type=non_negative_float,
        default=10.0,
        help="minutes between mid-epoch checkpoints to last.pth, which resume exactly from "
        "that step (0: only at epoch ends and stop signals)",
    )
    g.add_argument(
        "--save-every-steps",
        type=non_negative_int,
        default=0,
        help="also a mid-epoch checkpoint every N steps (0: not by steps)",
    )
    g.add_argument(
        "--stop-signals",
        nargs="*",
        choices=("SIGINT", "SIGTERM", "SIGUSR1"),
        default=["SIGINT", "SIGTERM", "SIGUSR1"],
        help="signals that checkpoint after the step in progress and stop (exit 128 + the "
        "signal's number); a second one stops at once",
    )
    g.add_argument(
        "--index-cache",
        default="auto",
        metavar="PATH|none",
        help="keep the built video index (ids, labels, resolved paths, frame counts) in this "
        "file, which restarts and every rank map instead of parsing the annotation file again; "
        "rebuilt when the annotation file or a video folder changes (default: "
        "<result-path>/video_index.cache)",
    )
    switch(
        g,
        "requeue",
        False,
        "after a stop signal and its checkpoint, ask SLURM to requeue the job (scontrol "
        "requeue $SLURM_JOB_ID; said so where there is no SLURM)",
    )
    switch(
        g,
        "amp",
        None,
        "bf16 autocast (fp16 with loss scaling on GPUs without bf16); default: on for GPUs "
        "and for CPUs with native bf16 (AVX512-BF16/AMX), off elsewhere",
    )
    switch(g, "channels-last", True, "channels_last_3d memory format")
    switch(
        g,
        "compile",
        False,
        "torch.compile (inductor) the training network: compiled during the first steps",
    )
    g.add_argument(
        "--log-every",
        type=positive_int,
        default=None,
        help="steps between reads of the loss and accuracy from the device (the batch log, "
        "the progress bar's figures and the non-finite loss check come with each read; "
        "default: 20 on GPUs, every step on the CPU, where a read waits for nothing)",
    )
    switch(g, "sync-bn", False, "SyncBatchNorm under DDP (GPUs only)")
    switch(
        g,
        "freeze-bn",
        False,
        "BatchNorm layers use and keep their running statistics while training (for small "
        "per-GPU batches, and for DDP on CPUs, where SyncBatchNorm is not available)",
    )
    switch(g, "tensorboard", True, "TensorBoard scalars in <result>/tensorboard")
    switch(g, "progress", True, "progress bar")
    g.add_argument(
        "--seed",
        "--manual_seed",
        type=seed,
        default=1,
        help="seed of the model's initialisation and the data order",
    )
    g.add_argument(
        "--device", type=device, help="cpu, cuda, cuda:1 (default: cuda if available, else cpu)"
    )
    original.add_train(p)


def train_config_from_args(args):
    """The frozen training settings of the parsed options, the original's included."""
    from ..normalization import original_normalization
    from ..training.config import TrainConfig

    options = {}
    for name in (
        "n_input_channels",
        "conv1_t_size",
        "conv1_t_stride",
        "shortcut",
        "widen_factor",
        "cardinality",
        "stem_width",
    ):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.no_max_pool:
        options["no_max_pool"] = True
    if args.input == "flow":
        options.setdefault("n_input_channels", 2)
    paths = {
        name: rooted(args.root_path, getattr(args, name))
        for name in ("video_path", "annotation_path", "result_path", "resume", "pretrain_path")
    }
    if paths["resume"] is not None and args.resume == "auto":
        paths["resume"] = "auto"
    normalization = args.normalization
    if args.norm_value is not None or args.std_norm:  # the 2018 code's preprocessing flags
        normalization = original_normalization(
            args.normalization or "activitynet",
            2018,
            norm_value=args.norm_value or 1.0,
            no_mean_norm=args.no_mean_norm,
            std_norm=args.std_norm,
        )
    elif args.value_scale is not None or args.no_mean_norm or args.no_std_norm:
        normalization = original_normalization(
            args.normalization or "kinetics",
            2020,
            value_scale=args.value_scale or 1.0,
            no_mean_norm=args.no_mean_norm,
            no_std_norm=args.no_std_norm,
        )
    n_classes, n_pretrain_classes = args.n_classes, args.n_pretrain_classes
    if args.n_finetune_classes is not None:  # the 2018 code: --n_classes is the checkpoint's
        n_classes, n_pretrain_classes = args.n_finetune_classes, n_pretrain_classes or n_classes
    return TrainConfig(
        video_path=paths["video_path"],
        annotation_path=paths["annotation_path"],
        result_path=paths["result_path"],
        clip_length=args.clip_length,
        sample_size=args.sample_size,
        t_stride=args.t_stride,
        train_crop=args.train_crop,
        crop_scale=tuple(args.crop_scale),
        crop_ratio=tuple(getattr(args, "crop_ratio", (3 / 4, 4 / 3))),
        temporal_crop=args.temporal_crop,
        flip=args.flip,
        normalization=normalization,
        n_val_clips=args.n_val_clips,
        batch_size=args.batch_size,
        workers=args.workers,
        prefetch=args.prefetch,
        skip_bad_videos=args.skip_bad_videos,
        n_classes=n_classes,
        family=args.model,
        depth=args.model_depth,
        model_options=options,
        pretrain_path=paths["pretrain_path"],
        n_pretrain_classes=n_pretrain_classes,
        ft_begin_module=args.ft_begin_module,
        lr=args.lr,
        momentum=args.momentum,
        dampening=args.dampening,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        schedule=args.lr_scheduler,
        milestones=tuple(args.milestones),
        plateau_patience=args.plateau_patience,
        warmup_epochs=args.warmup_epochs,
        epochs=args.n_epochs,
        overwrite_milestones=args.overwrite_milestones,
        validate=args.val,
        resume=paths["resume"],
        checkpoint_every=args.checkpoint,
        save_every=args.save_every,
        save_every_steps=args.save_every_steps,
        stop_signals=tuple(args.stop_signals),
        requeue=args.requeue,
        index_cache=args.index_cache,
        options=recorded_options(args),
        recipe=getattr(args, "recipe", None),
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        log_every=args.log_every,
        sync_bn=args.sync_bn,
        freeze_bn=args.freeze_bn,
        tensorboard=args.tensorboard,
        progress=args.progress,
        seed=args.seed,
        device=args.device,
    )


def rooted(root: str | None, path: str | None) -> str | None:
    """`--root_path` joined onto a relative path, as the original joined it."""
    if root is None or path is None:
        return path
    return os.path.join(root, path)


def run(args) -> int:
    from ..training.loop import train

    cfg = train_config_from_args(args)
    if args.recipe:
        check_requirements(args.recipe, args)
    check_values(cfg)
    check_paths(cfg)
    metrics = train(cfg)
    if "curves" in metrics:
        print(f"results in {args.result_path} (logs, checkpoints, curves.png)")
    return 0


def check_requirements(name: str, args) -> None:
    """A recipe's required options (the checkpoint a fine-tuning row starts from), named."""
    from ..recipes import load_recipe, missing_requirements

    recipe = load_recipe(name)
    missing = missing_requirements(recipe, vars(args))
    if missing:
        options = ", ".join(f"--{m.replace('_', '-')}" for m in missing)
        raise UsageError(f"recipe {recipe.name} needs {options}: {recipe.needs or recipe.title}")


def check_values(cfg) -> None:
    """What the values mean together, before any work: crop fractions in order, and a batch
    that fits in this machine's memory."""
    low, high = cfg.crop_scale
    if not 0 < low <= high <= 1:
        raise UsageError(
            f"--crop-scale {low:g} {high:g}: MIN and MAX are area fractions, 0 < MIN <= MAX <= 1"
        )
    channels = cfg.model_options.get("n_input_channels", 3)
    batch = cfg.batch_size * channels * cfg.clip_length * cfg.sample_size**2 * 4  # float32
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if batch > memory:
        raise UsageError(
            f"--sample-size {cfg.sample_size}: one batch of {cfg.batch_size} clips of "
            f"{cfg.clip_length}x{cfg.sample_size}x{cfg.sample_size} is {batch / 1e9:.3g} GB as "
            f"float32, more than this machine's {memory / 1e9:.3g} GB of memory"
        )


def check_paths(cfg) -> None:
    checks.input_folder(cfg.video_path, "--video-path: the videos")
    checks.input_file(cfg.annotation_path, "an annotation file", (".json",))
    checks.output_folder(cfg.result_path, "--result-path")
    if cfg.index_cache not in ("auto", "none", "off", ""):
        from ..data.index_cache import check_cache_path

        checks.output_file(cfg.index_cache, "--index-cache")
        check_cache_path(cfg.index_cache)
    for path in (cfg.pretrain_path, None if cfg.resume == "auto" else cfg.resume):
        if path:
            checks.input_file(path, "a checkpoint", checks.CHECKPOINT_SUFFIXES)
