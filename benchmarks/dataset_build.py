"""Building evaluation datasets and reading item positions: N videos (default 35,000) with
recorded frame counts (150-299 frames), validation (3 clips each) and test (every window), the
best of three builds, then `positions` over about 20,000 items. No video is opened.

    .venv/bin/python benchmarks/dataset_build.py [N_VIDEOS]

To compare with another version of cnn3d, run the same file with that version first on
PYTHONPATH (BENCHMARKS.md gives both figures from one session).
"""

import argparse
import time

import numpy as np

from cnn3d.data.dataset import VideoDataset
from cnn3d.data.index import VideoIndex
from cnn3d.data.transforms import EvalTransform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n_videos", type=int, nargs="?", default=35000, help="videos indexed")
    n = parser.parse_args().n_videos
    rng = np.random.default_rng(0)
    ids = [f"v{i}" for i in range(n)]
    paths = [f"c/v{i}.mp4" for i in range(n)]
    index = VideoIndex("/r", ids, paths, np.zeros(n), np.zeros(n), rng.integers(150, 300, n))
    transform = EvalTransform(112)
    for mode in ("val", "test"):
        builds = []
        for _ in range(3):
            t0 = time.perf_counter()
            dataset = VideoDataset(index, transform, mode, 16, 1, n_clips=3)
            builds.append(time.perf_counter() - t0)
        items = range(0, len(dataset), max(1, len(dataset) // 20000))
        t0 = time.perf_counter()
        for i in items:
            dataset.positions(i, rng)
        per_item = (time.perf_counter() - t0) / len(items)
        print(
            f"{mode}: build {min(builds):.3f} s for {n} videos ({len(dataset)} items); "
            f"positions {per_item * 1e6:.1f} us/item"
        )


if __name__ == "__main__":
    main()
