"""`cnn3d demo`: the whole job on the bundled synthetic dataset, end to end, on a CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .data.synthetic import write_synthetic_annotations, write_synthetic_dataset
from .files import write_json


def run_demo(out: Path, epochs: int = 12) -> int:
    t0 = time.perf_counter()
    # 100 videos per class: 80 to train on, 20 held out (groups 1-5, as UCF-101 holds out groups).
    # With fewer, a network memorises each video's background instead of learning the motion.
    layout = write_synthetic_dataset(
        out / "data", groups=25, clips_per_group=4, test_groups=5, height=60, width=80
    )
    annotations = write_synthetic_annotations(layout)
    annotation_path = layout.annotation_path
    n_classes = len(annotations.labels)
    print(f"data: {layout.n_videos} videos of {n_classes} motion classes in {layout.video_dir}")
    print(f"annotations: {annotation_path}")

    run = out / "run"
    earlier = run / "opts.json"
    if earlier.exists():
        opts = json.loads(earlier.read_text())
        done_epochs = opts.get("used", opts).get("epochs")
        if done_epochs != epochs:
            import shutil

            print(f"an earlier demo run in {run} trained for {done_epochs} epochs: starting again")
            shutil.rmtree(run)
        else:
            print(f"continuing the earlier demo run in {run} (--resume auto)")
    from .evaluation.evaluate import run_test
    from .inference.classify import classification_json
    from .inference.features import extract_features
    from .inference.runner import InferenceConfig, run_model
    from .models import load_model
    from .training.config import TrainConfig
    from .training.loop import train

    config = TrainConfig(
        video_path=str(layout.video_dir),
        annotation_path=str(annotation_path),
        result_path=str(run),
        model="resnet",
        model_depth=10,
        model_options={"widen_factor": 0.5, "conv1_t_size": 3},
        clip_length=16,
        sample_size=48,
        t_stride=2,
        batch_size=8,
        lr=0.02,
        weight_decay=1e-4,
        lr_scheduler="cosine",
        warmup_epochs=1,
        n_epochs=epochs,
        checkpoint_every=0,
        workers=2,
        train_crop="random",
        crop_scale=(0.5, 1.0),
        flip=False,
        resume="auto",
        tensorboard=False,
        progress=False,
    )
    train(config)
    # best.pth was chosen on the held-out videos; the number reported on them comes from
    # last.pth, which nothing selected
    checkpoint = run / "last.pth"
    metrics = run_test(
        checkpoint,
        layout.video_dir,
        annotation_path,
        out / "test",
        subset="validation",
        # two full windows (frames 0-30 and 9-39 at stride 2) per video
        config=InferenceConfig(batch_size=16, workers=2, window_stride=9),
    )
    samples = sorted(layout.video_dir.rglob("*.avi"))[:: layout.n_videos // 2][:2]
    model = load_model(checkpoint, fold_bn=True)
    results, _ = run_model(model, samples)
    entries = classification_json(results, model.spec.class_names, 3)
    write_json(out / "classify.json", entries)
    for e in entries:
        print(f"{e['video']}: {e['label']} ({e['top_k'][0]['score']:.3f})")
    extract_features(model, samples, [p.name for p in samples], out / "features", progress=False)
    chance = 1 / n_classes
    print("\n=== cnn3d demo ===")
    print(f"training run:   {run} (train.log, val.log, curves.png, best.pth, last.pth)")
    print(f"tested:         {checkpoint.name} (the last epoch: not selected on the test videos)")
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
    return 0
