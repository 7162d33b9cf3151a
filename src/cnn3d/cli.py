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
    if args.class_names:
        names = f"class names from {args.class_names}"
    elif spec.class_names:
        names = "class names as found (the checkpoint's, or Kinetics-400's for a 2018 file)"
    else:
        names = "no class names (give --class-names FILE)"
    first = f" ({', '.join(spec.class_names[:3])}, ...)" if spec.class_names else ""
    print(
        f"{args.src} -> {args.dst}: {spec.arch}, {spec.n_classes} classes, "
        f"normalisation {spec.normalization.name}, options {spec.options}; {names}{first}"
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
        from .files import describe_skipped

        print(describe_skipped(annotations.skipped_files, getattr(args, "verbose", False)))
    counts = {s: len(annotations.subset(s)) for s in ("training", "validation", "testing")}
    print(
        f"{out_path}: {len(annotations.labels)} classes, "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    )
    _report_missing(annotations, out_path)


def _add_frames_parser(psub, name: str) -> None:
    if name == "frames":
        q = _parser(psub, "frames", "videos -> JPEG folders, HDF5 or short-GOP mp4")
        formats, help_text = (
            ["jpg", "hdf5", "mp4"],
            (
                "image_%%05d.jpg folders, the original HDF5 layout, or mp4 with a keyframe every "
                "16 frames"
            ),
        )
    else:
        q = _parser(psub, "flow", "videos or image_%%05d.jpg folders -> optical flow (OpenCV DIS)")
        formats, help_text = (
            ["jpg", "hdf5"],
            (
                "flow_x_/flow_y_%%05d.jpg folders, or the original's HDF5 (video_u, video_v); "
                "displacements of +-20 px map to 0-255"
            ),
        )
    q.add_argument("src", help="folder of videos (class folders kept)")
    q.add_argument("dst", help="output folder")
    q.add_argument("--format", choices=formats, default=formats[0], help=help_text)
    q.add_argument(
        "--short-side",
        "--size",
        type=non_negative_int,
        default=240,
        help="resize so the short side has this many pixels (0 keeps the size)",
    )
    q.add_argument(
        "--jobs",
        "--n_jobs",
        type=positive_int,
        default=1,
        help="videos converted in parallel (processes)",
    )
    q.add_argument("--quality", type=positive_int, default=90, help="JPEG quality (1-100)")
    q.add_argument("--verbose", action="store_true", help="name every non-video file skipped")
    q.set_defaults(func=cmd_prepare)


def cmd_fuse(args: argparse.Namespace) -> int:
    from .testing import fuse_results

    if len(args.results) < 2:
        raise ValueError("fuse needs two results or more")
    summary = fuse_results(args.results, args.output, args.weights, args.topk)
    print(
        f"fused {len(args.results)} results over {summary['n_videos']} videos "
        f"({summary['videos_left_out']} not in every result): video top-1 "
        f"{summary['video_top1']:.4f}  top-5 {summary['video_top5']:.4f}  mean class acc "
        f"{summary['mean_class_accuracy']:.4f}; wrote {args.output}"
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data import annotations as A

    kind = args.kind
    if kind in ("frames", "flow"):
        from .data.prepare import prepare_frames
        from .files import describe_skipped

        report = prepare_frames(
            args.src,
            args.dst,
            args.format,
            args.short_side or None,
            args.jobs,
            args.quality,
            flow=kind == "flow",
        )
        print(
            f"{args.dst}: {report.converted} videos converted, {report.already_done} already "
            f"done, {len(report.failures)} failed"
        )
        if report.skipped_files:
            print(describe_skipped(report.skipped_files, args.verbose))
        for failure in report.failures:
            print(f"  failed: {failure}", file=sys.stderr)
        return 1 if report.failures else 0
    if kind == "synthetic":
        from .data.synthetic import CLASSES, write_synthetic_dataset

        classes = tuple(args.classes) if args.classes else CLASSES[: args.n_classes]
        from .data.annotations import attach_videos, build_ucf101, write_annotations

        layout = write_synthetic_dataset(args.dst, classes, args.groups, args.clips_per_group)
        annotation = Path(args.dst) / "synthetic_01.json"
        built = attach_videos(build_ucf101(layout.split_dir, 1), layout.video_dir)
        write_annotations(annotation, built)
        print(
            f"{layout.video_dir}: {layout.n_videos} videos of {len(classes)} classes; "
            f"splits in {layout.split_dir}; annotations in {annotation} (train with "
            f"--video-path {layout.video_dir} --annotation-path {annotation})"
        )
        return 0
    out = Path(args.out)
    if kind in ("ucf101", "hmdb51"):
        build = A.build_ucf101 if kind == "ucf101" else A.build_hmdb51
        out.mkdir(parents=True, exist_ok=True)
        written = 0
        for split in args.splits:
            name = f"ucf101_0{split}.json" if kind == "ucf101" else f"hmdb51_{split}.json"
            try:
                built = build(args.src[0], split)
            except A.AnnotationError as error:
                if len(args.splits) == 1:
                    raise
                print(f"split {split} skipped: {error}")
                continue
            _finish_annotations(built, args, out / name)
            written += 1
        if not written:
            raise A.AnnotationError(f"{args.src[0]}: none of the splits {args.splits} is there")
    elif kind == "kinetics":
        _finish_annotations(A.build_kinetics(args.src, args.class_order), args, out)
    elif kind == "activitynet":
        _finish_annotations(A.build_activitynet(args.src[0]), args, out)
    elif kind == "mit":
        _finish_annotations(A.build_mit(args.src[0]), args, out)
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (where it has one) after its help."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in action.help:
            return action.help
        return super()._get_help_string(action)


def _parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="cnn3d", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cnn3d {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _parser(sub, "models", "table of every model family and depth")
    p.add_argument(
        "--n-classes",
        "--n_classes",
        type=positive_int,
        default=400,
        help="classes of the head the parameter counts include",
    )
    p.add_argument(
        "--clip-length",
        "--sample_duration",
        type=positive_int,
        default=16,
        help="frames per clip for the GFLOPs column",
    )
    p.add_argument(
        "--size",
        "--sample_size",
        type=positive_int,
        default=112,
        help="clip height and width for the GFLOPs column",
    )
    p.set_defaults(func=cmd_models)

    p = _parser(sub, "convert", "re-save any supported checkpoint in cnn3d's format")
    p.add_argument(
        "src", help="any checkpoint cnn3d loads (original 2018/2020, torchvision, cnn3d)"
    )
    p.add_argument("dst", help="a .pth or .safetensors path")
    p.add_argument(
        "--class-names",
        "--class_names",
        help="text file, one class name per line, stored in the output",
    )
    p.set_defaults(func=cmd_convert)

    p = _parser(sub, "prepare", "build annotation JSON, extract frames, write the demo data")
    psub = p.add_subparsers(dest="kind", required=True)
    for kind, src_help in [
        ("ucf101", "folder with classInd.txt, trainlist0N.txt, testlist0N.txt"),
        ("hmdb51", "folder with <class>_test_splitN.txt files"),
        ("kinetics", "the CSV files (train/val/test)"),
        ("mit", "folder with moments_categories.txt, trainingSet.csv, validationSet.csv"),
        ("activitynet", "the ActivityNet v1.3 JSON"),
        ("custom", "a folder with a folder per class, or a CSV of path,label[,subset]"),
    ]:
        q = _parser(psub, kind, f"annotations from {src_help}")
        q.add_argument("src", nargs="+" if kind == "kinetics" else 1, help=src_help)
        q.add_argument(
            "--out",
            required=True,
            help="output folder (ucf101, hmdb51: one JSON per split) or JSON file",
        )
        q.add_argument(
            "--video-path",
            "--video_path",
            help="where the videos are: records each one's frame count and fps (so "
            "training and testing open no video to start), reports missing and "
            "unreadable videos",
        )
        q.add_argument(
            "--jobs",
            "--n_jobs",
            type=positive_int,
            default=1,
            help="processes counting frames (with --video-path)",
        )
        if kind in ("ucf101", "hmdb51"):
            q.add_argument(
                "--splits",
                type=int,
                nargs="+",
                choices=[1, 2, 3],
                default=[1, 2, 3],
                help="which official splits to write (a split whose files are "
                "missing is skipped with a note)",
            )
        if kind == "kinetics":
            q.add_argument(
                "--class-order",
                choices=["alphabetical", "first-appearance"],
                default="alphabetical",
                help="label order: first-appearance in the training CSV is what "
                "the 2020 Kinetics-700 models use",
            )
        if kind == "custom":
            q.add_argument(
                "--val-fraction",
                type=fraction,
                default=0.2,
                help="share of each class's videos put in validation",
            )
            q.add_argument("--verbose", action="store_true", help="name every file skipped")
        q.set_defaults(func=cmd_prepare)
    for name in ("frames", "flow"):
        _add_frames_parser(psub, name)
    q = _parser(
        psub, "synthetic", "write the bundled demo dataset (UCF-101 layout) and its annotation JSON"
    )
    q.add_argument("dst", help="output folder (videos/, splits/, synthetic_01.json)")
    q.add_argument(
        "--n-classes",
        type=positive_int,
        default=6,
        help="how many of the motion classes (8 at most)",
    )
    q.add_argument("--classes", nargs="+", help="class names to use instead of --n-classes")
    q.add_argument(
        "--groups",
        type=positive_int,
        default=6,
        help="groups per class (group 1 is the validation split)",
    )
    q.add_argument("--clips-per-group", type=positive_int, default=3, help="videos per group")
    q.set_defaults(func=cmd_prepare)

    add_train_parser(sub)
    add_test_parser(sub)
    for name in ("classify", "features"):
        add_inference_parser(sub, name)
    p = _parser(sub, "fuse", "two-stream accuracy: average the video scores of test results")
    p.add_argument(
        "results",
        nargs="+",
        help="result folders of `cnn3d test` (their scores.npz), e.g. an RGB and a flow one",
    )
    p.add_argument("--output", "-o", required=True, help="folder for the fused results")
    p.add_argument(
        "--weights", type=float, nargs="+", help="one weight per result (default: equal)"
    )
    p.add_argument("--topk", type=positive_int, default=5, help="labels per video in fused.json")
    p.set_defaults(func=cmd_fuse)

    p = _parser(sub, "demo", "the end-to-end demo on the bundled synthetic dataset")
    p.add_argument("--output", default="demo_output", help="folder for everything it writes")
    p.add_argument("--epochs", type=positive_int, default=12, help="training epochs")
    p.set_defaults(func=lambda a: _commands().cmd_demo(a))
    return parser


def _commands():
    from . import commands

    return commands


def _switch(p, name: str, default: bool | None, help: str) -> None:
    """A positive flag with its --no- form (no negative booleans)."""
    p.add_argument(
        f"--{name}",
        dest=name.replace("-", "_"),
        action=argparse.BooleanOptionalAction,
        default=default,
        help=help,
    )


def add_train_parser(sub) -> None:
    from .models.zoo import FAMILIES

    p = _parser(sub, "train", "train or fine-tune a 3D CNN (torchrun for DDP)")
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
    g.add_argument("--dataset", default=None, help="accepted for old command lines; not needed")
    g.add_argument(
        "--n-classes",
        "--n_classes",
        type=int,
        default=None,
        help="accepted for old command lines; the annotation file decides",
    )
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
    _switch(g, "flip", True, "random horizontal flip")
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
        help="DataLoader worker processes (per process)",
    )
    _switch(g, "skip-bad-videos", False, "count and list unreadable videos instead of stopping")
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default="resnet",
        help=f"family: {', '.join(FAMILIES)} (or an alias: r3d, preact, wrn, r2p1d)",
    )
    g.add_argument(
        "--model-depth",
        "--model_depth",
        type=positive_int,
        default=18,
        help="depth (`cnn3d models` lists each family's)",
    )
    g.add_argument(
        "--n-input-channels",
        "--n_input_channels",
        type=positive_int,
        help="input channels (3 for RGB, 2 for flow; --input sets it)",
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
        help="temporal kernel of the first conv (7 in the 2020 code)",
    )
    g.add_argument(
        "--conv1-t-stride",
        "--conv1_t_stride",
        type=positive_int,
        help="temporal stride of the first conv",
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
        help="A: zero-padded identity (2018 ResNet-18/34); B: 1x1x1 conv",
    )
    g.add_argument(
        "--widen-factor",
        "--resnet_widen_factor",
        "--wide_resnet_k",
        type=positive_float,
        help="width multiplier (Wide ResNet's k)",
    )
    g.add_argument(
        "--cardinality", "--resnext_cardinality", type=positive_int, help="ResNeXt groups"
    )
    g.add_argument(
        "--stem-width", type=positive_int, help="first conv's width (64 in the 2018 files)"
    )
    g.add_argument(
        "--pretrain-path",
        "--pretrain_path",
        help="checkpoint to fine-tune from (any supported format)",
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
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument(
        "--dampening", type=float, default=0.0, help="SGD dampening (0.9 in the 2018 code)"
    )
    g.add_argument(
        "--weight-decay", "--weight_decay", type=float, default=1e-3, help="L2 weight decay"
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
    _switch(g, "val", True, "validate every epoch")
    g.add_argument(
        "--resume",
        "--resume_path",
        help="a checkpoint, or 'auto' (<result>/last.pth if there is one)",
    )
    g.add_argument(
        "--checkpoint",
        type=non_negative_int,
        default=10,
        help="also keep save_<N>.pth every N epochs (0: never)",
    )
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
    g.add_argument(
        "--seed",
        "--manual_seed",
        type=int,
        default=1,
        help="seed of the model's initialisation and the data order",
    )
    g.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.set_defaults(func=lambda a: _commands().cmd_train(a))


def add_test_parser(sub) -> None:
    p = _parser(sub, "test", "video-level evaluation of a checkpoint on an annotated subset")
    p.add_argument(
        "--checkpoint", "--resume_path", required=True, help="the model (any supported checkpoint)"
    )
    p.add_argument("--video-path", "--video_path", required=True, help="root of the videos")
    p.add_argument(
        "--annotation-path", "--annotation_path", required=True, help="the annotation JSON"
    )
    p.add_argument(
        "--result-path",
        "--result_path",
        required=True,
        help="folder for <subset>.json, metrics.json, per_class.csv, confusion.png",
    )
    p.add_argument(
        "--subset",
        "--inference_subset",
        default="validation",
        help="training, validation or testing",
    )
    p.add_argument(
        "--window-stride",
        "--inference_stride",
        type=positive_int,
        default=None,
        help="sliding-window stride in frames (default: one clip, no overlap)",
    )
    p.add_argument(
        "--tail",
        choices=("pad", "drop"),
        default="pad",
        help="the end of a video: pad = one more window, loop-padded, so every frame counts; "
        "drop = the sister tool's windows (complete windows only, ending before the last frame; "
        "a video shorter than one window still gets one padded window)",
    )
    p.add_argument(
        "--n-clips",
        type=non_negative_int,
        default=0,
        help="N evenly spaced clips per video instead of every window (0: windows)",
    )
    p.add_argument("--three-crop", action="store_true", help="3 spatial crops per clip")
    p.add_argument(
        "--topk",
        "--output_topk",
        type=positive_int,
        default=5,
        help="labels per video in <subset>.json",
    )
    p.add_argument(
        "--batch-size", "--batch_size", type=positive_int, default=16, help="clips per forward pass"
    )
    p.add_argument(
        "--workers",
        "--n_threads",
        type=non_negative_int,
        default=2,
        help="DataLoader worker processes",
    )
    _switch(p, "amp", None, "bf16 autocast (default: on for GPUs and CPUs with native bf16)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cpu)")
    _switch(
        p,
        "compile",
        None,
        "torch.compile the network (default: only for 2000 windows or more, where the one-time "
        "compile pays for itself; the choice is printed)",
    )
    p.set_defaults(func=lambda a: _commands().cmd_test(a))


def add_inference_parser(sub, name: str) -> None:
    what = "per-video and per-clip labels" if name == "classify" else "pooled clip features"
    p = _parser(sub, name, f"{what} of raw video files, folders or list files")
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
    if name == "classify":
        p.add_argument(
            "--output",
            "-o",
            help="JSON file (the sister tool's layout, with clip times), built from "
            "<name>.parts/ when done; a re-run skips videos done",
        )
        p.add_argument("--topk", type=positive_int, default=5, help="labels shown per video")
        p.add_argument(
            "--timeline",
            metavar="DIR",
            help="a PNG per video of 3 clips or more: the top-k class probabilities over time",
        )
        p.add_argument(
            "--render",
            metavar="DIR",
            help="each video written again (H.264, same size and rate) with its clips' labels",
        )
    else:
        p.add_argument(
            "--output",
            "-o",
            required=True,
            help="a folder (.npy, .mean.npy and .segments.json per video, manifest.csv) or a "
            ".h5/.hdf5 file (built from <name>.parts/ at the end); a re-run skips videos done",
        )
        p.add_argument(
            "--layer",
            help="take the pooled features of this stage instead of the last one: layer1-layer4 "
            "(ResNets, R(2+1)D), features.denseblock1-4 / features.transition1-3 (DenseNet)",
        )
        p.add_argument(
            "--spatial",
            action="store_true",
            help="keep the stage's map unpooled: clips x C x T' x H' x W' per video",
        )
        p.add_argument(
            "--clip-length", type=positive_int, help="frames per clip (default: the checkpoint's)"
        )
        p.add_argument(
            "--sample-size",
            type=positive_int,
            help="input size in pixels (default: the checkpoint's)",
        )
    p.add_argument(
        "--window-stride",
        "--stride",
        type=positive_int,
        default=None,
        help="sliding-window stride in frames (default: one clip, no overlap)",
    )
    p.add_argument(
        "--tail",
        choices=("pad", "drop"),
        default="pad",
        help="the end of a video: pad = one more window, loop-padded, so every frame counts; "
        "drop = the sister tool's windows (complete windows only, ending before the last frame; "
        "a video shorter than one window still gets one padded window)",
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--verbose", action="store_true", help="name every non-video file the folders held"
    )
    p.add_argument(
        "--batch-size", "--batch_size", type=positive_int, default=8, help="clips per forward pass"
    )
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=1,
        help="DataLoader worker processes decoding ahead of the model (0: decode in this one)",
    )
    _switch(p, "amp", None, "bf16 autocast (default: on for GPUs and CPUs with native bf16)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cpu)")
    _switch(
        p,
        "compile",
        None,
        "torch.compile the network (default: only for 2000 windows or more, where the one-time "
        "compile pays for itself; the choice is printed)",
    )
    p.set_defaults(func=lambda a: getattr(_commands(), f"cmd_{name}")(a))


def main(argv: list[str] | None = None) -> int:
    from .data.annotations import AnnotationError
    from .data.sources import VideoReadError
    from .files import OutputCollision
    from .models import CheckpointError
    from .train import TrainingError, TrainingInterrupted

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TrainingInterrupted as stop:
        print(f"cnn3d {args.command}: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"cnn3d {args.command}: interrupted", file=sys.stderr)
        return 130
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
    except RuntimeError as error:
        if "DataLoader worker" not in str(error):
            raise
        # a worker killed from outside (out of memory, a CPU limit): say so, not a traceback
        print(
            f"cnn3d {args.command}: error: {str(error).strip()} A data-loading worker process "
            "died; this is most often memory: try fewer --workers or a smaller --batch-size"
            + (", then --resume auto continues from last.pth" if args.command == "train" else ""),
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
