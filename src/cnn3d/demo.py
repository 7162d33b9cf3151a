"""`cnn3d demo`: the whole job on the bundled synthetic dataset, end to end, on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .data.annotations import attach_videos, build_ucf101, write_annotations
from .data.synthetic import write_synthetic_dataset


def run_demo(out: Path, epochs: int = 12) -> int:
    from .cli import main

    t0 = time.perf_counter()
    # 100 videos per class: 80 to train on, 20 held out (groups 1-5, as UCF-101 holds out groups).
    # With fewer, a network memorises each video's background instead of learning the motion.
    layout = write_synthetic_dataset(
        out / "data", groups=25, clips_per_group=4, test_groups=5, height=60, width=80
    )
    annotations = attach_videos(build_ucf101(layout.split_dir, 1), layout.video_dir)
    annotation_path = out / "data" / "synthetic_01.json"
    write_annotations(annotation_path, annotations)
    n_classes = len(annotations.labels)
    print(f"data: {layout.n_videos} videos of {n_classes} motion classes in {layout.video_dir}")
    print(f"annotations: {annotation_path}")

    run = out / "run"
    earlier = run / "opts.json"
    if earlier.exists():
        done_epochs = json.loads(earlier.read_text()).get("epochs")
        if done_epochs != epochs:
            import shutil

            print(f"an earlier demo run in {run} trained for {done_epochs} epochs: starting again")
            shutil.rmtree(run)
        else:
            print(f"continuing the earlier demo run in {run} (--resume auto)")
    common = ["--video-path", str(layout.video_dir), "--annotation-path", str(annotation_path)]
    rc = main(
        [
            "train",
            *common,
            "--result-path",
            str(run),
            "--model",
            "resnet",
            "--model-depth",
            "10",
            "--widen-factor",
            "0.5",
            "--conv1-t-size",
            "3",
            "--clip-length",
            "16",
            "--sample-size",
            "48",
            "--t-stride",
            "2",
            "--batch-size",
            "8",
            "--lr",
            "0.02",
            "--weight-decay",
            "1e-4",
            "--lr-scheduler",
            "cosine",
            "--warmup-epochs",
            "1",
            "--n-epochs",
            str(epochs),
            "--checkpoint",
            "0",
            "--workers",
            "2",
            "--train-crop",
            "random",
            "--crop-scale",
            "0.5",
            "1",
            "--no-flip",
            "--resume",
            "auto",
            "--no-tensorboard",
            "--no-progress",
        ]
    )
    if rc:
        return rc
    checkpoint = run / "best.pth"
    rc = main(
        [
            "test",
            *common,
            "--checkpoint",
            str(checkpoint),
            "--result-path",
            str(out / "test"),
            "--subset",
            "validation",
            "--window-stride",
            "9",  # two full windows (frames 0-30 and 9-39 at stride 2) per 40-frame video
        ]
    )
    metrics = json.loads((out / "test" / "metrics.json").read_text())
    samples = [str(p) for p in sorted(layout.video_dir.rglob("*.avi"))[:: layout.n_videos // 2][:2]]
    main(
        [
            "classify",
            *samples,
            "--checkpoint",
            str(checkpoint),
            "--output",
            str(out / "classify.json"),
            "--topk",
            "3",
        ]
    )
    main(["features", *samples, "--checkpoint", str(checkpoint), "--output", str(out / "features")])
    chance = 1 / n_classes
    print("\n=== cnn3d demo ===")
    print(f"training run:   {run} (train.log, val.log, curves.png, best.pth, last.pth)")
    print(
        f"test results:   {out / 'test'} (validation.json, metrics.json, per_class.csv, per_class.png, confusion.png)"
    )
    print(f"classified:     {out / 'classify.json'}")
    print(f"features:       {out / 'features'}")
    print(
        f"video accuracy: {metrics['video_top1']:.3f} top-1 over {metrics['n_videos']} held-out "
        f"videos (chance {chance:.3f}); clip accuracy {metrics['clip_top1']:.3f}"
    )
    print(f"time:           {time.perf_counter() - t0:.0f} s")
    return rc
