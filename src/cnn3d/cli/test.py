"""`cnn3d test`: video-level accuracy of a checkpoint on an annotated subset."""

from __future__ import annotations

from ..errors import UsageError
from ..values import non_negative_int, positive_int
from . import checks, original
from .common import (
    add_config_options,
    add_crop_options,
    add_data_paths,
    add_parser,
    add_progress,
    add_runtime_options,
    add_window_options,
    crop_settings,
    inference_config,
)


def add(sub) -> None:
    p = add_parser(sub, "test", "video-level evaluation of a checkpoint on an annotated subset")
    p.add_argument(
        "--checkpoint", "--resume_path", required=True, help="the model (any supported checkpoint)"
    )
    add_data_paths(p)
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
        "--n-clips",
        type=non_negative_int,
        default=0,
        help="N evenly spaced clips per video instead of every window (0: windows)",
    )
    p.add_argument(
        "--three-crop",
        action="store_true",
        help="3 spatial crops per clip, each scored as a clip of its own (the original's); "
        "--crops 3 instead averages a window's crops into one score",
    )
    add_crop_options(p, order=False)
    p.add_argument(
        "--topk",
        "--output_topk",
        type=positive_int,
        default=5,
        help="labels per video in <subset>.json",
    )
    p.add_argument(
        "--record",
        metavar="FILE.pth",
        help="also write a copy of the checkpoint whose card records this evaluation (the "
        "protocol and the metrics; `cnn3d info` prints it) (default: none)",
    )
    add_progress(p)
    add_window_options(p, "--inference_stride")
    add_runtime_options(p, batch_size=16, workers=2, workers_help="DataLoader worker processes")
    original.add_test(p)
    add_config_options(p, "evaluation protocol")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..evaluation.evaluate import run_test

    if args.three_crop and args.crops not in (None, 1):
        raise UsageError("--three-crop and --crops: give one (--crops 3 averages the three)")
    checks.input_file(args.checkpoint, "a checkpoint", checks.CHECKPOINT_SUFFIXES)
    checks.input_folder(args.video_path, "--video-path: the videos")
    checks.input_file(args.annotation_path, "an annotation file", (".json",))
    checks.output_folder(args.result_path, "--result-path")
    if args.record:
        checks.output_file(args.record, "--record")
        if not args.record.endswith(".pth"):
            raise UsageError(f"{args.record}: --record writes a .pth copy (it keeps the card)")
    summary = run_test(
        args.checkpoint,
        args.video_path,
        args.annotation_path,
        args.result_path,
        subset=args.subset,
        n_clips=args.n_clips,
        three_crop=args.three_crop,
        topk=args.topk,
        config=inference_config(args, **crop_settings(args)),
        progress=args.progress,
    )
    if args.record:
        from ..card import evaluation_entry, record_evaluation

        protocol = {
            "views_per_video": summary["views_per_video"],
            "n_clips": args.n_clips,
            "crop": "three" if args.three_crop else "center",
            "crops_per_window": args.crops or 1,
            "window_stride": args.window_stride,
            "tail": summary["tail"],
        }
        entry = evaluation_entry(summary, args.subset, args.annotation_path, protocol)
        record_evaluation(args.checkpoint, args.record, entry)
        print(f"wrote {args.record}: {args.checkpoint} with this evaluation on its card")
    return 1 if summary["unreadable_videos"] else 0
