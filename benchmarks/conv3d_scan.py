"""Where does this PyTorch build's CPU Conv3d compute wrong weight gradients? (issue 10, item 4)

For every temporal length T = 1-16, cubic kernel 1/3/5/7 (padding k // 2), stride 1/2, dtype
fp32/bf16, memory format contiguous/channels_last_3d and two spatial sizes, the weight and input
gradients of plain `F.conv3d` (implicit zero padding, the fast path) are compared with a float64
computation of the same convolution. A case is wrong when the relative error of either gradient
exceeds a dtype's tolerance (fp32 1e-4, bf16 5e-2) in any of `--repeats` runs (the wrong values
change from run to run). Prints the wrong cases and the temporal lengths that need explicit
padding per (kernel, stride, dtype), the input `models/conv.py` takes its rule from.

    .venv/bin/python benchmarks/conv3d_scan.py [--repeats 3] [--spatial 4 12] [--kernels 1 3 5 7]
        [--strides 1 2] [--dtypes float32 bfloat16] [--max-t 16]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import selectors
import subprocess
import sys

import torch
import torch.nn.functional as F

TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 5e-2}


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got = got.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


def one_case(t, size, k, stride, dtype, channels_last, channels, seed) -> float:
    c_in, c_out = channels
    g = torch.Generator().manual_seed(seed)
    x64 = torch.randn(2, c_in, t, size, size, generator=g, dtype=torch.float64)
    w64 = torch.randn(c_out, c_in, k, k, k, generator=g, dtype=torch.float64) / k**1.5
    grad_out = None
    pad = k // 2

    def grads(x, w):
        x = x.detach().requires_grad_()
        w = w.detach().requires_grad_()
        y = F.conv3d(x, w, None, stride, pad)
        nonlocal grad_out
        if grad_out is None:
            grad_out = torch.randn(y.shape, generator=g, dtype=torch.float64)
        y.backward(grad_out.to(y.dtype))
        return x.grad, w.grad

    # the reference sees the rounded inputs of the low-precision run
    x, w = x64.to(dtype), w64.to(dtype)
    want_x, want_w = grads(x.double(), w.double())
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
        w = w.contiguous(memory_format=torch.channels_last_3d)
    got_x, got_w = grads(x, w)
    return max(relative_error(got_x, want_x), relative_error(got_w, want_w))


GROUPS = list(itertools.product((1, 3, 5, 7), (1, 2), ("float32", "bfloat16"), (False, True)))
CHANNELS = ((3, 16), (16, 16))  # a stem and an inner layer


def worker(group: int, first_t: int, args) -> None:
    """One group's cases from T = first_t on, one line per T (a crash loses only that T)."""
    k, stride, dtype, channels_last = GROUPS[group]
    dtype = getattr(torch, dtype)
    for t in range(first_t, args.max_t + 1):
        errors = [
            one_case(t, size, k, stride, dtype, channels_last, channels, seed)
            for size in args.spatial
            for channels in CHANNELS
            for seed in range(args.repeats)
        ]
        print(t, max(errors), flush=True)


def _lines(argv, timeout: float):
    """(T, error) lines of a worker, as they come; stops when it exits or is silent too long."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        while selector.select(timeout):
            line = process.stdout.readline()
            if not line:
                break
            t, error = line.split()
            yield int(t), float(error)
    finally:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spatial", type=int, nargs="+", default=[4, 12])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kernels", type=int, nargs="+", default=[1, 3, 5, 7])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--max-t", type=int, default=16, help="the longest temporal length")
    parser.add_argument("--case-timeout", type=float, default=300, help="seconds per T")
    parser.add_argument("--worker", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(*args.worker, args)
        return 0
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"], capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        flags = f.read()
    print(f"torch {torch.__version__}, {platform.machine()}, {cpu}")
    print(f"avx512_bf16: {'avx512_bf16' in flags}, amx_bf16: {'amx_bf16' in flags}")
    print(f"spatial sizes {args.spatial}, channels {CHANNELS}, {args.repeats} runs per case")
    worst_right = {"float32": 0.0, "bfloat16": 0.0}
    for group, (k, stride, dtype, channels_last) in enumerate(GROUPS):
        if k not in args.kernels or stride not in args.strides or dtype not in args.dtypes:
            continue
        wrong, crashed, t = [], [], 1
        while t <= args.max_t:
            argv = [sys.executable, __file__, "--worker", str(group), str(t),
                    "--repeats", str(args.repeats), "--threads", str(args.threads),
                    "--max-t", str(args.max_t),
                    "--spatial", *map(str, args.spatial)]  # fmt: skip
            for t_done, error in _lines(argv, args.case_timeout):
                if error > TOLERANCE[getattr(torch, dtype)]:
                    wrong.append(t_done)
                else:
                    worst_right[dtype] = max(worst_right[dtype], error)
                t = t_done + 1
            if t <= args.max_t:  # the process died or hung on case t
                crashed.append(t)
                t += 1
        layout = "cl3d" if channels_last else "ncdhw"
        print(f"kernel {k} stride {stride} {dtype:8s} {layout:5s}: wrong at T = "
              f"{sorted(wrong + crashed) or 'none'}"
              + (f" (process died or hung at T = {crashed})" if crashed else ""), flush=True)  # fmt: skip
    print("largest relative error of the right cases:",
          {d: f"{e:.1e}" for d, e in worst_right.items()})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
