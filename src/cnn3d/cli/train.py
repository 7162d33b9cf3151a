"""`cnn3d train`: train or fine-tune a 3D CNN (single process, or DDP under torchrun)."""

from __future__ import annotations

import os
from dataclasses import MISSING

from ..errors import UsageError
from ..values import (
    positive_float,
    positive_int,
    unit_interval,
)
from . import checks, original
from .common import add_config_options, add_parser, recorded_options, switch

# the model zoo's families (`models.zoo.FAMILIES`; a test keeps the two equal), named here so
# that `--help` does not import torch
FAMILIES = (
    "resnet",
    "preresnet",
    "wideresnet",
    "resnext",
    "densenet",
    "resnet2p1d",
    "i3d",
    "x3d",
    "i3d_nl",
    "slow",
    "c2d",
    "i3d_r",
    "csn",
    "r2plus1d_r",
    "slowfast",
    "c3d",
    "mc3",
    "s3d",
)


def add(sub) -> None:
    p = add_parser(sub, "train", "train or fine-tune a 3D CNN (torchrun for DDP)")
    add_options(p)
    add_config_options(p, "training options")
    p.set_defaults(run=run)


def add_options(p) -> None:
    """Every training option (`train`, and `reproduce`, which trains first): the settings of
    `training.config.TrainConfig`, declared there once, then the family's options and the
    original's spellings, which this module turns into settings (`train_config_from_args`)."""
    from ..training.config import GROUPS, options

    groups = {name: p.add_argument_group(name) for name in GROUPS}
    for name, option, default in options():
        group = groups[option.group]
        if option.switch:
            switch(group, option.flags[0][2:], default, option.help)
            continue
        kwargs = dict(option.argparse)
        if default is MISSING:
            kwargs["required"] = True
        elif kwargs.get("action") != "store_true":
            kwargs["default"] = list(default) if isinstance(default, tuple) else default
        group.add_argument(*option.flags, dest=name, help=option.help, **kwargs)
    add_model_options(groups["model"])
    groups["data"].add_argument(
        "--dataset",
        default=None,
        help="accepted for old command lines; the annotation file says what the data is "
        "(default: not needed)",
    )
    original.add_train(p)


# the family's options: `--model-option` -> `TrainConfig.model_options` (when given)
MODEL_OPTIONS = ("n_input_channels", "conv1_t_size", "conv1_t_stride", "shortcut",
                 "widen_factor", "cardinality", "stem_width", "dropout")  # fmt: skip


def add_model_options(g) -> None:
    g.add_argument(
        "--n-input-channels",
        "--n_input_channels",
        type=positive_int,
        help="input channels (default: 3 for RGB, 2 for flow: --input-type sets it)",
    )
    g.add_argument(
        "--input-type",
        "--input_type",
        "--input",
        dest="input_type",
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
        "--dropout",
        type=unit_interval,
        help="dropout before the classifier, for the families that have one (i3d, s3d, x3d, "
        "i3d_nl, slow, c2d, i3d_r, csn, r2plus1d_r, slowfast; 0: none, as DDP-exact training needs: "
        "each rank draws its own masks) (default: the family's, 0.5 for most)",
    )


def train_config_from_args(args):
    """The frozen training settings of the parsed options: each setting is the option of its
    name; what the family's options and the original's flags derive is added here."""
    from ..normalization import original_normalization
    from ..training.config import TrainConfig, options

    values = {name: getattr(args, name) for name, _, _ in options()}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    model_options = {name: getattr(args, name) for name in MODEL_OPTIONS}
    model_options = {k: v for k, v in model_options.items() if v is not None}
    if args.no_max_pool:
        model_options["no_max_pool"] = True
    if args.input_type == "flow":
        model_options.setdefault("n_input_channels", 2)
    for name in ("video_path", "annotation_path", "result_path", "pretrain_path"):
        values[name] = rooted(args.root_path, values[name])
    if args.resume != "auto":
        values["resume"] = rooted(args.root_path, args.resume)
    if args.norm_value is not None or args.std_norm:  # the 2018 code's preprocessing flags
        values["normalization"] = original_normalization(
            args.normalization or "activitynet",
            2018,
            norm_value=args.norm_value or 1.0,
            no_mean_norm=args.no_mean_norm,
            std_norm=args.std_norm,
        )
    elif args.value_scale is not None or args.no_mean_norm or args.no_std_norm:
        values["normalization"] = original_normalization(
            args.normalization or "kinetics",
            2020,
            value_scale=args.value_scale or 1.0,
            no_mean_norm=args.no_mean_norm,
            no_std_norm=args.no_std_norm,
        )
    values["n_pretrain_classes"] = args.n_pretrain_classes
    if args.n_finetune_classes is not None:  # the 2018 code: --n_classes is the checkpoint's
        values["n_classes"] = args.n_finetune_classes
        values["n_pretrain_classes"] = args.n_pretrain_classes or args.n_classes
    return TrainConfig(
        **values,
        model_options=model_options,
        crop_ratio=tuple(getattr(args, "crop_ratio", (3 / 4, 4 / 3))),
        temporal_crop=args.temporal_crop,
        overwrite_milestones=args.overwrite_milestones,
        options=recorded_options(args),
        recipe=getattr(args, "recipe", None),
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
