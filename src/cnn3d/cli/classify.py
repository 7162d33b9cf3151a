"""`cnn3d classify`: per-video and per-clip labels of raw videos (the sister tool's JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

from . import checks, videojob
from .common import add_parser, inference_config, positive_int


def add(sub) -> None:
    p = add_parser(
        sub, "classify", "per-video and per-clip labels of raw video files, folders or list files"
    )
    videojob.add_video_job_options(p, "classify")
    p.add_argument(
        "--output",
        "-o",
        help="JSON file (the sister tool's layout, with clip times), built from <name>.parts/ "
        "when done; a re-run skips videos done (default: print only)",
    )
    p.add_argument("--topk", type=positive_int, default=5, help="labels shown per video")
    p.add_argument(
        "--timeline",
        metavar="DIR",
        help="a PNG per video of 3 clips or more: the top-k class probabilities over time "
        "(default: none)",
    )
    p.add_argument(
        "--render",
        metavar="DIR",
        help="each video written again with its clips' labels (H.264, same frame rate and "
        "size, an odd width or height cut to even) (default: none)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..bulk import run_bulk
    from ..classification import classification_entry, classify_job, print_table
    from ..files import output_name
    from ..inference import iter_model

    videojob.check(args, "score")
    if args.output:
        checks.output_file(args.output, "-o (the classify JSON)")
    for folder, flag in ((args.timeline, "--timeline"), (args.render, "--render")):
        if folder:
            checks.output_folder(folder, flag)
    shard = videojob.shard_of(args)
    config = inference_config(args, fps=args.fps)
    # -o writes one JSON file (its per-video parts keep the extension): only the timeline and
    # render files are named without it
    inputs = videojob.collect(args, check_names=bool(args.timeline or args.render))
    if not inputs.paths:
        return videojob.nothing_to_do(inputs)
    model = videojob.load(args, config.runtime.torch_device())
    names = model.spec.class_names

    def on_video(result) -> dict:
        entry = classification_entry(result, names, args.topk)
        print_table([entry], args.topk)
        key = output_name(result.name)
        if args.timeline and len(entry["clips"]) >= 3:
            from ..plots import save, timeline_figure

            save(timeline_figure(entry, names, args.topk), Path(args.timeline) / f"{key}.png")
        if args.render:
            from ..render import render_video

            render_video(Path(result.video), entry, Path(args.render) / f"{key}.mp4")
        return entry

    if args.output:
        job = classify_job(Path(args.output), shard, on_video)
        summary = run_bulk(model, inputs.paths, inputs.names, job, shard, args.progress, config)
        print(f"classified into {args.output}: {summary.line()}")
        return videojob.failures(summary.failed, inputs.problems)
    failed = 0
    for _, result, message in iter_model(model, inputs.paths, inputs.names, config):
        if result is None:
            print(f"failed: {message}", file=sys.stderr)
            failed += 1
        else:
            on_video(result)
    return videojob.failures(failed, inputs.problems)
