"""The train, test, classify, features and demo subcommands (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch


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
    from torch.utils.data import DataLoader

    from .data.annotations import read_annotations
    from .data.dataset import VideoDataset, collate_clips, videos_from_annotations, worker_init
    from .data.transforms import EvalTransform
    from .evaluate import compute_metrics, write_json, write_per_class_csv, write_results
    from .infer import maybe_compile
    from .models import load_model
    from .plots import write_test_figures
    from .train import TrainConfig, evaluate_loader

    model = load_model(args.checkpoint, device=args.device or "cpu", fold_bn=True)
    spec = model.spec
    annotations = read_annotations(args.annotation_path)
    names = spec.class_names or annotations.labels
    if len(annotations.labels) != spec.n_classes:
        raise ValueError(
            f"{args.annotation_path}: {len(annotations.labels)} classes, but "
            f"{args.checkpoint} predicts {spec.n_classes}"
        )
    videos, missing = videos_from_annotations(annotations, args.subset, args.video_path)
    if not videos:
        raise ValueError(f"{args.annotation_path}: no {args.subset} videos under {args.video_path}")
    stride = spec.t_stride
    views = 3 if args.three_crop else 1
    transform = EvalTransform(
        spec.sample_size, "three" if args.three_crop else "center", spec.normalization
    )
    mode = "val" if args.n_clips else "test"
    dataset = VideoDataset(
        videos,
        transform,
        mode,
        spec.clip_length,
        stride,
        n_clips=args.n_clips or 1,
        window_stride=args.window_stride,
        tail=args.tail,
        n_views=views,
        skip_bad=True,
    )
    loader = DataLoader(
        dataset,
        args.batch_size,
        num_workers=args.workers,
        collate_fn=collate_clips,
        worker_init_fn=worker_init,
    )
    cfg = TrainConfig("", "", "", amp=args.amp, channels_last=True)
    device = torch.device(args.device or "cpu")
    model.to(memory_format=torch.channels_last_3d)
    net, _ = maybe_compile(model, len(dataset), args.compile, args.batch_size)
    acc = evaluate_loader(net, loader, dataset, spec.n_classes, device, cfg)
    labels = torch.from_numpy(videos.labels).long()
    metrics = compute_metrics(acc, labels, names)
    out = Path(args.result_path)
    out.mkdir(parents=True, exist_ok=True)
    failed = sorted(set(dataset.failed))
    write_results(
        out / f"{args.subset}.json",
        list(videos.ids),
        acc.video_scores,
        names,
        args.topk,
    )
    summary = metrics.summary() | {
        # the paper's Kinetics tables report this "Average" beside top-1 and top-5
        "average_top1_top5": (metrics.video_top1 + metrics.video_top5) / 2,
        "views_per_video": (args.n_clips or "all windows")
        if views == 1
        else f"{args.n_clips or 'all windows'} x 3 crops",
        "tail": None if args.n_clips else args.tail,
        "unreadable_videos": failed,
        "missing_videos": missing,
        "checkpoint": str(args.checkpoint),
    }
    write_json(out / "metrics.json", summary)
    write_per_class_csv(out / "per_class.csv", metrics)
    title = f"{Path(args.checkpoint).name}: video top-1 {metrics.video_top1:.3f} ({metrics.n_videos} videos)"
    figures = write_test_figures(out, metrics.confusion, metrics.per_class, names, title)
    print(f"{metrics.n_videos} videos, {metrics.n_clips} clips ({args.subset})")
    print(
        f"video top-1 {metrics.video_top1:.4f}  top-5 {metrics.video_top5:.4f}  average "
        f"{(metrics.video_top1 + metrics.video_top5) / 2:.4f}  "
        f"clip top-1 {metrics.clip_top1:.4f}  mean class acc {metrics.mean_class_accuracy:.4f}"
    )
    for message in failed:
        print(f"unreadable: {message}", file=sys.stderr)
    for note in videos.notes:
        print(note)
    if missing:
        print(f"{len(missing)} annotated videos not found, e.g. {missing[:3]}", file=sys.stderr)
    print(
        f"wrote {out / f'{args.subset}.json'}, metrics.json, per_class.csv, "
        + ", ".join(f.name for f in figures)
    )
    return 1 if failed else 0


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


def _report_failures(failures, problems) -> int:
    for message in list(problems) + list(failures):
        print(f"failed: {message}", file=sys.stderr)
    n = len(failures) + len(problems)
    if n:
        print(f"{n} input(s) could not be processed", file=sys.stderr)
    return 1 if n else 0


def _infer(args: argparse.Namespace, want_features: bool):
    """Load the checkpoint and run it over every input; (model, results, failures, problems)."""
    from .files import describe_skipped
    from .infer import check_output_names, collect_inputs, run_model

    inputs = collect_inputs(args.inputs)
    if inputs.skipped:
        print(describe_skipped(inputs.skipped, args.verbose), file=sys.stderr)
    if want_features:  # refuse colliding outputs before any work
        check_output_names(inputs.names, inputs.paths, "features")
    model = load_model_for_inference(args, args.device or "cpu", need_names=not want_features)
    results, failures = run_model(
        model,
        inputs.paths,
        names=inputs.names,
        batch_size=args.batch_size,
        window_stride=args.window_stride,
        tail=args.tail,
        device=args.device or "cpu",
        workers=args.workers,
        amp=args.amp,
        want_features=want_features,
        compile=args.compile,
    )
    return model, results, failures, inputs.problems


def cmd_classify(args: argparse.Namespace) -> int:
    from .evaluate import write_json
    from .infer import classification_json, print_table

    model, results, failures, problems = _infer(args, want_features=False)
    entries = classification_json(results, model.spec.class_names, args.topk)
    print_table(entries, args.topk)
    if args.output:
        write_json(args.output, entries)
        print(f"wrote {args.output}")
    return _report_failures(failures, problems)


def cmd_features(args: argparse.Namespace) -> int:
    from .extract import Shard, extract_features
    from .files import describe_skipped
    from .infer import check_output_names, collect_inputs

    shard = Shard.parse(args.shard) if args.shard else Shard.from_environment()
    device = args.device or "cpu"
    if device.startswith("cuda") and shard.count > 1 and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"  # torchrun: one GPU per process
    inputs = collect_inputs(args.inputs)
    if inputs.skipped:
        print(describe_skipped(inputs.skipped, args.verbose), file=sys.stderr)
    check_output_names(inputs.names, inputs.paths, "features")  # before any work
    for problem in inputs.problems:
        print(f"failed: {problem}", file=sys.stderr)
    if not inputs.paths:
        print(f"{len(inputs.problems)} input(s) could not be used; nothing to do", file=sys.stderr)
        return 1
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
        batch_size=args.batch_size,
        window_stride=args.window_stride,
        tail=args.tail,
        device=device,
        workers=args.workers,
        amp=args.amp,
        compile=args.compile,
        layer=args.layer,
        spatial=args.spatial,
        fps=args.fps,
    )
    print(f"features in {args.output}: {summary.line()}")
    if inputs.problems:
        print(f"{len(inputs.problems)} input(s) could not be used (named above)", file=sys.stderr)
    return 1 if summary.failed or inputs.problems else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.output), epochs=args.epochs)
