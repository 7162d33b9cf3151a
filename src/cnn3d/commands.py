"""The train, test, classify, features and demo subcommands (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def train_config_from_args(args: argparse.Namespace):
    from .train import TrainConfig

    options = {}
    for name in (
        "n_input_channels",
        "conv1_t_size",
        "conv1_t_stride",
        "shortcut",
        "widen_factor",
        "cardinality",
        "stem_width",
    ):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.no_max_pool:
        options["no_max_pool"] = True
    if args.input == "flow":
        options.setdefault("n_input_channels", 2)
    return TrainConfig(
        video_path=args.video_path,
        annotation_path=args.annotation_path,
        result_path=args.result_path,
        clip_length=args.clip_length,
        sample_size=args.sample_size,
        t_stride=args.t_stride,
        train_crop=args.train_crop,
        crop_scale=tuple(args.crop_scale),
        flip=args.flip,
        normalization=args.normalization,
        n_val_clips=args.n_val_clips,
        batch_size=args.batch_size,
        workers=args.workers,
        skip_bad_videos=args.skip_bad_videos,
        family=args.model,
        depth=args.model_depth,
        model_options=options,
        pretrain_path=args.pretrain_path,
        ft_begin_module=args.ft_begin_module,
        lr=args.lr,
        momentum=args.momentum,
        dampening=args.dampening,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        schedule=args.lr_scheduler,
        milestones=tuple(args.milestones),
        plateau_patience=args.plateau_patience,
        warmup_epochs=args.warmup_epochs,
        epochs=args.n_epochs,
        validate=args.val,
        resume=args.resume,
        checkpoint_every=args.checkpoint,
        amp=args.amp,
        channels_last=args.channels_last,
        sync_bn=args.sync_bn,
        freeze_bn=args.freeze_bn,
        tensorboard=args.tensorboard,
        progress=args.progress,
        seed=args.seed,
        device=args.device,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    metrics = train(train_config_from_args(args))
    if "curves" in metrics:
        print(f"results in {args.result_path} (logs, checkpoints, curves.png)")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from .testing import run_test

    summary = run_test(
        args.checkpoint,
        args.video_path,
        args.annotation_path,
        args.result_path,
        subset=args.subset,
        window_stride=args.window_stride,
        tail=args.tail,
        n_clips=args.n_clips,
        three_crop=args.three_crop,
        topk=args.topk,
        batch_size=args.batch_size,
        workers=args.workers,
        amp=args.amp,
        device=args.device,
        compile=args.compile,
    )
    return 1 if summary["unreadable_videos"] else 0


def load_model_for_inference(args, device: str, need_names: bool = True):
    from .models import load_model, read_class_names

    names = read_class_names(args.class_names) if args.class_names else None
    model = load_model(args.checkpoint, device=device, class_names=names, fold_bn=True)
    if model.spec.class_names is None:
        model.spec.class_names = [f"class_{i}" for i in range(model.spec.n_classes)]
        if need_names:
            print(
                f"{args.checkpoint}: no class names stored; labels are class_0...; give "
                "--class-names FILE",
                file=sys.stderr,
            )
    return model


def cmd_classify(args: argparse.Namespace) -> int:
    from .extract import Shard, classify_job, run_job
    from .files import output_name
    from .infer import classification_entry, iter_model, print_table

    shard = Shard.parse(args.shard) if args.shard else Shard.from_environment()
    device = _rank_device(args.device, shard)
    writes = bool(args.output or args.timeline or args.render)
    inputs = _inputs(args, check_names=writes)
    if not inputs.paths:
        return _nothing_to_do(inputs)
    model = load_model_for_inference(args, device)
    names = model.spec.class_names

    def on_video(result) -> dict:
        entry = classification_entry(result, names, args.topk)
        print_table([entry], args.topk)
        key = output_name(result.name)
        if args.timeline and len(entry["clips"]) >= 3:
            from .plots import save, timeline_figure

            save(timeline_figure(entry, names, args.topk), Path(args.timeline) / f"{key}.png")
        if args.render:
            from .render import render_video

            render_video(Path(result.video), entry, Path(args.render) / f"{key}.mp4")
        return entry

    options = _inference_options(args, device)
    if args.output:
        job = classify_job(Path(args.output), shard, on_video)
        summary = run_job(
            model, inputs.paths, inputs.names, job, shard, not args.no_progress, **options
        )
        print(f"classified into {args.output}: {summary.line()}")
        failed = summary.failed
    else:
        failed = 0
        for _, result, message in iter_model(model, inputs.paths, names=inputs.names, **options):
            if result is None:
                print(f"failed: {message}", file=sys.stderr)
                failed += 1
            else:
                on_video(result)
    return _failures(failed, inputs.problems)


def _inference_options(args, device: str) -> dict:
    """What `classify` and `features` pass to `infer.iter_model` from their shared options."""
    return dict(
        batch_size=args.batch_size,
        window_stride=args.window_stride,
        tail=args.tail,
        device=device,
        workers=args.workers,
        amp=args.amp,
        compile=args.compile,
        fps=args.fps,
    )


def _rank_device(device: str | None, shard) -> str:
    device = device or "cpu"
    if device.startswith("cuda") and shard.count > 1 and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"  # torchrun: one GPU per process
    return device


def _inputs(args, check_names: bool = True):
    """The inputs, with non-video files counted and unusable inputs named; outputs that would
    collide refused before any work."""
    from .files import describe_skipped
    from .infer import check_output_names, collect_inputs

    inputs = collect_inputs(args.inputs)
    if inputs.skipped:
        print(describe_skipped(inputs.skipped, args.verbose), file=sys.stderr)
    if check_names:
        check_output_names(inputs.names, inputs.paths, args.command)
    for problem in inputs.problems:
        print(f"failed: {problem}", file=sys.stderr)
    return inputs


def _failures(failed: int, problems: list[str]) -> int:
    n = failed + len(problems)
    if n:
        print(f"{n} input(s) could not be processed (named above)", file=sys.stderr)
    return 1 if n else 0


def _nothing_to_do(inputs) -> int:
    print(f"{len(inputs.problems)} input(s) could not be used; nothing to do", file=sys.stderr)
    return 1


def cmd_features(args: argparse.Namespace) -> int:
    from .extract import Shard, extract_features

    shard = Shard.parse(args.shard) if args.shard else Shard.from_environment()
    device = _rank_device(args.device, shard)
    inputs = _inputs(args)
    if not inputs.paths:
        return _nothing_to_do(inputs)
    model = load_model_for_inference(args, device, need_names=False)
    model.spec.clip_length = args.clip_length or model.spec.clip_length
    model.spec.sample_size = args.sample_size or model.spec.sample_size
    summary = extract_features(
        model,
        inputs.paths,
        inputs.names,
        Path(args.output),
        shard,
        progress=not args.no_progress,
        layer=args.layer,
        spatial=args.spatial,
        **_inference_options(args, device),
    )
    print(f"features in {args.output}: {summary.line()}")
    return _failures(summary.failed, inputs.problems)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.output), epochs=args.epochs)
