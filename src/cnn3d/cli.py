"""The `cnn3d` command: one subcommand per job, each a thin layer over the library."""

from __future__ import annotations

import argparse
import sys


def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from .models import build_model, count_flops, count_parameters, list_models

    print(f"{'family':<12}{'depth':>6}{'params (M)':>12}{'GFLOPs':>9}{'features':>10}")
    for family, depth in list_models():
        with torch.device("meta"):
            model = build_model(family, depth, n_classes=args.n_classes)
        gflops = count_flops(family, depth, args.clip_length, args.size) / 1e9
        params = count_parameters(model) / 1e6
        print(f"{family:<12}{depth:>6}{params:>12.2f}{gflops:>9.2f}{model.num_features:>10}")
    print(
        f"\nGFLOPs: one {args.clip_length}x{args.size}x{args.size} clip, forward, 2 per "
        f"multiply-add; params with a {args.n_classes}-class head."
    )
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .models import convert

    model = convert(args.src, args.dst, args.class_names)
    spec = model.spec
    print(
        f"{args.src} -> {args.dst}: {spec.arch}, {spec.n_classes} classes, "
        f"normalisation {spec.normalization.name}, options {spec.options}"
    )
    return 0


def _report_missing(annotations, out_path) -> None:
    from pathlib import Path

    problems = [f"{v}: not found" for v in annotations.missing] + list(annotations.unreadable)
    if not problems:
        return
    listing = Path(str(out_path) + ".missing.txt")
    listing.write_text("\n".join(problems) + "\n")
    print(
        f"  {len(annotations.missing)} listed videos not found, {len(annotations.unreadable)} "
        f"unreadable (left out; all named in {listing}):"
    )
    for line in problems[:5]:
        print(f"    {line}")
    if len(problems) > 5:
        print(f"    ... and {len(problems) - 5} more")


def _finish_annotations(annotations, args, out_path) -> None:
    from .data.annotations import attach_videos, write_annotations

    if args.video_path:
        annotations = attach_videos(
            annotations, args.video_path, args.jobs, progress=len(annotations) > 1000
        )
    write_annotations(out_path, annotations)
    if annotations.skipped_files:
        from .files import Walk

        print(Walk([], annotations.skipped_files).describe_skipped(getattr(args, "verbose", False)))
    counts = {s: len(annotations.subset(s)) for s in ("training", "validation", "testing")}
    print(
        f"{out_path}: {len(annotations.labels)} classes, "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    )
    _report_missing(annotations, out_path)


def cmd_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data import annotations as A

    kind = args.kind
    if kind == "frames":
        from .data.prepare import prepare_frames
        from .files import Walk

        report = prepare_frames(
            args.src, args.dst, args.format, args.short_side or None, args.jobs, args.quality
        )
        print(
            f"{args.dst}: {report.converted} videos converted, {report.already_done} already "
            f"done, {len(report.failures)} failed"
        )
        if report.skipped_files:
            print(Walk([], report.skipped_files).describe_skipped(args.verbose))
        for failure in report.failures:
            print(f"  failed: {failure}", file=sys.stderr)
        return 1 if report.failures else 0
    if kind == "synthetic":
        from .data.synthetic import CLASSES, write_synthetic_dataset

        classes = tuple(args.classes) if args.classes else CLASSES[: args.n_classes]
        layout = write_synthetic_dataset(args.dst, classes, args.groups, args.clips_per_group)
        print(
            f"{layout.video_dir}: {layout.n_videos} videos of {len(classes)} classes; "
            f"splits in {layout.split_dir}"
        )
        return 0
    out = Path(args.out)
    if kind in ("ucf101", "hmdb51"):
        build = A.build_ucf101 if kind == "ucf101" else A.build_hmdb51
        out.mkdir(parents=True, exist_ok=True)
        for split in args.splits:
            name = f"ucf101_0{split}.json" if kind == "ucf101" else f"hmdb51_{split}.json"
            _finish_annotations(build(args.src[0], split), args, out / name)
    elif kind == "kinetics":
        _finish_annotations(A.build_kinetics(args.src, args.class_order), args, out)
    elif kind == "activitynet":
        _finish_annotations(A.build_activitynet(args.src[0]), args, out)
    elif kind == "custom":
        src = Path(args.src[0])
        built = (
            A.build_custom_folders(src, args.val_fraction)
            if src.is_dir()
            else A.build_custom_csv(src)
        )
        if src.is_dir() and not args.video_path:
            args.video_path = str(src)
        _finish_annotations(built, args, out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnn3d", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="table of every model family and depth")
    p.add_argument("--n-classes", "--n_classes", type=int, default=400)
    p.add_argument("--clip-length", "--sample_duration", type=int, default=16)
    p.add_argument("--size", "--sample_size", type=int, default=112)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("convert", help="re-save any supported checkpoint in cnn3d's format")
    p.add_argument("src")
    p.add_argument("dst", help="a .pth or .safetensors path")
    p.add_argument("--class-names", "--class_names", help="text file, one class name per line")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("prepare", help="build annotation JSON, extract frames, write the demo data")
    psub = p.add_subparsers(dest="kind", required=True)
    for kind, src_help in [
        ("ucf101", "folder with classInd.txt, trainlist0N.txt, testlist0N.txt"),
        ("hmdb51", "folder with <class>_test_splitN.txt files"),
        ("kinetics", "the CSV files (train/val/test)"),
        ("activitynet", "the ActivityNet v1.3 JSON"),
        ("custom", "a folder with a folder per class, or a CSV of path,label[,subset]"),
    ]:
        q = psub.add_parser(kind, help=f"annotations from {src_help}")
        q.add_argument("src", nargs="+" if kind == "kinetics" else 1, help=src_help)
        q.add_argument(
            "--out",
            required=True,
            help="output folder (ucf101, hmdb51: one JSON per split) or JSON file",
        )
        q.add_argument(
            "--video-path",
            "--video_path",
            help="where the videos are: records each one's frame count and fps (so training "
            "and testing open no video to start), reports missing and unreadable videos",
        )
        q.add_argument(
            "--jobs",
            "--n_jobs",
            type=int,
            default=1,
            help="processes counting frames (with --video-path; default 1)",
        )
        if kind in ("ucf101", "hmdb51"):
            q.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3])
        if kind == "kinetics":
            q.add_argument(
                "--class-order",
                choices=["alphabetical", "first-appearance"],
                default="alphabetical",
            )
        if kind == "custom":
            q.add_argument("--val-fraction", type=float, default=0.2)
            q.add_argument("--verbose", action="store_true", help="name every file skipped")
        q.set_defaults(func=cmd_prepare)
    q = psub.add_parser("frames", help="videos -> JPEG folders, HDF5 or short-GOP mp4")
    q.add_argument("src")
    q.add_argument("dst")
    q.add_argument("--format", choices=["jpg", "hdf5", "mp4"], default="jpg")
    q.add_argument("--short-side", "--size", type=int, default=240, help="0 keeps the size")
    q.add_argument("--jobs", "--n_jobs", type=int, default=1)
    q.add_argument("--quality", type=int, default=90, help="JPEG quality")
    q.add_argument("--verbose", action="store_true", help="name every non-video file skipped")
    q.set_defaults(func=cmd_prepare)
    q = psub.add_parser("synthetic", help="write the bundled demo dataset (UCF-101 layout)")
    q.add_argument("dst")
    q.add_argument("--n-classes", type=int, default=6)
    q.add_argument("--classes", nargs="+")
    q.add_argument("--groups", type=int, default=6)
    q.add_argument("--clips-per-group", type=int, default=3)
    q.set_defaults(func=cmd_prepare)

    add_train_parser(sub)
    add_test_parser(sub)
    for name in ("classify", "features"):
        add_inference_parser(sub, name)
    p = sub.add_parser("demo", help="the end-to-end demo on the bundled synthetic dataset")
    p.add_argument("--output", default="demo_output")
    p.add_argument("--epochs", type=int, default=12)
    p.set_defaults(func=lambda a: _commands().cmd_demo(a))
    return parser


def _commands():
    from . import commands

    return commands


def _switch(p, name: str, default: bool, help: str) -> None:
    """A positive flag with its --no- form (no negative booleans)."""
    p.add_argument(
        f"--{name}",
        dest=name.replace("-", "_"),
        action=argparse.BooleanOptionalAction,
        default=default,
        help=help,
    )


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a 3D CNN (torchrun for DDP)")
    g = p.add_argument_group("data")
    g.add_argument("--video-path", "--video_path", required=True)
    g.add_argument("--annotation-path", "--annotation_path", required=True)
    g.add_argument("--result-path", "--result_path", required=True)
    g.add_argument("--dataset", default=None, help="accepted for old command lines; not needed")
    g.add_argument(
        "--n-classes",
        "--n_classes",
        type=int,
        default=None,
        help="accepted for old command lines; the annotation file decides",
    )
    g.add_argument("--clip-length", "--sample_duration", type=int, default=16)
    g.add_argument("--sample-size", "--sample_size", type=int, default=112)
    g.add_argument("--t-stride", "--sample_t_stride", type=int, default=1)
    g.add_argument(
        "--train-crop",
        "--train_crop",
        default="corner",
        choices=["corner", "random", "multiscale_random", "center"],
    )
    g.add_argument(
        "--crop-scale",
        type=float,
        nargs=2,
        default=(0.25, 1.0),
        metavar=("MIN", "MAX"),
        help="area fractions of the `random` train crop (default 0.25 1)",
    )
    _switch(g, "flip", True, "random horizontal flip")
    g.add_argument(
        "--normalization",
        "--mean_dataset",
        default=None,
        choices=["hara2018", "kinetics", "activitynet", "0.5", "torchvision"],
        help="default: the pretrained model's, else kinetics",
    )
    g.add_argument("--n-val-clips", "--n_val_samples", type=int, default=3)
    g.add_argument("--batch-size", "--batch_size", type=int, default=32)
    g.add_argument("--workers", "--n_threads", type=int, default=2)
    _switch(g, "skip-bad-videos", False, "count and list unreadable videos instead of stopping")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="resnet")
    g.add_argument("--model-depth", "--model_depth", type=int, default=18)
    g.add_argument("--n-input-channels", "--n_input_channels", type=int)
    g.add_argument("--conv1-t-size", "--conv1_t_size", type=int)
    g.add_argument("--conv1-t-stride", "--conv1_t_stride", type=int)
    g.add_argument("--no-max-pool", "--no_max_pool", action="store_true")
    g.add_argument("--shortcut", "--resnet_shortcut", choices=["A", "B"])
    g.add_argument("--widen-factor", "--resnet_widen_factor", "--wide_resnet_k", type=float)
    g.add_argument("--cardinality", "--resnext_cardinality", type=int)
    g.add_argument("--stem-width", type=int)
    g.add_argument("--pretrain-path", "--pretrain_path")
    g.add_argument(
        "--ft-begin-module",
        "--ft_begin_module",
        default="",
        help="train from this module on (conv1, layer1..4, fc, denseblockN...)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", "--learning_rate", type=float, default=0.1)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--dampening", type=float, default=0.0)
    g.add_argument("--weight-decay", "--weight_decay", type=float, default=1e-3)
    g.add_argument("--nesterov", action="store_true")
    g.add_argument(
        "--lr-scheduler",
        "--lr_scheduler",
        default="multistep",
        choices=["multistep", "plateau", "cosine"],
    )
    g.add_argument(
        "--milestones", "--multistep_milestones", type=int, nargs="+", default=[50, 100, 150]
    )
    g.add_argument(
        "--plateau-patience", "--plateau_patience", "--lr_patience", type=int, default=10
    )
    g.add_argument("--warmup-epochs", type=int, default=0)
    g.add_argument("--n-epochs", "--n_epochs", "--epochs", type=int, default=200)
    g = p.add_argument_group("run")
    _switch(g, "val", True, "validate every epoch")
    g.add_argument("--resume", "--resume_path", help="a checkpoint, or 'auto' (<result>/last.pth)")
    g.add_argument("--checkpoint", type=int, default=10, help="save_<N>.pth every N epochs")
    _switch(
        g,
        "amp",
        None,
        "bf16 autocast (fp16 with loss scaling on GPUs without bf16); default: on for GPUs "
        "and for CPUs with native bf16 (AVX512-BF16/AMX), off elsewhere",
    )
    _switch(g, "channels-last", True, "channels_last_3d memory format")
    _switch(g, "sync-bn", False, "SyncBatchNorm under DDP (GPUs only)")
    _switch(
        g,
        "freeze-bn",
        False,
        "BatchNorm layers use and keep their running statistics while training (for small "
        "per-GPU batches, and for DDP on CPUs, where SyncBatchNorm is not available)",
    )
    _switch(g, "tensorboard", True, "TensorBoard scalars in <result>/tensorboard")
    _switch(g, "progress", True, "progress bar")
    g.add_argument("--seed", "--manual_seed", type=int, default=1)
    g.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.set_defaults(func=lambda a: _commands().cmd_train(a))


def add_test_parser(sub) -> None:
    p = sub.add_parser("test", help="video-level evaluation of a checkpoint on an annotated subset")
    p.add_argument("--checkpoint", "--resume_path", required=True)
    p.add_argument("--video-path", "--video_path", required=True)
    p.add_argument("--annotation-path", "--annotation_path", required=True)
    p.add_argument("--result-path", "--result_path", required=True)
    p.add_argument("--subset", "--inference_subset", default="validation")
    p.add_argument(
        "--window-stride",
        "--inference_stride",
        type=int,
        default=None,
        help="sliding-window stride in frames (default: one clip, no overlap)",
    )
    p.add_argument(
        "--n-clips",
        type=int,
        default=0,
        help="N evenly spaced clips per video instead of every window",
    )
    p.add_argument("--three-crop", action="store_true", help="3 spatial crops per clip")
    p.add_argument("--topk", "--output_topk", type=int, default=5)
    p.add_argument("--batch-size", "--batch_size", type=int, default=16)
    p.add_argument("--workers", "--n_threads", type=int, default=2)
    _switch(p, "amp", None, "bf16 autocast (default: on for GPUs and CPUs with native bf16)")
    p.add_argument("--device")
    p.set_defaults(func=lambda a: _commands().cmd_test(a))


def add_inference_parser(sub, name: str) -> None:
    what = "per-video and per-clip labels" if name == "classify" else "pooled clip features"
    p = sub.add_parser(name, help=f"{what} of raw video files, folders or list files")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--checkpoint", "--model", required=True)
    p.add_argument("--class-names", "--class_names")
    if name == "classify":
        p.add_argument("--output", "-o", help="JSON file (the sister tool's layout)")
        p.add_argument("--topk", type=int, default=5)
    else:
        p.add_argument(
            "--output", "-o", required=True, help="a folder (.npy per video) or a .h5/.hdf5 file"
        )
    p.add_argument("--window-stride", "--stride", type=int, default=None)
    p.add_argument(
        "--verbose", action="store_true", help="name every non-video file the folders held"
    )
    p.add_argument("--batch-size", "--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    _switch(p, "amp", None, "bf16 autocast (default: on for GPUs and CPUs with native bf16)")
    p.add_argument("--device")
    p.set_defaults(func=lambda a: getattr(_commands(), f"cmd_{name}")(a))


def main(argv: list[str] | None = None) -> int:
    from .data.annotations import AnnotationError
    from .data.sources import VideoReadError
    from .files import OutputCollision
    from .models import CheckpointError
    from .train import TrainingError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        OutputCollision,
        CheckpointError,
        VideoReadError,
        AnnotationError,
        TrainingError,
        FileNotFoundError,
        ValueError,
    ) as error:
        print(f"cnn3d {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
