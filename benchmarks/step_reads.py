"""Training steps/s with the loss and accuracy read from the device at every step (`.item()`,
what the loop did before) against reads every 20 steps (`train --log-every`'s GPU default), the
same network and batches in one run, the two orders alternated.

    python benchmarks/step_reads.py [--device cpu] [--depth 18] [--size 64] [--batch 8]

On a CPU a read waits for nothing (the operations have already run), so the ratio shows only
the cost of the read itself; on a GPU it shows the stall of waiting for each step to finish.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnn3d.models import build_model


def run(net, optimizer, x, labels, steps: int, every: int) -> float:
    """Steps/s of `steps` SGD steps, reading (loss, correct) every `every` steps."""
    pending = []
    started = time.perf_counter()
    for i in range(1, steps + 1):
        logits = net(x)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        pending.append(torch.stack([loss.detach(), (logits.argmax(1) == labels).sum().float()]))
        if i % every == 0:
            torch.stack(pending).tolist()
            pending = []
    if pending:
        torch.stack(pending).tolist()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build_model("resnet", args.depth, 10).to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    labels = torch.randint(10, (args.batch,), device=device)
    run(net, optimizer, x, labels, 5, 1)  # warm-up
    rates = {1: [], 20: []}
    for r in range(args.rounds):
        for every in (1, 20) if r % 2 == 0 else (20, 1):
            rates[every].append(run(net, optimizer, x, labels, args.steps, every))
    each, grouped = statistics.median(rates[1]), statistics.median(rates[20])
    print(
        f"resnet-{args.depth} {args.frames}x{args.size}x{args.size} batch {args.batch} on {device}"
    )
    print(
        f"read every step: {each:.2f} steps/s; every 20 steps: {grouped:.2f} steps/s; "
        f"ratio {grouped / each:.3f}"
    )


if __name__ == "__main__":
    main()
