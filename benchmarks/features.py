"""Videos per second of `cnn3d features` over a folder of videos, against the sister tool's path
in the same run, and the fraction of cnn3d's wall time the model is busy (issue 9, item 7).

Workload: `--videos` (200) videos of `--seconds` (10) s, 320x240, 25 fps H.264 (x264's default
keyframe interval), written here; a 3D ResNet-18 (400 classes, random weights); 16-frame windows
every 16 frames; pooled 512-d features per clip.
Baseline, as video-classification-3d-cnn-pytorch extracts features: per video every frame to a
JPEG file in a temporary folder, then per 16-frame clip PIL loads, resizes and centre-crops each
frame, fp32, batches of 32 clips, one process (`benchmarks/classify.py`'s baseline).
cnn3d: `features.extract_features` (direct decode in `--workers` DataLoader workers, whole-clip
tensor ops, BatchNorm folded, windows of several videos per batch, per-video outputs written as
each finishes), cnn3d's default precision.

    python benchmarks/features.py [--videos 200] [--seconds 10] [--workers 1] [--baseline-videos 20]

The baseline runs on the first `--baseline-videos` videos only (it is the slow one; its rate is
per video, so the ratio compares like with like).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from classify import baseline
from cnn3d.data.prepare import write_video
from cnn3d.data.synthetic import CLASSES, synthesize_video
from cnn3d.inference.features import extract_features
from cnn3d.inference.runner import InferenceConfig
from cnn3d.models import build_model, with_spec
from cnn3d.models.fold import fold_batchnorm
from cnn3d.normalization import PRESETS
from cnn3d.precision import default_amp
from cnn3d.runtime import RuntimeConfig

FPS = 25


def write_videos(folder: Path, n: int, seconds: int) -> list[Path]:
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        frames = synthesize_video(CLASSES[i % len(CLASSES)], rng, seconds * FPS, 240, 320)
        paths.append(folder / f"v{i:04d}.mp4")
        write_video(paths[-1], frames, fps=FPS, gop=250)
    return paths


class Busy:
    """Seconds spent inside the model's forward passes (its `forward_features`, wrapped)."""

    def __init__(self, model):
        self.seconds = 0.0
        inner = model.forward_features

        def timed(x):
            start = time.perf_counter()
            try:
                return inner(x)
            finally:
                self.seconds += time.perf_counter() - start

        model.forward_features = timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--baseline-videos", type=int, default=20)
    args = parser.parse_args()
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model("resnet", 18, n_classes=400).eval()
    model = with_spec(model, normalization=PRESETS["hara2018"])
    folded, n_folded = fold_batchnorm(model, torch.randn(1, 3, 16, 32, 32))
    precision = "bf16+channels_last" if default_amp(device) else "fp32+channels_last"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = write_videos(tmp / "videos", args.videos, args.seconds)
        print(
            f"{args.videos} videos of {args.seconds} s (320x240, {FPS} fps) written in "
            f"{time.perf_counter() - t0:.0f} s; ResNet-18, {torch.get_num_threads()} threads, "
            f"cnn3d {precision}, {args.workers} decode worker(s), batch {args.batch_size}",
            flush=True,
        )
        t0 = time.perf_counter()
        for path in paths[: args.baseline_videos]:
            baseline(model, path, 32, features=True)
        base_rate = args.baseline_videos / (time.perf_counter() - t0)
        print(f"baseline: {base_rate:.3f} videos/s ({args.baseline_videos} videos)", flush=True)
        busy = Busy(folded)
        names = [p.name for p in paths]
        t0 = time.perf_counter()
        summary = extract_features(
            folded,
            paths,
            names,
            tmp / "feats",
            progress=False,
            config=InferenceConfig(
                RuntimeConfig(compile=False), batch_size=args.batch_size, workers=args.workers
            ),
        )
        wall = time.perf_counter() - t0
        assert summary.done == args.videos, summary.line()
        rate = args.videos / wall
        print(f"cnn3d features: {rate:.3f} videos/s ({summary.clips} clips, {wall:.0f} s)")
        print(f"ratio: {rate / base_rate:.2f}x; model busy {busy.seconds / wall:.0%} of the time")
        print(f"(BatchNorm layers folded: {n_folded})")


if __name__ == "__main__":
    main()
