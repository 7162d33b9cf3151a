"""`cnn3d prepare`: annotation files from each dataset's own files, frames and flow from videos,
and the bundled synthetic dataset."""

from __future__ import annotations

import sys
from pathlib import Path

from ..values import fraction, non_negative_int, positive_int
from . import checks
from .common import add_parser, add_progress

ANNOTATION_SOURCES = {
    "ucf101": "folder with classInd.txt, trainlist0N.txt, testlist0N.txt",
    "hmdb51": "folder with <class>_test_splitN.txt files",
    "kinetics": "the CSV files (train/val/test)",
    "mit": "folder with moments_categories.txt, trainingSet.csv, validationSet.csv",
    "activitynet": "the ActivityNet v1.3 JSON",
    "custom": "a folder with a folder per class, or a CSV of path,label[,subset]",
}


def add(sub) -> None:
    p = add_parser(sub, "prepare", "build annotation JSON, extract frames, write the demo data")
    psub = p.add_subparsers(dest="kind", required=True)
    for kind, src_help in ANNOTATION_SOURCES.items():
        add_annotation_parser(psub, kind, src_help)
    add_frames_parser(psub, "frames")
    add_frames_parser(psub, "flow")
    q = add_parser(
        psub, "synthetic", "write the bundled demo dataset (UCF-101 layout) and its annotation JSON"
    )
    q.add_argument("dst", help="output folder (videos/, splits/, synthetic_01.json)")
    q.add_argument(
        "--n-classes",
        type=positive_int,
        default=6,
        help="how many of the motion classes (8 at most)",
    )
    q.add_argument(
        "--classes",
        nargs="+",
        help="class names to use instead of --n-classes (default: the first --n-classes)",
    )
    q.add_argument(
        "--groups",
        type=positive_int,
        default=6,
        help="groups per class (group 1 is the validation split)",
    )
    q.add_argument("--clips-per-group", type=positive_int, default=3, help="videos per group")
    q.set_defaults(run=run_synthetic)


def add_annotation_parser(psub, kind: str, src_help: str) -> None:
    q = add_parser(psub, kind, f"annotations from {src_help}")
    q.add_argument("src", nargs="+" if kind == "kinetics" else 1, help=src_help)
    q.add_argument(
        "--out",
        required=True,
        help="output folder (ucf101, hmdb51: one JSON per split) or JSON file",
    )
    q.add_argument(
        "--video-path",
        "--video_path",
        help="where the videos are: records each one's frame count and fps (so training and "
        "testing open no video to start), reports missing and unreadable videos (default: "
        "none, nothing recorded; custom folders: the folder itself)",
    )
    q.add_argument(
        "--jobs",
        "--n_jobs",
        type=positive_int,
        default=1,
        help="processes counting frames (with --video-path)",
    )
    add_progress(q, None, "progress bar while counting frames (default: from 1000 videos on)")
    if kind in ("ucf101", "hmdb51"):
        q.add_argument(
            "--splits",
            type=int,
            nargs="+",
            choices=[1, 2, 3],
            default=[1, 2, 3],
            help="which official splits to write (a split whose files are missing is skipped "
            "with a note)",
        )
    if kind == "kinetics":
        q.add_argument(
            "--class-order",
            choices=["alphabetical", "first-appearance"],
            default="alphabetical",
            help="label order: first-appearance in the training CSV is what the 2020 "
            "Kinetics-700 models use",
        )
    if kind == "custom":
        q.add_argument(
            "--val-fraction",
            type=fraction,
            default=0.2,
            help="share of each class's videos put in validation",
        )
        q.add_argument("--verbose", action="store_true", help="name every file skipped")
    q.set_defaults(run=run_annotations)


def add_frames_parser(psub, name: str) -> None:
    if name == "frames":
        q = add_parser(psub, "frames", "videos -> JPEG folders, HDF5 or short-GOP mp4")
        formats = ["jpg", "hdf5", "mp4"]
        help_text = (
            "image_%%05d.jpg folders, the original HDF5 layout, or mp4 with a keyframe every "
            "16 frames"
        )
    else:
        q = add_parser(
            psub, "flow", "videos or image_%%05d.jpg folders -> optical flow (OpenCV DIS or TV-L1)"
        )
        formats = ["jpg", "hdf5"]
        help_text = (
            "flow_x_/flow_y_%%05d.jpg folders, or the original's HDF5 (video_u, video_v); "
            "displacements of +-20 px map to 0-255"
        )
    q.add_argument("src", help="folder of videos (class folders kept)")
    q.add_argument("dst", help="output folder")
    q.add_argument("--format", choices=formats, default=formats[0], help=help_text)
    if name == "flow":
        q.add_argument(
            "--method",
            choices=["dis", "tvl1"],
            default="dis",
            help="dis: OpenCV's DIS (medium preset), tens of frames/s per core; tvl1: Dual "
            "TV-L1, the flow I3D's flow stream and its released features were computed with, "
            "1-2 s per 320x240 frame pair per core (needs pip install -e '.[tvl1]')",
        )
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
    add_progress(q)
    q.set_defaults(run=run_frames)


def run_frames(args) -> int:
    from ..data.prepare import prepare_frames
    from ..files import describe_skipped

    checks.input_folder(args.src, "the videos")
    checks.output_folder(args.dst, "the output")
    report = prepare_frames(
        args.src,
        args.dst,
        args.format,
        args.short_side or None,
        args.jobs,
        args.quality,
        progress=args.progress,
        flow=args.kind == "flow",
        flow_method=getattr(args, "method", "dis"),
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


def run_synthetic(args) -> int:
    from ..data.synthetic import CLASSES, write_synthetic_annotations, write_synthetic_dataset

    classes = tuple(args.classes) if args.classes else CLASSES[: args.n_classes]
    layout = write_synthetic_dataset(args.dst, classes, args.groups, args.clips_per_group)
    write_synthetic_annotations(layout)
    print(
        f"{layout.video_dir}: {layout.n_videos} videos of {len(classes)} classes; "
        f"splits in {layout.split_dir}; annotations in {layout.annotation_path} (train with "
        f"--video-path {layout.video_dir} --annotation-path {layout.annotation_path})"
    )
    return 0


def run_annotations(args) -> int:
    from ..data import annotations as A
    from ..data.prepare import split_file_name

    out, kind = Path(args.out), args.kind
    video_path = args.video_path
    for src in args.src:
        if kind in ("ucf101", "hmdb51", "mit"):
            checks.input_folder(src, f"the {kind} split files")
        elif kind in ("kinetics", "activitynet"):
            checks.input_file(src, f"a {kind} annotation file", (".csv", ".json"))
        elif not Path(src).exists():
            checks.input_file(src, "a class folder or a CSV")
    if kind in ("ucf101", "hmdb51"):
        checks.output_folder(out, "--out")
    else:
        checks.output_file(out, "--out")
    if video_path:
        checks.input_folder(video_path, "--video-path: the videos")
    if kind in A.SPLIT_KINDS:
        written = 0
        for split in args.splits:
            try:
                built = A.build_annotations(kind, args.src, split)
            except A.AnnotationError as error:
                if len(args.splits) == 1:
                    raise
                print(f"split {split} skipped: {error}")
                continue
            out.mkdir(parents=True, exist_ok=True)
            report(built, out / split_file_name(kind, split), video_path, args)
            written += 1
        if not written:
            raise A.AnnotationError(f"{args.src[0]}: none of the splits {args.splits} is there")
        return 0
    order, fraction = (
        getattr(args, "class_order", "alphabetical"),
        getattr(args, "val_fraction", 0.2),
    )
    built = A.build_annotations(kind, args.src, class_order=order, val_fraction=fraction)
    if kind == "custom" and Path(args.src[0]).is_dir():
        video_path = video_path or args.src[0]  # a folder per class: the videos are there
    report(built, out, video_path, args)
    return 0


def report(annotations, out: Path, video_path, args) -> None:
    """Write the file (`data.prepare.save_annotations`) and say what it holds."""
    from ..data.prepare import save_annotations
    from ..files import describe_skipped

    saved = save_annotations(annotations, out, video_path, args.jobs, args.progress)
    if saved.skipped_files:
        print(describe_skipped(saved.skipped_files, getattr(args, "verbose", False)))
    print(
        f"{saved.path}: {saved.n_classes} classes, "
        + ", ".join(f"{n} {s}" for s, n in saved.counts.items() if n)
    )
    problems = [f"{v}: not found" for v in saved.missing] + saved.unreadable + saved.duplicates
    if problems:
        print(
            f"  {len(saved.missing)} listed videos not found, {len(saved.unreadable)} "
            f"unreadable, {len(saved.duplicates)} listed twice (left out; all named in "
            f"{saved.problems_file}):"
        )
        for line in problems[:5]:
            print(f"    {line}")
        if len(problems) > 5:
            print(f"    ... and {len(problems) - 5} more")
