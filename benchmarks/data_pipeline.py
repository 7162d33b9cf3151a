"""Training clips/s in one worker: decode + temporal sampling + multi-scale corner crop + flip,
16x112x112 from 320x240 sources, for JPEG folders, HDF5 and mp4 (default GOP and short GOP),
handing over uint8 (what workers do now) and with the float normalisation done in the worker
(what they did before the device-side input), against the original's path (PIL open + convert
per frame, per-frame torchvision transforms) on the same JPEG frames, in the same run.

    python benchmarks/data_pipeline.py [--clips 60] [--frames 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cnn3d.data import sampling  # noqa: E402
from cnn3d.data.network_input import normalize  # noqa: E402
from cnn3d.data.prepare import write_video  # noqa: E402
from cnn3d.data.sources import open_source  # noqa: E402
from cnn3d.data.synthetic import synthesize_video  # noqa: E402
from cnn3d.data.transforms import TrainTransform  # noqa: E402
from cnn3d.normalization import PRESETS  # noqa: E402
from helpers import write_hdf5, write_jpeg_folder  # noqa: E402


def baseline_clip(folder: Path, n_frames: int, rng: np.random.Generator) -> torch.Tensor:
    """What the original does: PIL per frame, a per-frame torchvision Compose."""
    import torchvision.transforms as T
    from PIL import Image

    positions = sampling.random_clip(n_frames, 16, 1, rng)
    scale = [1, 2**-0.25, 2**-0.5, 2**-0.75, 0.5][rng.integers(5)]
    flip = rng.random() < 0.5
    frames = []
    for p in positions:
        with open(folder / f"image_{p + 1:05d}.jpg", "rb") as f:
            img = Image.open(f).convert("RGB")
        side = int(min(img.size) * scale)
        img = img.crop((0, 0, side, side)).resize((112, 112), Image.BILINEAR)
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t = T.ToTensor()(img)
        frames.append(T.Normalize(PRESETS["kinetics"].mean, PRESETS["kinetics"].std)(t))
    return torch.stack(frames, 1)


def cnn3d_clip(source, transform, rng, normalise: bool = False):
    positions = sampling.random_clip(source.n_frames, 16, 1, rng)
    clip = transform(source.read(positions), rng)
    return normalize(clip, PRESETS["kinetics"]) if normalise else clip


def measure(fn, n: int) -> float:
    rng = np.random.default_rng(0)
    for _ in range(3):
        fn(rng)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(rng)
        times.append(time.perf_counter() - t0)
    return 1 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=60, help="clips timed per path")
    parser.add_argument("--frames", type=int, default=300, help="frames of the source video")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in one DataLoader worker
    frames = synthesize_video("MoveRight", np.random.default_rng(0), args.frames, 240, 320)
    # smooth away the synthetic grain: real 320x240 frames compress to ~5-20 KB, not ~60 KB
    smooth = torch.nn.functional.avg_pool2d(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float(), 5, stride=1, padding=2
    )
    frames = smooth.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    transform = TrainTransform(112, "corner")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_jpeg_folder(tmp / "jpg", frames)
        write_hdf5(tmp / "video.hdf5", frames)
        write_video(tmp / "gop250.mp4", frames, gop=250)
        write_video(tmp / "gop16.mp4", frames, gop=16)
        results = {
            "baseline (PIL per frame)": measure(
                lambda r: baseline_clip(tmp / "jpg", args.frames, r), args.clips
            )
        }
        for name, path in [
            ("jpg (simplejpeg)", "jpg"),
            ("hdf5", "video.hdf5"),
            ("mp4 gop 250", "gop250.mp4"),
            ("mp4 gop 16", "gop16.mp4"),
        ]:
            source = open_source(tmp / path, transform.min_short_side)
            results[name] = measure(lambda r, s=source: cnn3d_clip(s, transform, r), args.clips)
            results[f"{name} + float in worker"] = measure(
                lambda r, s=source: cnn3d_clip(s, transform, r, normalise=True), args.clips
            )
    base = results["baseline (PIL per frame)"]
    print(f"{'path':<40}{'clips/s':>9}{'x baseline':>12}")
    for name, rate in results.items():
        print(f"{name:<40}{rate:>9.1f}{rate / base:>12.2f}")


if __name__ == "__main__":
    main()
