"""Frames per second of `cnn3d prepare flow`'s optical flow on synthetic video, per frame size:
OpenCV DIS (medium preset, the default), DIS ultrafast, and Dual TV-L1 (`--method tvl1`, I3D's
flow; from the contrib wheel), against decoding alone, in the same run, one process.

TV-L1 costs about a second a frame pair, so it is timed on the first `--tvl1-pairs` pairs only.

    python benchmarks/flow.py [--seconds 10] [--sizes 320x240 340x256] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cnn3d.data.optical_flow import TVL1_EXTRA, estimator, to_8bit
from cnn3d.data.prepare import decode_all, write_video
from cnn3d.data.synthetic import synthesize_video
from cnn3d.errors import UsageError


def size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def flow_rate(flow_of, gray: list[np.ndarray]) -> float:
    """Flow frames per second of `flow_of` over consecutive pairs, 8-bit encoding included."""
    t0 = time.perf_counter()
    for a, b in zip(gray[:-1], gray[1:], strict=True):
        flow = flow_of(a, b)
        to_8bit(flow[..., 0]), to_8bit(flow[..., 1])
    return (len(gray) - 1) / (time.perf_counter() - t0)


def measure(cv2, video: Path, n_frames: int, width: int, height: int, args) -> None:
    frames = synthesize_video("MoveRight", np.random.default_rng(0), n_frames, height, width)
    write_video(video, frames, fps=25)
    t0 = time.perf_counter()
    decoded, _ = decode_all(video)
    decode_fps = len(decoded) / (time.perf_counter() - t0)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decoded]
    threads = f"{args.threads} thread" + ("s" if args.threads > 1 else "")
    print(f"{len(decoded)} frames of {width}x{height}, OpenCV {cv2.__version__}, {threads}")
    print(f"decoding alone: {decode_fps:.0f} frames/s")
    dis_rate = flow_rate(estimator("dis"), gray)
    ultrafast = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    rates = {
        "DIS medium (prepare flow)": dis_rate,
        "DIS ultrafast": flow_rate(lambda a, b: ultrafast.calc(a, b, None), gray),
    }
    for name, rate in rates.items():
        print(f"{name}: {rate:.0f} flow frames/s ({rate / decode_fps:.2f}x decoding)")
    name = "TV-L1 (prepare flow --method tvl1)"
    try:
        tvl1 = estimator("tvl1")
    except UsageError:
        print(f"{name}: not measured, OpenCV's contrib module is missing: {TVL1_EXTRA}")
        return
    pairs = min(args.tvl1_pairs, len(gray) - 1)
    rate = flow_rate(tvl1, gray[: pairs + 1])
    print(
        f"{name}: {rate:.2f} flow frames/s ({1000 / rate:.0f} ms a frame pair, {pairs} pairs; "
        f"{dis_rate / rate:.0f}x DIS medium's time)"
    )


def main() -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="25 fps video per size")
    parser.add_argument("--sizes", type=size, nargs="+", default=[(320, 240), (340, 256)])
    parser.add_argument("--threads", type=int, default=1, help="OpenCV's threads")
    parser.add_argument("--tvl1-pairs", type=int, default=10, help="frame pairs TV-L1 is timed on")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in args.sizes:
            measure(
                cv2, Path(tmp) / f"{width}x{height}.mp4", args.seconds * 25, width, height, args
            )


if __name__ == "__main__":
    main()
