"""`classify --live` on this machine: the real-time factor and latency of a ResNet-18 at 112x112
on a 25 fps stream played in real time, and the process's memory over a long stream (an hour of
video by default) pushed through a FIFO as fast as it decodes.

Both runs are `cnn3d classify --live` in a process of its own (random weights, 400 classes,
16-frame windows every 16 frames); the stream is synthetic (moving shapes, 320x240 H.264 in
MPEG-TS, written by this script). RSS and the frame count are sampled every 2 s from /proc and
from the status line.

    .venv/bin/python benchmarks/live.py [--seconds 60] [--hours 1] [--depth 18] [--size 112]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
import torch

from cnn3d.data.synthetic import CLASSES, synthesize_video
from cnn3d.models import build_model, save_model, with_spec

FPS = 25


def write_stream(out, n_frames: int, width=320, height=240) -> None:
    """MPEG-TS of moving shapes to `out` (a path or a FIFO), 40 frames per shape."""
    rng = np.random.default_rng(0)
    with av.open(str(out), "w", format="mpegts") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "g": "25", "bf": "0"}
        written = 0
        while written < n_frames:
            frames = synthesize_video(CLASSES[written // 40 % len(CLASSES)], rng, 40, height, width)
            for frame in frames[: n_frames - written]:
                image = av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in video.encode(image):
                    container.mux(packet)
            written += len(frames)
        for packet in video.encode():
            container.mux(packet)


def write_long(segment: Path, out, n_frames: int) -> None:
    """`segment`'s packets muxed again and again (timestamps shifted) to `out` until
    `n_frames`: an hour of stream without encoding an hour of video."""
    with av.open(str(segment)) as source, av.open(str(out), "w", format="mpegts") as target:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.size]
        period = round(len(packets) / FPS / stream.time_base)
        copy = target.add_stream_from_template(stream)
        for k in range(n_frames // len(packets) + 1):
            for p in packets[: n_frames - k * len(packets)]:
                again = av.Packet(bytes(p))
                again.pts, again.dts = p.pts + k * period, p.dts + k * period
                again.time_base, again.stream = p.time_base, copy
                again.is_keyframe = p.is_keyframe
                target.mux(again)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_live(checkpoint: Path, source: Path, *extra) -> tuple[list, str]:
    """(samples of (seconds, frames, RSS MB), the final status line)."""
    command = [sys.executable, "-m", "cnn3d", "classify", "--live", str(source), "--checkpoint",
               str(checkpoint), "-o", os.devnull, *extra]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    samples, frames, last = [], [0], [""]

    def read_status():
        for line in process.stderr:
            last[0] = line.strip() or last[0]
            found = re.search(r"(\d+) frames", line)
            if found:
                frames[0] = int(found.group(1))

    reader = threading.Thread(target=read_status, daemon=True)
    reader.start()
    start = time.monotonic()
    while process.poll() is None:
        try:
            samples.append((time.monotonic() - start, frames[0], rss_mb(process.pid)))
        except OSError:
            break
        time.sleep(2)
    reader.join(timeout=60)  # the last lines once the process is gone (slow on a busy machine)
    if samples:  # the frame count of the final line, with the last RSS measured
        samples.append((time.monotonic() - start, frames[0], samples[-1][2]))
    return samples, last[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of the real-time run")
    parser.add_argument("--hours", type=float, default=1.0, help="length of the long stream")
    parser.add_argument("--depth", type=int, default=18, help="the ResNet's depth")
    parser.add_argument("--size", type=int, default=112, help="the network's input size")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cnn3d-live-"))
    torch.manual_seed(0)
    checkpoint = root / "r18.pth"
    save_model(checkpoint, with_spec(build_model("resnet", args.depth, 400), sample_size=args.size))

    short = root / "short.ts"
    write_stream(short, int(args.seconds * FPS))
    _, status = run_live(checkpoint, short, "--realtime")
    print(
        f"real time, {args.seconds:g} s of 320x240 at 25 fps, ResNet-{args.depth} "
        f"{args.size}x{args.size}:\n  {status}"
    )

    fifo = root / "long.ts"
    os.mkfifo(fifo)
    n_frames = int(args.hours * 3600 * FPS)
    segment = root / "segment.ts"
    write_stream(segment, 250)
    writer = threading.Thread(target=write_long, args=(segment, fifo, n_frames), daemon=True)
    writer.start()
    samples, status = run_live(checkpoint, fifo)
    writer.join()
    print(f"a FIFO of {n_frames} frames ({args.hours:g} h of video), as fast as it decodes:")
    print(f"  {status}")
    print("| seconds | frames | RSS (MB) |\n| ---: | ---: | ---: |")
    step = max(1, len(samples) // 12)
    for seconds, frames, rss in samples[::step] + samples[-1:]:
        print(f"| {seconds:.0f} | {frames} | {rss:.0f} |")


if __name__ == "__main__":
    main()
