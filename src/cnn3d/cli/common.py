"""What the subcommands share: the help format, value checks, `--x/--no-x` switches, and the
option groups declared once (runtime, windows, progress). Nothing here imports torch: `--help`,
`--version` and argument errors answer at once."""

from __future__ import annotations

import argparse
import difflib

from ..values import device, non_negative_int, positive_int, resize_size


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default after its help: the value, `on`/`off` for switches, `none`
    for an empty string; options whose default is None say in their help what it means."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "default:" in text or not action.option_strings:
            return text
        default = action.default
        if default is argparse.SUPPRESS or action.required or default is None:
            return text
        if isinstance(action, argparse.BooleanOptionalAction):
            return f"{text} (default: {'on' if default else 'off'})"
        if default is False and action.nargs == 0:  # a store_true flag: off unless given
            return text
        if default == "":
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def add_parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)


def add_config_options(p, recipe_table: str) -> None:
    """--config and --recipe (applied before parsing: `cli.configured`, `config.py`)."""
    g = p.add_argument_group("runs as files")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="options from a TOML, YAML or JSON file (the long option names as keys; a run's "
        "opts.json is one); flags given here override it (default: none)",
    )
    g.add_argument(
        "--recipe",
        metavar="NAME",
        help=f"one of the paper's experiments (`cnn3d recipes`): its {recipe_table}; --config "
        "and flags override it (default: none)",
    )


def recorded_options(args) -> tuple[tuple[str, object], ...]:
    """The parsed options, as opts.json records them (a config for `--config`)."""
    skip = ("run", "command", "config", "recipe")
    return tuple((k, v) for k, v in sorted(vars(args).items()) if k not in skip and not callable(v))


def unknown_options(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """argparse's "unrecognized arguments" message, with the nearest option for each."""
    known = [o for action in parser._actions for o in action.option_strings]
    parts = []
    for extra in extras:
        name = extra.split("=", 1)[0]
        near = difflib.get_close_matches(name, known, n=1) if name.startswith("-") else []
        parts.append(f"{extra} (did you mean {near[0]}?)" if near else extra)
    return "unrecognized arguments: " + " ".join(parts)


def switch(p, name: str, default: bool | None, help: str) -> None:
    """A positive flag with its --no- form (no negative booleans)."""
    p.add_argument(
        f"--{name}",
        dest=name.replace("-", "_"),
        action=argparse.BooleanOptionalAction,
        default=default,
        help=help,
    )


def add_progress(p, default: bool | None = True, what: str = "progress bar") -> None:
    switch(p, "progress", default, what)


def add_clip_shape(g) -> None:
    """--clip-length and --sample-size, with the original's spellings."""
    g.add_argument(
        "--clip-length", "--sample_duration", type=positive_int, default=16, help="frames per clip"
    )
    g.add_argument(
        "--sample-size",
        "--sample_size",
        type=positive_int,
        default=112,
        help="clip height and width in pixels",
    )


AMP_HELP = "bf16 autocast (default: on for GPUs and CPUs with native bf16)"
COMPILE_HELP = (
    "torch.compile the network (default: only for 2000 windows or more, where the one-time "
    "compile pays for itself; the choice is printed)"
)


def add_runtime_options(p, batch_size: int, workers: int, workers_help: str) -> None:
    """Batch, workers, precision, device and compile of an inference command."""
    g = p.add_argument_group("runtime")
    g.add_argument(
        "--batch-size",
        "--batch_size",
        type=positive_int,
        default=batch_size,
        help="clips per forward pass",
    )
    g.add_argument(
        "--workers", "--n_threads", type=non_negative_int, default=workers, help=workers_help
    )
    add_prefetch(g)
    switch(g, "amp", None, AMP_HELP)
    add_device(g)
    switch(g, "compile", None, COMPILE_HELP)


def add_prefetch(g) -> None:
    g.add_argument(
        "--prefetch",
        type=positive_int,
        default=None,
        help="batches each worker prepares ahead (default: PyTorch's 2)",
    )


def add_device(g) -> None:
    g.add_argument(
        "--device", type=device, help="cpu, cuda, cuda:1 (default: cuda if available, else cpu)"
    )


def add_data_paths(
    g, videos: str = "root of the videos", annotations: str = "the annotation JSON"
) -> None:
    """--video-path and --annotation-path (required), with the original's spellings."""
    g.add_argument("--video-path", "--video_path", required=True, help=videos)
    g.add_argument("--annotation-path", "--annotation_path", required=True, help=annotations)


TAIL_HELP = (
    "the end of a video: pad = one more window, loop-padded, so every frame counts; drop = the "
    "sister tool's windows (complete windows only, ending before the last frame; a video "
    "shorter than one window still gets one padded window); complete = every window that fits, "
    "the one ending on the last frame included (default: pad; with `features --preset`, the "
    "preset's)"
)


def add_window_options(p, stride_alias: str) -> None:
    """Where the sliding windows of `test`, `classify` and `features` start and end."""
    g = p.add_argument_group("windows")
    g.add_argument(
        "--window-stride",
        stride_alias,
        type=positive_int,
        default=None,
        help="sliding-window stride in frames (default: one clip, no overlap)",
    )
    g.add_argument("--tail", choices=("pad", "drop", "complete"), default="pad", help=TAIL_HELP)


# the names of `data.transforms.CROP_ORDERS` (kept here: --help does not import torch)
CROP_ORDERS = ("center_first", "torchvision", "oversample")


def add_crop_options(p, order: bool = True) -> None:
    """--crops (and --crop-order, --resize, --resizer): the spatial crops of every window."""
    g = p.add_argument_group("crops")
    g.add_argument(
        "--crops",
        type=int,
        choices=(1, 3, 5, 10),
        default=None,
        help="crops per window: 1 = the centre; 3 = the original's three crops along the long "
        "side; 5 = the centre and the four corners; 10 = those five and the same five of the "
        "mirror image; a window's logits are the mean of its crops' (default: 1)",
    )
    if not order:
        return
    g.add_argument(
        "--crop-order",
        choices=CROP_ORDERS,
        default=None,
        help="the order of five or ten crops: center_first = centre, top-left, top-right, "
        "bottom-left, bottom-right (the VAD releases); torchvision = top-left, top-right, "
        "bottom-left, bottom-right, centre (TenCrop); oversample = top-left, top-right, centre, "
        "bottom-left, bottom-right (the ten-crop I3D-ResNet-50 extractor); the mirrored five "
        "follow in the same order (default: center_first)",
    )
    g.add_argument(
        "--resize",
        type=resize_size,
        default=None,
        help="before cropping, resize each frame's short side to N pixels (e.g. 256 for 224 "
        "crops), or stretch it to exactly W x H pixels with WxH (e.g. 340x256) (default: the "
        "crop size)",
    )
    g.add_argument(
        "--resizer",
        choices=("torch", "pil"),
        default=None,
        help="how frames are resized: torch = torchvision's antialiased bilinear on 8 bits "
        "(fast; PIL's within one grey level); pil = PIL's BILINEAR frame by frame, the pixels "
        "of the sister tool and other PIL-based extractors (slower) (default: torch)",
    )


def crop_settings(args) -> dict:
    """The InferenceConfig fields of the parsed crop options (only those given)."""
    given = {
        "crops": getattr(args, "crops", None),
        "crop_order": getattr(args, "crop_order", None),
        "resize": getattr(args, "resize", None),
        "resizer": getattr(args, "resizer", None),
    }
    return {k: v for k, v in given.items() if v is not None}


def runtime_config(args):
    """The frozen runtime settings of the parsed runtime options."""
    from ..runtime import RuntimeConfig

    return RuntimeConfig(device=args.device, amp=args.amp, compile=args.compile)


def inference_config(args, **extra):
    """The frozen inference settings of the parsed runtime and window options."""
    from ..inference.runner import InferenceConfig

    return InferenceConfig(
        runtime=runtime_config(args),
        batch_size=args.batch_size,
        workers=args.workers,
        prefetch=args.prefetch,
        window_stride=args.window_stride,
        tail=args.tail,
        **extra,
    )
