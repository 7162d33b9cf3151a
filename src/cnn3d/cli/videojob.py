"""What `classify` and `features` share: their inputs (files, folders, list files), the model,
shares of a dataset, and how failures are counted; declared and handled once."""

from __future__ import annotations

import sys

from .common import add_progress, add_runtime_options, add_window_options, positive_float


def add_video_job_options(p) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        help="video files, folders (searched recursively) or .txt/.lst/.list files "
        "of paths (relative to the list's folder)",
    )
    p.add_argument(
        "--checkpoint", "--model", required=True, help="the model (any supported checkpoint)"
    )
    p.add_argument(
        "--class-names",
        "--class_names",
        help="text file, one class name per line (when the checkpoint has none)",
    )
    p.add_argument(
        "--shard",
        help="K/N: process share K (0-based) of N, e.g. one per SLURM array task "
        "(default under torchrun: the rank's share)",
    )
    p.add_argument(
        "--fps",
        type=positive_float,
        help="resample each video to this many frames per second before cutting windows "
        "(frame i = the source frame shown at i / fps); default: the video's own frames",
    )
    add_progress(p)
    p.add_argument(
        "--verbose", action="store_true", help="name every non-video file the folders held"
    )
    add_window_options(p, "--stride")
    add_runtime_options(
        p,
        batch_size=8,
        workers=1,
        workers_help="DataLoader worker processes decoding ahead of the model "
        "(0: decode in this one)",
    )


def shard_of(args):
    from ..bulk import Shard

    return Shard.parse(args.shard) if args.shard else Shard.from_environment()


def collect(args, check_names: bool = True):
    """The inputs, with non-video files counted and unusable inputs named; outputs that would
    collide refused before any work."""
    from ..files import check_output_names, collect_inputs, describe_skipped

    inputs = collect_inputs(args.inputs)
    if inputs.skipped:
        print(describe_skipped(inputs.skipped, args.verbose), file=sys.stderr)
    if check_names:
        check_output_names(inputs.names, inputs.paths, args.command)
    for problem in inputs.problems:
        print(f"failed: {problem}", file=sys.stderr)
    return inputs


def load(args, device, need_names: bool = True, **options):
    """The checkpoint ready for inference (BatchNorm folded), with class names (`class_N`
    where neither the checkpoint nor --class-names has them)."""
    from ..models import load_model, read_class_names, with_spec

    names = read_class_names(args.class_names) if args.class_names else None
    model = load_model(args.checkpoint, device=device, class_names=names, fold_bn=True, **options)
    if model.spec.class_names is None:
        with_spec(model, class_names=[f"class_{i}" for i in range(model.spec.n_classes)])
        if need_names:
            print(
                f"{args.checkpoint}: no class names stored; labels are class_0...; give "
                "--class-names FILE",
                file=sys.stderr,
            )
    return model


def failures(failed: int, problems: list[str]) -> int:
    n = failed + len(problems)
    if n:
        print(f"{n} input(s) could not be processed (named above)", file=sys.stderr)
    return 1 if n else 0


def nothing_to_do(inputs) -> int:
    print(f"{len(inputs.problems)} input(s) could not be used; nothing to do", file=sys.stderr)
    return 1
