"""Training clips/s (forward + backward + SGD step) of cnn3d's 3D ResNet-18 and ResNet-50 on
16x112x112 clips, against the same architecture built from torchvision's `VideoResNet` in the
same run and at the same settings, and cnn3d's default precision against fp32.

    python benchmarks/train_step.py [--batch 8] [--steps 3] [--depths 18 50] [--device cpu]
        [--frames 16] [--size 112]

Settings: `fp32` (contiguous), `fp32+cl` (channels_last_3d), `bf16+cl` (bf16 autocast with
channels_last_3d: cnn3d's default on CPUs with native bf16 and on GPUs). Each row is the median of
`--steps` timed steps after two warm-up steps. Random inputs; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.video import resnet as tv

from cnn3d.models import build_model, count_parameters
from cnn3d.precision import autocast, default_amp


class HaraStem(nn.Sequential):
    """The 3D ResNet stem (7x7x7 conv, stride (1, 2, 2), then a 3x3x3 max-pool) for VideoResNet."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 64, 7, stride=(1, 2, 2), padding=3, bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, 2, 1),
        )


def torchvision_resnet(depth: int, n_classes: int) -> nn.Module:
    block, layers = {
        18: (tv.BasicBlock, [2, 2, 2, 2]),
        34: (tv.BasicBlock, [3, 4, 6, 3]),
        50: (tv.Bottleneck, [3, 4, 6, 3]),
    }[depth]
    return tv.VideoResNet(block, [tv.Conv3DSimple] * 4, layers, HaraStem, n_classes)


def step_times(model, batch, steps, device, amp, channels_last, shape) -> list[float]:
    model = model.to(device).train()
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, *shape, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 400, (batch,), device=device)
    times = []
    for i in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(device, amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return times


def worst_gradient_ratio(model, device, shape) -> float:
    """The largest |bf16 gradient| / |fp32 gradient| over the conv weights, on one batch of two
    clips: about 1 when bf16 training is right, 1e30 or inf where the CPU kernels fail."""
    model = model.to(device).train().to(memory_format=torch.channels_last_3d)
    x = torch.randn(2, 3, *shape, device=device).contiguous(memory_format=torch.channels_last_3d)
    y = torch.tensor([0, 1], device=device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = []
    for amp in (False, True):
        model.load_state_dict(state)
        model.zero_grad()
        with autocast(device, amp):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        grads.append([m.weight.grad.norm() for m in model.modules() if isinstance(m, nn.Conv3d)])
    ratios = [(b / a).item() for a, b in zip(*grads, strict=True)]
    return max(r if r == r else float("inf") for r in ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=16, help="clip length")
    parser.add_argument("--size", type=int, default=112, help="clip height and width")
    args = parser.parse_args()
    shape = (args.frames, args.size, args.size)
    device = torch.device(args.device)
    default = default_amp(device)
    settings = {"fp32": (False, False), "fp32+cl": (False, True), "bf16+cl": (True, True)}
    default_name = "bf16+cl" if default else "fp32+cl"
    print(
        f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"{args.frames}x{args.size}x{args.size}"
    )
    print(f"cnn3d default here: {default_name}")
    print(f"{'model':12s} {'build':12s} {'setting':8s} {'clips/s':>8s}  ratio")
    for depth in args.depths:
        torch.manual_seed(0)
        ours = build_model("resnet", depth, n_classes=400, shortcut="B")
        theirs = torchvision_resnet(depth, 400)
        assert count_parameters(ours) == count_parameters(theirs), "not the same architecture"
        results = {}
        for name, (amp, cl) in settings.items():
            for build, model in (("torchvision", theirs), ("cnn3d", ours)):
                times = step_times(model, args.batch, args.steps, device, amp, cl, shape)
                results[build, name] = args.batch / statistics.median(times)
        for name in settings:
            for build in ("torchvision", "cnn3d"):
                rate = results[build, name]
                vs_tv = rate / results["torchvision", name]
                vs_fp32 = rate / results[build, "fp32"]
                print(
                    f"ResNet-{depth:<5d} {build:12s} {name:8s} {rate:8.2f}  "
                    f"{vs_tv:.2f}x torchvision, {vs_fp32:.2f}x fp32"
                )
        print(
            f"ResNet-{depth}: cnn3d default ({default_name}) is "
            f"{results['cnn3d', default_name] / results['cnn3d', 'fp32']:.2f}x cnn3d fp32"
        )
        for build, model in (("torchvision", theirs), ("cnn3d", ours)):
            ratio = worst_gradient_ratio(model, device, shape)
            print(f"ResNet-{depth} {build}: worst |bf16 grad| / |fp32 grad| {ratio:.3g}")


if __name__ == "__main__":
    main()
