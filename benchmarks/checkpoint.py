"""What a mid-epoch checkpoint costs: the time `last.pth` takes to write (weights, SGD momentum,
schedule, scaler, RNG state; atomically), which is how long training pauses for it, and its size.

    python benchmarks/checkpoint.py [--depths 18 50] [--repeats 3] [--folder /tmp]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cnn3d.models import build_model
from cnn3d.training.state import Position, save_training_state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", default=None, help="where to write (default: a temp folder)")
    args = parser.parse_args()
    for depth in args.depths:
        model = build_model("resnet", depth, 700)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for p in model.parameters():  # momentum buffers, as after a step
            p.grad = torch.zeros_like(p)
        optimizer.step()
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [50, 100])
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
            path = Path(tmp) / "last.pth"
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                save_training_state(
                    path,
                    model,
                    optimizer,
                    scheduler,
                    scaler,
                    Position(3, 1234, (1.0, 2.0, 3.0)),
                    0.5,
                )
                times.append(time.perf_counter() - started)
            size = path.stat().st_size / 2**20
        print(
            f"resnet-{depth} (700 classes): {statistics.median(times):.2f} s per write "
            f"(median of {args.repeats}), {size:.0f} MiB"
        )


if __name__ == "__main__":
    main()
