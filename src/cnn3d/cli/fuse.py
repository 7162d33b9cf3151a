"""`cnn3d fuse`: two-stream (or more) video accuracy from test results' per-video scores."""

from __future__ import annotations

from ..values import positive_int
from .common import add_parser


def add(sub) -> None:
    p = add_parser(sub, "fuse", "two-stream accuracy: average the video scores of test results")
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
    p.set_defaults(run=run)


def run(args) -> int:
    if len(args.results) < 2:
        from ..errors import UsageError

        raise UsageError("fuse needs two results or more")
    from ..evaluation.evaluate import fuse_results
    from . import checks

    checks.output_folder(args.output, "--output")
    summary = fuse_results(args.results, args.output, args.weights, args.topk)
    print(
        f"fused {len(args.results)} results over {summary['n_videos']} videos "
        f"({summary['videos_left_out']} not in every result): video top-1 "
        f"{summary['video_top1']:.4f}  top-5 {summary['video_top5']:.4f}  mean class acc "
        f"{summary['mean_class_accuracy']:.4f}; wrote {args.output}"
    )
    return 0
