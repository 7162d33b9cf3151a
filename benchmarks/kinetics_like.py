"""A Kinetics-like set for `cnn3d benchmark loader`: 320x240 videos of moving shapes, smoothed so
that they compress like real footage, as H.264 mp4 with a keyframe every 250 frames (as
downloaded clips come), and the same frames as JPEG folders and HDF5 (`cnn3d prepare frames`),
with one annotation file that serves all three roots.

    python benchmarks/kinetics_like.py OUT [--per-class 24] [--frames 150] [--jobs 8]

OUT/mp4, OUT/jpg, OUT/hdf5 and OUT/annotations.json.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from cnn3d.data.prepare import prepare_frames, write_video
from cnn3d.data.synthetic import (
    DEFAULT_CLASSES,
    synthesize_video,
    write_synthetic_annotations,
    write_synthetic_dataset,
)

GROUPS_FOR_TEST = 1


def smooth(frames: np.ndarray) -> np.ndarray:
    """A 5x5 box blur: synthetic grain compresses 3-6x worse than real 320x240 frames."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def write_one(task) -> None:
    path, action, seed, frames, height, width = task
    if Path(path).exists():
        return
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    write_video(path, smooth(synthesize_video(action, rng, frames, height, width)), 25, gop=250)


def build(
    out: Path, per_class: int, frames: int, jobs: int, height: int = 240, width: int = 320
) -> Path:
    """Write the set (what exists is kept); returns the annotation file."""
    groups = max(GROUPS_FOR_TEST + 1, per_class // 2)
    tasks = []
    for c, action in enumerate(DEFAULT_CLASSES):
        for group in range(1, groups + 1):
            for clip in (1, 2):
                path = out / "mp4" / "videos" / action / f"v_{action}_g{group:02d}_c{clip:02d}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                tasks.append((path, action, [c, group, clip], frames, height, width))
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(write_one, tasks))
    # the split files and annotation file; the videos written above are kept as they are
    layout = write_synthetic_dataset(
        out / "mp4", groups=groups, clips_per_group=2, test_groups=GROUPS_FOR_TEST,
        n_frames=frames, height=height, width=width, suffix=".mp4",
    )  # fmt: skip
    write_synthetic_annotations(layout)
    for fmt in ("jpg", "hdf5"):
        if not (out / fmt).exists():
            prepare_frames(layout.video_dir, out / fmt, fmt, None, jobs, progress=False)
    annotations = out / "annotations.json"
    annotations.write_bytes(layout.annotation_path.read_bytes())
    return annotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=24, help="videos per class (6 classes)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video (25 fps)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--jobs", type=int, default=8, help="processes writing videos")
    args = parser.parse_args()
    path = build(args.out, args.per_class, args.frames, args.jobs, args.height, args.width)
    print(f"written: {args.out}/{{mp4/videos,jpg,hdf5}} and {path}")


if __name__ == "__main__":
    main()
