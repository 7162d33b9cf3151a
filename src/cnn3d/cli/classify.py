"""`cnn3d classify`: per-video and per-clip labels of raw videos (the sister tool's JSON)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import UsageError
from . import checks, videojob
from .common import (
    add_parser,
    inference_config,
    non_negative_int,
    positive_float,
    positive_int,
    switch,
)


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
        metavar="DIR|FILE.mp4",
        help="each video written again with its clips' labels (H.264, same frame rate and "
        "size, an odd width or height cut to even); with --live, the .mp4 file the annotated "
        "stream is written to as it plays (default: none)",
    )
    add_live_options(p)
    p.set_defaults(run=run)


def add_live_options(p) -> None:
    g = p.add_argument_group("live video (--live)")
    g.add_argument(
        "--live",
        metavar="SOURCE",
        help="classify a stream as it plays: an rtsp/rtmp/http/udp/hls URL, a file or FIFO, "
        "- for standard input, or a camera (/dev/videoN or an index); writes JSON lines "
        "(default: none)",
    )
    switch(g, "realtime", False, "play a --live file at its own frame rate")
    g.add_argument(
        "--smooth",
        default="none",
        help="smoothed scores beside each window's: ema:A or mean:K (the last K windows)",
    )
    g.add_argument(
        "--reconnects",
        type=non_negative_int,
        default=5,
        help="times a stalled or dropped stream is opened again (backoff 0.5 s, doubling)",
    )
    g.add_argument(
        "--stall-timeout",
        type=positive_float,
        default=5.0,
        help="seconds without data after which a stream counts as stalled",
    )
    g.add_argument(
        "--max-windows",
        type=positive_int,
        help="stop after this many scored windows (default: until the stream ends)",
    )


def run_live(args) -> int:
    """`classify --live`: JSON lines to -o (or standard output), a status line on stderr."""
    import json

    from ..live import LiveConfig, classify_live, model_scorer, parse_smoothing
    from ..signals import StopSignals

    if not args.checkpoint:
        raise UsageError("--checkpoint is required: the model to run")
    parse_smoothing(args.smooth)
    if args.render:
        if not args.render.endswith(".mp4"):
            raise UsageError(f"{args.render}: with --live, --render is the .mp4 file to write")
        checks.output_file(args.render, "--render")
    if args.inputs or args.output and args.output != "-" and Path(args.output).is_dir():
        raise UsageError("--live reads one SOURCE; give files to classify without --live")
    config = inference_config(args)
    model = videojob.load(args, config.runtime.torch_device())
    from ..models import check_input_channels

    check_input_channels(model, 3, args.live)  # a stream is RGB
    live = LiveConfig(
        window_stride=args.window_stride, realtime=args.realtime, reconnects=args.reconnects,
        stall_s=args.stall_timeout, smoothing=args.smooth, topk=args.topk,
        max_windows=args.max_windows,
    )  # fmt: skip
    out = sys.stdout if not args.output or args.output == "-" else open(args.output, "a")
    last = [0.0]

    def emit(entry: dict) -> None:
        out.write(json.dumps(entry) + "\n")
        out.flush()

    def status(stats) -> None:
        if args.progress and time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            print(f"live: {stats.line(live.window_stride or model.spec.clip_length)}",
                  file=sys.stderr, flush=True)  # fmt: skip

    score = model_scorer(model, config.runtime)
    with StopSignals(graceful=True) as stop:
        try:
            stats = classify_live(
                args.live, score, model.spec, model.spec.class_names, live, emit,
                should_stop=lambda: bool(stop.requested), status=status,
                render=args.render,
            )  # fmt: skip
        finally:
            if out is not sys.stdout:
                out.close()
    stride = live.window_stride or model.spec.clip_length
    why = stats.ended or (f"stopped by {stop.requested}" if stop.requested else "stopped")
    print(f"live: {why}: {stats.line(stride)}", file=sys.stderr)
    return 0


def run(args) -> int:
    from ..bulk import run_bulk
    from ..classification import classification_entry, classify_job, print_table
    from ..files import output_name
    from ..inference import iter_model

    if args.live:
        return run_live(args)
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
