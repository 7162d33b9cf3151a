"""`cnn3d test` as a library function: a checkpoint's video-level accuracy on an annotated subset.

checkpoint -> the subset's videos -> every window (or `n_clips` clips), centre or three crops ->
softmax scores averaged per video -> metrics, the original's `<subset>.json`, `metrics.json`,
`per_class.csv` and figures in `result_path`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def run_test(
    checkpoint,
    video_path,
    annotation_path,
    result_path,
    *,
    subset: str = "validation",
    window_stride: int | None = None,
    tail: str = "pad",
    n_clips: int = 0,
    three_crop: bool = False,
    topk: int = 5,
    batch_size: int = 16,
    workers: int = 2,
    amp: bool | None = None,
    device: str | None = None,
    compile: bool | None = None,
) -> dict:
    """Test `checkpoint` and write the results; returns what `metrics.json` holds."""
    from torch.utils.data import DataLoader

    from .data.annotations import read_annotations
    from .data.dataset import VideoDataset, collate_clips, videos_from_annotations, worker_init
    from .data.transforms import EvalTransform
    from .evaluate import compute_metrics, write_json, write_per_class_csv, write_results
    from .infer import maybe_compile
    from .models import load_model
    from .plots import write_test_figures
    from .train import TrainConfig, evaluate_loader

    model = load_model(checkpoint, device=device or "cpu", fold_bn=True)
    spec = model.spec
    annotations = read_annotations(annotation_path)
    names = spec.class_names or annotations.labels
    if len(annotations.labels) != spec.n_classes:
        raise ValueError(
            f"{annotation_path}: {len(annotations.labels)} classes, but "
            f"{checkpoint} predicts {spec.n_classes}"
        )
    videos, missing = videos_from_annotations(annotations, subset, video_path)
    if not videos:
        raise ValueError(f"{annotation_path}: no {subset} videos under {video_path}")
    stride = spec.t_stride
    views = 3 if three_crop else 1
    transform = EvalTransform(
        spec.sample_size, "three" if three_crop else "center", spec.normalization
    )
    mode = "val" if n_clips else "test"
    dataset = VideoDataset(
        videos,
        transform,
        mode,
        spec.clip_length,
        stride,
        n_clips=n_clips or 1,
        window_stride=window_stride,
        tail=tail,
        n_views=views,
        skip_bad=True,
    )
    loader = DataLoader(
        dataset,
        batch_size,
        num_workers=workers,
        collate_fn=collate_clips,
        worker_init_fn=worker_init,
    )
    cfg = TrainConfig("", "", "", amp=amp, channels_last=True)
    device = torch.device(device or "cpu")
    model.to(memory_format=torch.channels_last_3d)
    net, _ = maybe_compile(model, len(dataset), compile, batch_size)
    acc = evaluate_loader(net, loader, dataset, spec.n_classes, device, cfg)
    labels = torch.from_numpy(videos.labels).long()
    metrics = compute_metrics(acc, labels, names)
    out = Path(result_path)
    out.mkdir(parents=True, exist_ok=True)
    failed = sorted(set(dataset.failed))
    write_results(
        out / f"{subset}.json",
        list(videos.ids),
        acc.video_scores,
        names,
        topk,
    )
    summary = metrics.summary() | {
        # the paper's Kinetics tables report this "Average" beside top-1 and top-5
        "average_top1_top5": (metrics.video_top1 + metrics.video_top5) / 2,
        "views_per_video": (n_clips or "all windows")
        if views == 1
        else f"{n_clips or 'all windows'} x 3 crops",
        "tail": None if n_clips else tail,
        "unreadable_videos": failed,
        "missing_videos": missing,
        "checkpoint": str(checkpoint),
    }
    write_json(out / "metrics.json", summary)
    write_per_class_csv(out / "per_class.csv", metrics)
    title = (
        f"{Path(checkpoint).name}: video top-1 {metrics.video_top1:.3f} ({metrics.n_videos} videos)"
    )
    figures = write_test_figures(out, metrics.confusion, metrics.per_class, names, title)
    print(f"{metrics.n_videos} videos, {metrics.n_clips} clips ({subset})")
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
        f"wrote {out / f'{subset}.json'}, metrics.json, per_class.csv, "
        + ", ".join(f.name for f in figures)
    )
    return summary
