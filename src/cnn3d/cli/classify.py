"""`cnn3d classify`: per-video and per-clip labels of raw videos (the sister tool's JSON)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import Interrupted, UsageError
from ..values import non_negative_int, positive_float, positive_int
from . import checks, videojob
from .common import add_crop_options, add_parser, crop_settings, inference_config, switch


def add(sub) -> None:
    p = add_parser(
        sub, "classify", "per-video and per-clip labels of raw video files, folders or list files"
    )
    videojob.add_video_job_options(p, "classify")
    p.add_argument(
        "--output",
        "-o",
        help="a .json file (the sister tool's layout, with clip times), built from "
        "<name>.parts/ when done; a re-run skips videos done; with --live, the .jsonl file "
        "of the JSON lines (default: print only)",
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
        help="a folder where each video is written again with its clips' labels (H.264, same "
        "frame rate and size, an odd width or height cut to even), as DIR/<name>.mp4; with "
        "--live, the stream as it plays, as DIR/<source name>.mp4 (a FILE.mp4 is still taken "
        "there, as before) (default: none)",
    )
    add_crop_options(p, order=False)  # a window's crops' logits are averaged: order is moot
    add_live_options(p)
    p.epilog = EXIT_STATUSES
    p.set_defaults(run=run)


EXIT_STATUSES = (
    "Exit status: 0 done; 1 some videos failed (named on stderr), or with --live: the source "
    "gave no window to score (nothing arrived within --stall-timeout, data that does not "
    "decode, a file or pipe that broke off); 2 bad options or inputs, nothing done; 130 "
    "stopped by Ctrl-C (SIGINT), 143 by SIGTERM, 138 by SIGUSR1 (what was written is complete)."
)
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")


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
    switch(
        g,
        "append",
        False,
        "add the JSON lines to an existing -o file (without it, a non-empty -o file is refused)",
    )
    g.add_argument(
        "--max-windows",
        type=positive_int,
        help="stop after this many scored windows (default: until the stream ends)",
    )


def run_live(args) -> int:
    """`classify --live`: JSON lines to -o (or standard output), a status line on stderr; the
    exit status of EXIT_STATUSES."""
    from ..inference.live import LiveConfig, LiveStats, model_scorer

    check_live(args)
    config = inference_config(args)
    model = videojob.load(args, config.runtime.torch_device())
    from ..models import check_input_channels

    check_input_channels(model, 3, args.live)  # a stream is RGB
    live = LiveConfig(
        window_stride=args.window_stride, realtime=args.realtime, reconnects=args.reconnects,
        stall_s=args.stall_timeout, smoothing=args.smooth, topk=args.topk,
        max_windows=args.max_windows, tail=args.tail,
    )  # fmt: skip
    stride = live.window_stride or model.spec.clip_length
    score = model_scorer(model, config.runtime)
    stats = LiveStats()
    with open_json_lines(args) as out:
        stop = run_stream(args, model, config.runtime, score, live, stats, out)
    if stop.requested:
        raise Interrupted(
            f"stopped by {stop.requested}: {stats.line(stride)}; the JSON lines written are "
            "complete",
            stop.exit_code,
        )
    if stats.scored == 0 or stats.broken:
        what = "no window to score" if stats.scored == 0 else "the input broke off"
        print(f"live: {what}: {stats.ended}: {stats.line(stride)}", file=sys.stderr)
        return 1
    print(f"live: {stats.ended or 'stopped'}: {stats.line(stride)}", file=sys.stderr)
    return 0


def check_live(args) -> None:
    """Everything `--live` can check before the model is loaded."""
    from ..inference.live import is_camera, is_url, parse_smoothing

    if not args.checkpoint:
        raise UsageError("--checkpoint is required: the model to run")
    parse_smoothing(args.smooth)
    if args.crops not in (None, 1):
        raise UsageError(f"--crops {args.crops}: --live scores one centre crop per window")
    source = args.live
    if not (is_url(source) or is_camera(source) or source == "-" or Path(source).exists()):
        raise UsageError(f"{source}: cannot be opened: no such file or FIFO")
    if args.render:
        args.render = str(live_render_file(args.render, source))
        checks.output_file(args.render, "--render")
    if args.inputs or args.output and args.output != "-" and Path(args.output).is_dir():
        raise UsageError("--live reads one SOURCE; give files to classify without --live")
    if args.output and args.output != "-":
        check_json_lines_file(Path(args.output), args.append)


def live_render_file(render: str, source: str) -> Path:
    """Where `--render` writes a live stream: DIR/<source name>.mp4, or the FILE.mp4 given
    (the older spelling)."""
    from ..inference.live import is_camera, is_url

    if render.lower().endswith(".mp4"):
        return Path(render)
    if source == "-":
        name = "stdin"
    elif is_camera(source):
        name = "camera" + "".join(c for c in source if c.isdigit())
    elif is_url(source):
        rest = source.split("://", 1)[-1].split("?")[0].strip("/")
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in rest) or "stream"
    else:
        name = Path(source).stem or "stream"
    return Path(render) / f"{name}.mp4"


def check_json_lines_file(path: Path, append: bool) -> None:
    """-o with --live: a .jsonl file (or a device or FIFO such as /dev/null), never one that
    holds another run's lines unless --append says to add to them."""
    if path.exists() and not path.is_file():
        return  # /dev/null, a FIFO: written as given
    if path.suffix.lower() not in JSON_LINES_SUFFIXES:
        raise UsageError(
            f"-o {path}: --live writes JSON lines: name the file .jsonl (or .ndjson, .json)"
        )
    checks.output_file(path, "-o (the JSON lines)")
    if not append and path.is_file() and path.stat().st_size > 0:
        raise UsageError(
            f"-o {path}: exists and holds lines of another run; give --append to add to it, "
            "or another name"
        )


def open_json_lines(args):
    """The -o file (appended to with --append), or standard output, as a context."""
    import contextlib

    if not args.output or args.output == "-":
        return contextlib.nullcontext(sys.stdout)
    return open(args.output, "a" if args.append else "w", encoding="utf-8")


def run_stream(args, model, runtime, score, live, stats, out):
    """classify_live with its lines: 'waiting for frames' once the model is ready, a status
    line every 2 s with --progress; returns the StopSignals (which signal, if any, stopped it).
    A signal stops at once; the lines written are whole (each is one write, flushed)."""
    import json

    from ..inference.live import classify_live
    from ..signals import StopSignals

    stride = live.window_stride or model.spec.clip_length
    last = [0.0]

    def emit(entry: dict) -> None:
        out.write(json.dumps(entry) + "\n")
        out.flush()

    def status(stats) -> None:
        if args.progress and time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            print(f"live: {stats.line(stride)}", file=sys.stderr, flush=True)

    with StopSignals(graceful=False) as stop:
        print(f"live: model loaded ({precision_line(model, runtime)}); waiting for frames from "
              f"{args.live}", file=sys.stderr, flush=True)  # fmt: skip
        try:
            classify_live(
                args.live, score, model.spec, model.spec.class_names, live, emit,
                status=status, render=args.render, stats=stats,
            )  # fmt: skip
        except KeyboardInterrupt:
            if not stop.requested:
                raise
    return stop


def precision_line(model, runtime) -> str:
    """Where and in what precision the model runs, in words (bf16 by default on CPUs with
    native bf16, whose probabilities differ from fp32's by about 0.01)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return "an exported model, on the CPU in fp32"
    device = runtime.torch_device()
    name = runtime.precision_name(device)
    hint = "; --no-amp: fp32, probabilities differ by about 0.01" if name != "fp32" else ""
    return f"{device}, {name}{hint}"


def run(args) -> int:
    from ..files import output_name
    from ..inference.bulk import run_bulk
    from ..inference.classify import (
        classification_entry,
        classify_job,
        names_as_listed,
        print_table,
    )
    from ..inference.runner import iter_model

    if args.live:
        return run_live(args)
    videojob.check(args, "score")
    if args.output:
        if Path(args.output).suffix.lower() != ".json":
            raise UsageError(
                f"-o {args.output}: classify writes JSON (the sister tool's layout): name the "
                "file .json"
            )
        checks.output_file(args.output, "-o (the classify JSON)")
    for folder, flag in ((args.timeline, "--timeline"), (args.render, "--render")):
        if folder:
            checks.output_folder(folder, flag)
    shard = videojob.shard_of(args)
    config = inference_config(args, fps=args.fps, **crop_settings(args))
    # -o writes one JSON file (its per-video parts keep the extension): only the timeline and
    # render files are named without it
    inputs = videojob.collect(args, check_names=bool(args.timeline or args.render))
    if not inputs.paths:
        return videojob.nothing_to_do(inputs)
    model = videojob.load(args, config.runtime.torch_device())
    print(f"classify: {precision_line(model, config.runtime)}", file=sys.stderr, flush=True)
    names = model.spec.class_names
    # the sister tool's --input list: each video named as listed (its `video`)
    listed = names_as_listed(args.input_list, args.video_root) if args.input_list else {}

    def on_video(result) -> dict:
        entry = classification_entry(result, names, args.topk)
        entry["video"] = listed.get(result.video, entry["video"])
        print_table([entry], args.topk)
        key = output_name(result.name)
        if args.timeline and len(entry["clips"]) >= 3:
            from ..evaluation.plots import save, timeline_figure

            save(timeline_figure(entry, names, args.topk), Path(args.timeline) / f"{key}.png")
        if args.render:
            from ..inference.render import render_video

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
