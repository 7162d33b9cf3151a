"""Frames per second of `cnn3d prepare flow`'s optical flow (OpenCV DIS, medium preset) on
320x240 video, against the cheapest DIS preset (ultrafast) and against decoding alone, in the same
run, one process.

    python benchmarks/flow.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cnn3d.data.prepare import decode_all, to_8bit, write_video
from cnn3d.data.synthetic import synthesize_video


def main() -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "v.mp4"
        frames = synthesize_video(
            "MoveRight", np.random.default_rng(0), args.seconds * 25, 240, 320
        )
        write_video(video, frames, fps=25)
        t0 = time.perf_counter()
        decoded, _ = decode_all(video)
        decode_fps = len(decoded) / (time.perf_counter() - t0)
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decoded]
        rates = {}
        for name, preset in (
            ("DIS medium (prepare flow)", cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
            ("DIS ultrafast", cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
        ):
            dis = cv2.DISOpticalFlow_create(preset)
            t0 = time.perf_counter()
            for a, b in zip(gray[:-1], gray[1:], strict=True):
                flow = dis.calc(a, b, None)
                to_8bit(flow[..., 0]), to_8bit(flow[..., 1])
            rates[name] = (len(gray) - 1) / (time.perf_counter() - t0)
        print(f"{len(decoded)} frames of 320x240, OpenCV {cv2.__version__}, 1 thread")
        print(f"decoding alone: {decode_fps:.0f} frames/s")
        for name, rate in rates.items():
            print(f"{name}: {rate:.0f} flow frames/s ({rate / decode_fps:.2f}x decoding)")


if __name__ == "__main__":
    main()
