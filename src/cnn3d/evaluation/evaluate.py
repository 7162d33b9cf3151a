"""Evaluation: a network's scores over a loader (`evaluate_loader`, shared with validation in
training), `cnn3d test` as a library function (`run_test`), two-stream fusion of test results
(`fuse_results`), and the result files they write.

checkpoint -> the subset's videos -> every window (or `n_clips` clips), centre or three crops ->
softmax scores averaged per video -> metrics, the original's `<subset>.json`, `metrics.json`,
`per_class.csv`, `scores.npz` and figures in the result folder.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingInput, UsageError
from ..files import atomic_write, write_json
from ..inference.runner import InferenceConfig
from .metrics import Accumulator, Metrics, compute_metrics, top_k


def evaluate_loader(
    logits_of,
    loader,
    dataset,
    n_classes: int,
    progress: bool = False,
    should_stop=None,
) -> Accumulator | None:
    """Scores of every clip in `loader` (uint8 batches; `logits_of` makes each batch the
    network's input and runs it: a `Runner`'s, or the training network's), summed per video and
    over ranks; None, with nothing counted, as soon as `should_stop()` says so (asked before
    each batch)."""
    from tqdm import tqdm

    acc = Accumulator(len(dataset.videos), n_classes)
    with torch.inference_mode():
        for batch in tqdm(loader, unit="batch", leave=False, disable=not progress):
            if should_stop is not None and should_stop():
                dataset.close()
                return None
            dataset.failed += batch["failed"]
            if batch["clip"] is None:
                continue
            acc.add(logits_of(batch["clip"]), batch["label"], batch["video"])
    dataset.close()
    acc.all_reduce()
    return acc


def run_test(
    checkpoint,
    video_path,
    annotation_path,
    result_path,
    *,
    subset: str = "validation",
    n_clips: int = 0,
    three_crop: bool = False,
    topk: int = 5,
    config: InferenceConfig | None = None,
    progress: bool = False,
) -> dict:
    """Test `checkpoint` and write the results; returns what `metrics.json` holds. `config`
    gives the windows (`window_stride`, `tail`), batch, workers and runtime (default: batches of
    16, 2 workers, on the GPU if there is one); `n_clips` > 0 takes that many evenly spaced clips per video
    instead of every window. `three_crop` scores three crops of each clip as clips of their
    own; `config.crops` > 1 instead scores each window once, by the mean of its crops' logits.
    Costs one forward pass per window and crop (x3 with `three_crop`)."""
    from ..data.annotations import read_annotations
    from ..data.dataset import VideoDataset, clip_loader
    from ..data.index import index_subset
    from ..data.sources import open_source
    from ..data.transforms import EvalTransform
    from ..inference.runner import Runner
    from ..models import check_input_channels, load_model
    from .plots import write_test_figures

    config = config or InferenceConfig(batch_size=16, workers=2)
    runtime = config.runtime
    model = load_model(checkpoint, fold_bn=True)
    spec = model.spec
    annotations = read_annotations(annotation_path)
    names = spec.class_names or annotations.labels
    if len(annotations.labels) != spec.n_classes:
        raise UsageError(
            f"{annotation_path}: {len(annotations.labels)} classes, but "
            f"{checkpoint} predicts {spec.n_classes}"
        )
    videos, missing = index_subset(annotations, subset, video_path)
    if not videos:
        raise UsageError(f"{annotation_path}: no {subset} videos under {video_path}")
    check_input_channels(model, open_source(videos.path(0)).channels, videos.path(0))
    views = 3 if three_crop else 1
    if three_crop:
        transform = EvalTransform(spec.sample_size, "three", resize=config.resize)
    else:
        transform = config.transform(spec.sample_size)
    dataset = VideoDataset(
        videos,
        transform,
        "val" if n_clips else "test",
        spec.clip_length,
        spec.t_stride,
        n_clips=n_clips or 1,
        window_stride=config.window_stride,
        tail=config.tail,
        n_views=views,
        skip_bad=True,
    )
    crops = config.crops  # per window, averaged by the runner
    runner = Runner(
        model, runtime, windows=len(dataset) * crops, batch_size=config.batch_size * crops
    )
    loader = clip_loader(
        dataset, config.batch_size, config.workers, pin_memory=runner.device.type == "cuda",
        prefetch=config.prefetch,
    )  # fmt: skip
    try:
        acc = evaluate_loader(runner.logits, loader, dataset, spec.n_classes, progress)
    finally:
        runner.close()
    labels = torch.tensor(videos.labels, dtype=torch.long)
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
    write_scores(out / "scores.npz", list(videos.ids), acc.video_scores, labels, names)
    summary = metrics.summary() | {
        # the paper's Kinetics tables report this "Average" beside top-1 and top-5
        "average_top1_top5": (metrics.video_top1 + metrics.video_top5) / 2,
        "views_per_video": (n_clips or "all windows")
        if views == 1 and crops == 1
        else f"{n_clips or 'all windows'} x {crops if crops > 1 else 3} crops",
        "crops_per_window": crops,
        "tail": None if n_clips else config.tail,
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
    report(metrics, subset, failed, videos.notes, missing)
    print(
        f"wrote {out / f'{subset}.json'}, metrics.json, per_class.csv, "
        + ", ".join(f.name for f in figures)
    )
    return summary


def report(metrics: Metrics, subset: str, failed: list[str], notes: list[str], missing) -> None:
    """What `cnn3d test` prints: the counts and accuracies, then what was not read."""
    print(f"{metrics.n_videos} videos, {metrics.n_clips} clips ({subset})")
    print(
        f"video top-1 {metrics.video_top1:.4f}  top-5 {metrics.video_top5:.4f}  average "
        f"{(metrics.video_top1 + metrics.video_top5) / 2:.4f}  "
        f"clip top-1 {metrics.clip_top1:.4f}  mean class acc {metrics.mean_class_accuracy:.4f}"
    )
    for message in failed:
        print(f"unreadable: {message}", file=sys.stderr)
    for note in notes:
        print(note)
    if missing:
        print(f"{len(missing)} annotated videos not found, e.g. {missing[:3]}", file=sys.stderr)


def write_scores(path: Path, ids: list[str], scores: torch.Tensor, labels, names) -> None:
    """Every video's mean softmax scores over all classes (NaN: never read), with its label,
    for fusing results (`fuse_results`)."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(
                f,
                ids=np.asarray(ids, dtype=str),
                scores=scores.numpy(),
                labels=np.asarray(labels, dtype=np.int64),
                class_names=np.asarray(names, dtype=str),
            )

    atomic_write(path, write)


def fuse_results(results: list[Path], out: Path, weights: list[float] | None = None, topk: int = 5):
    """Two-stream (or more) video accuracy: the weighted mean of each result's per-video scores
    (`scores.npz` of `cnn3d test`), over the videos every result has; metrics and the original's
    result JSON written to `out`, as `cnn3d test` writes them. Returns what `metrics.json` holds."""
    from .plots import write_test_figures

    weights = weights or [1.0] * len(results)
    if len(weights) != len(results):
        raise UsageError(f"{len(weights)} weights for {len(results)} results")
    loaded = []
    for folder in map(Path, results):
        path = folder / "scores.npz" if folder.is_dir() else folder
        if not path.is_file():
            raise MissingInput(f"{path}: no scores (run `cnn3d test` with this cnn3d first)")
        with np.load(path) as data:
            loaded.append({k: data[k] for k in data.files})
    names = list(loaded[0]["class_names"])
    for path, r in zip(results, loaded, strict=True):
        if list(r["class_names"]) != names:
            raise UsageError(f"{path}: its classes differ from {results[0]}'s")
    index = [dict(zip(r["ids"].tolist(), range(len(r["ids"])), strict=True)) for r in loaded]
    ids = [i for i in loaded[0]["ids"].tolist() if all(i in ix for ix in index)]
    ids = [
        i
        for i in ids
        if all(not np.isnan(r["scores"][ix[i]]).any() for r, ix in zip(loaded, index, strict=True))
    ]
    fused = sum(
        w * r["scores"][[ix[i] for i in ids]]
        for w, r, ix in zip(weights, loaded, index, strict=True)
    ) / sum(weights)
    labels = torch.from_numpy(loaded[0]["labels"][[index[0][i] for i in ids]])
    acc = Accumulator(len(ids), len(names))
    acc.score_sum = torch.from_numpy(np.asarray(fused, dtype=np.float64))
    acc.clip_count = torch.ones(len(ids), dtype=torch.float64)
    metrics = compute_metrics(acc, labels, names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "fused.json", ids, acc.video_scores, names, topk)
    write_scores(out / "scores.npz", ids, acc.video_scores, labels, names)
    summary = metrics.summary() | {
        "average_top1_top5": (metrics.video_top1 + metrics.video_top5) / 2,
        "fused": [str(r) for r in results],
        "weights": weights,
        "videos_left_out": len(loaded[0]["ids"]) - len(ids),
    }
    for key in ("clip_top1", "loss", "n_clips"):  # clips belong to the streams, not the fusion
        summary.pop(key, None)
    write_json(out / "metrics.json", summary)
    write_per_class_csv(out / "per_class.csv", metrics)
    title = f"fused: video top-1 {metrics.video_top1:.3f} ({metrics.n_videos} videos)"
    write_test_figures(out, metrics.confusion, metrics.per_class, names, title)
    return summary


def write_results(path, video_ids, scores, class_names, k=5) -> None:
    """The original's result JSON: `{"results": {video_id: [{"label", "score"}, ...]}}`."""
    results = {
        vid: top_k(s, class_names, k)
        for vid, s in zip(video_ids, scores, strict=True)
        if not torch.isnan(s).any()
    }
    write_json(path, {"results": results})


def write_per_class_csv(path, metrics: Metrics) -> None:
    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, ["class", "videos", "correct", "accuracy"])
            writer.writeheader()
            writer.writerows(metrics.per_class)

    atomic_write(path, write)
