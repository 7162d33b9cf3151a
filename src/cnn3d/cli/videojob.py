"""What `classify` and `features` share: their inputs (files, folders, list files), the model,
shares of a dataset, and how failures are counted; declared and handled once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..values import positive_float
from . import checks, original
from .common import add_progress, add_runtime_options, add_window_options


class SisterToolModel(argparse.Action):
    """`--model PATH`, the sister tool's name for the checkpoint: taken, with a note, since in
    `cnn3d train` --model is the family."""

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        print(
            f"{parser.prog}: note: --model is the sister tool's name for the checkpoint; it is "
            "--checkpoint here (in `cnn3d train`, --model is the model family)",
            file=sys.stderr,
        )
        namespace.checkpoint = values


def add_video_job_options(p, command: str) -> None:
    p.add_argument(
        "inputs",
        nargs="*",
        help="video files, folders (searched recursively) or .txt/.lst/.list files "
        "of paths (relative to the list's folder); or the sister tool's --input list",
    )
    p.add_argument(
        "--checkpoint", help="the model (any supported checkpoint) (default: none; required)"
    )
    p.add_argument("--model", action=SisterToolModel, help=argparse.SUPPRESS)
    p.add_argument(
        "--engine",
        choices=("auto", "torch", "onnxruntime", "openvino"),
        default="auto",
        help="what runs the model: PyTorch, or an exported file (`cnn3d export`) through ONNX "
        "Runtime or OpenVINO; auto: ONNX Runtime for .onnx, PyTorch otherwise",
    )
    p.add_argument(
        "--class-names",
        "--class_names",
        help="text file, one class name per line (default: the checkpoint's, else class_0...)",
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
    original.add_video_job(p, command)


def check(args, mode: str) -> None:
    """Before any work: a checkpoint and inputs given, the sister tool's --mode this command's."""
    from ..errors import UsageError

    if args.mode and args.mode != mode:
        other = "classify" if args.mode == "score" else "features"
        raise UsageError(f"--mode {args.mode} is `cnn3d {other}`; this is `cnn3d {args.command}`")
    if not args.checkpoint:
        raise UsageError("--checkpoint is required: the model to run (any supported checkpoint)")
    suffixes = checks.CHECKPOINT_SUFFIXES + checks.EXPORTED_SUFFIXES  # the latter for --engine
    checks.input_file(args.checkpoint, "a checkpoint", suffixes)
    if not args.inputs and not args.input_list:
        raise UsageError("no inputs: give video files, folders or list files (or --input LIST)")
    if args.input_list:
        checks.input_file(args.input_list, "a list of videos", (".txt", ".lst", ".list"))
    if args.video_root:
        checks.input_folder(args.video_root, "--video_root")


def shard_of(args):
    from ..inference.bulk import Shard

    return Shard.parse(args.shard) if args.shard else Shard.from_environment()


def collect(args, check_names: bool = True):
    """The inputs, with non-video files counted and unusable inputs named; outputs that would
    collide refused before any work."""
    from ..files import check_output_names, collect_inputs, describe_skipped

    listed = [args.input_list] if args.input_list else []
    inputs = collect_inputs(args.inputs + listed, args.video_root)
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
    if is_exported(args):
        model = load_engine(args, names)
    else:
        model = load_model(
            args.checkpoint, device=device, class_names=names, fold_bn=True, **options
        )
    check_model_options(args, model.spec)
    if model.spec.class_names is None:
        with_spec(model, class_names=[f"class_{i}" for i in range(model.spec.n_classes)])
        if need_names:
            print(
                f"{args.checkpoint}: no class names stored; labels are class_0...; give "
                "--class-names FILE",
                file=sys.stderr,
            )
    return model


def is_exported(args) -> bool:
    suffix = Path(args.checkpoint).suffix.lower()
    return suffix in checks.EXPORTED_SUFFIXES or args.engine in ("onnxruntime", "openvino")


def load_engine(args, names):
    """An exported model (`cnn3d export`) run by --engine, with --class-names applied."""
    from dataclasses import replace

    from ..errors import UsageError
    from ..export import load_exported

    if Path(args.checkpoint).suffix.lower() not in checks.EXPORTED_SUFFIXES:
        raise UsageError(
            f"{args.checkpoint}: --engine {args.engine} runs an exported model; make one with "
            f"`cnn3d export {args.checkpoint} model.onnx`"
        )
    model = load_exported(args.checkpoint, args.engine)
    if names is not None:
        if len(names) != model.spec.n_classes:
            raise UsageError(
                f"{args.class_names}: {len(names)} names for a model of {model.spec.n_classes}"
            )
        model.spec = replace(model.spec, class_names=names)
    return model


def check_model_options(args, spec) -> None:
    """The sister tool built the network from --model_name, --model_depth, ...: here the
    checkpoint decides, and any of them given must agree with it."""
    from ..errors import UsageError
    from ..models.zoo import canonical_family, depth_of

    given = {
        "--model_name": (args.model_name, spec.family, canonical_family),
        "--model_depth": (args.model_depth, spec.depth, depth_of),
        "--resnet_shortcut": (args.resnet_shortcut, spec.options.get("shortcut", "B"), str),
        "--wide_resnet_k": (args.wide_resnet_k, spec.options.get("widen_factor", 1), float),
        "--resnext_cardinality": (args.resnext_cardinality, spec.options.get("cardinality"), int),
    }
    for flag, (value, found, norm) in given.items():
        if value is not None and norm(value) != found:
            raise UsageError(
                f"{flag} {value}, but {args.checkpoint} holds a {spec.arch} ({flag[2:]} "
                f"{found}): the checkpoint decides, leave {flag} out"
            )


def failures(failed: int, problems: list[str]) -> int:
    n = failed + len(problems)
    if n:
        print(f"{n} input(s) could not be processed (named above)", file=sys.stderr)
    return 1 if n else 0


def nothing_to_do(inputs) -> int:
    print(f"{len(inputs.problems)} input(s) could not be used; nothing to do", file=sys.stderr)
    return 1
