"""Inference and training clips/s of the field's backbones in cnn3d against their reference
implementations, on the same weights, in the same run, at each release's native clip size.

    python benchmarks/backbones.py [--piergiaj DIR] [--c3d-pytorch DIR] [--pytorchvideo DIR]
        [--fvcore DIR] [--models i3d c3d x3d_s slowfast_r50 r2plus1d_34] [--repeats 3] [--threads N]
        [--frames T --size S] [--no-train]

DIR: a checkout of github.com/piergiaj/pytorch-i3d, DavideA/c3d-pytorch, facebookresearch/
pytorchvideo, facebookresearch/fvcore (the script only imports their model code; nothing is
copied or downloaded).
R(2+1)D-34's reference is torchvision's `VideoResNet`. A model whose reference was not given is
skipped, and says so.

For each model: the reference network is built (random weights), its state_dict written in
the release's own format (a plain state_dict, or pytorchvideo's `.pyth` with `model_state`),
and that file loaded by `cnn3d.models.load_model` with no flags, so both run the same weights;
their logits are compared once. Then, alternating reference and cnn3d, `--repeats` timed
passes after one untimed one: inference (`no_grad`, batch 1) and a training step (forward,
cross-entropy, backward, SGD; batch 1). Both fp32, contiguous, on the CPU. The figure is the
median; the ratio is cnn3d's clips/s over the reference's.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F


def piergiaj_i3d(root: Path):
    sys.path.insert(0, str(root))
    from pytorch_i3d import InceptionI3d

    return InceptionI3d(400, in_channels=3), "rgb_imagenet.pt", False


def c3d_pytorch(root: Path):
    sys.path.insert(0, str(root))
    from C3D_model import C3D

    return C3D(), "c3d.pickle", False


FVCORE: list[Path] = []  # --fvcore: a checkout of facebookresearch/fvcore


def pytorchvideo_hub(root: Path, module: str, name: str):
    """A hub builder, imported without running pytorchvideo's hub `__init__` (which needs more
    of fvcore than its models do). pytorchvideo's models use two modules of fvcore's `nn`
    (`weight_init`, and `squeeze_excitation` for X3D): from `--fvcore`'s checkout where given,
    else `weight_init` is stubbed (weights are random anyway) and X3D cannot be built."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
        if FVCORE:
            sys.path.insert(0, str(FVCORE[0]))
        else:
            weight_init = types.ModuleType("fvcore.nn.weight_init")
            weight_init.c2_msra_fill = weight_init.c2_xavier_fill = lambda module: None
            sys.modules.setdefault("fvcore", types.ModuleType("fvcore"))
            sys.modules.setdefault("fvcore.nn", types.ModuleType("fvcore.nn"))
            sys.modules.setdefault("fvcore.nn.weight_init", weight_init)
        import pytorchvideo.models  # noqa: F401

        hub = types.ModuleType("pytorchvideo.models.hub")
        hub.__path__ = [str(root / "pytorchvideo" / "models" / "hub")]
        sys.modules["pytorchvideo.models.hub"] = hub
    built = getattr(importlib.import_module(f"pytorchvideo.models.hub.{module}"), name)()
    return built, f"{name}.pyth", True


def torchvision_r2plus1d_34(_root):
    from torchvision.models.video import resnet as tv

    model = tv.VideoResNet(
        tv.BasicBlock, [tv.Conv2Plus1D] * 4, [3, 4, 6, 3], tv.R2Plus1dStem, num_classes=400
    )
    return model, "r2plus1d_34_clip8_ig65m_kinetics.pth", False


# name -> (the flag naming its reference checkout (None: torchvision), builder)
MODELS = {
    "i3d": ("piergiaj", piergiaj_i3d),
    "c3d": ("c3d_pytorch", c3d_pytorch),
    "x3d_s": ("pytorchvideo", lambda root: pytorchvideo_hub(root, "x3d", "x3d_s")),
    "slowfast_r50": (
        "pytorchvideo",
        lambda root: pytorchvideo_hub(root, "slowfast", "slowfast_r50"),
    ),
    "r2plus1d_34": (None, torchvision_r2plus1d_34),
}


def slowfast_input(clip: torch.Tensor, alpha: int = 4) -> list[torch.Tensor]:
    """The reference's two pathways from one clip (its tutorial's PackPathway)."""
    t = clip.shape[2]
    return [torch.index_select(clip, 2, torch.linspace(0, t - 1, t // alpha).long()), clip]


# where a reference's logits are, where its forward returns something else: C3D ends in a
# softmax; pytorchvideo's heads apply the linear layer per position (channels last), then an
# activation in eval
LOGITS_AT = {"c3d": "fc8", "x3d_s": "blocks.5.proj", "slowfast_r50": "blocks.6.proj"}


def logits_of(output):
    if isinstance(output, tuple):  # hassony2-style (softmax, logits)
        output = output[-1]
    if output.dim() > 2:  # piergiaj's I3D: logits per time step
        output = output.flatten(2).mean(2)
    return output


def reference_logits(name: str, model, clip) -> torch.Tensor:
    """The reference's logits (averaged over time and positions, as cnn3d gives them)."""
    if name not in LOGITS_AT:
        return logits_of(model(clip))
    seen = []
    hook = model.get_submodule(LOGITS_AT[name]).register_forward_hook(
        lambda _m, _i, out: seen.append(out)
    )
    model(clip)
    hook.remove()
    out = seen[-1]
    return out.reshape(out.shape[0], -1, out.shape[-1]).mean(1)


def inference(model, feed):
    model.eval()

    def step():
        with torch.no_grad():
            model(feed())

    return step


def training(model, feed, n_classes):
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    label = torch.zeros(1, dtype=torch.long)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits_of(model(feed())), label % n_classes)
        loss.backward()
        optimizer.step()

    return step


def compare(name: str, root, args) -> list[dict]:
    from cnn3d.models import load_model

    reference, filename, pyth = MODELS[name][1](root)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        state = {k: v.clone() for k, v in reference.state_dict().items()}
        torch.save({"model_state": state} if pyth else state, path)
        ours = load_model(path)
    spec = ours.spec
    frames, size = args.frames or spec.clip_length, args.size or spec.sample_size
    clip = torch.rand(1, 3, frames, size, size) * 2 - 1
    ref_feed = (lambda: slowfast_input(clip)) if name.startswith("slowfast") else (lambda: clip)
    with torch.no_grad():
        want = reference_logits(name, reference.eval(), ref_feed())
        got = ours.eval()(clip)
    error = float((got - want).abs().max() / want.abs().max())
    rows = []
    kinds = [("inference", inference)]
    if not args.no_train:
        kinds.append(("training", lambda m, f: training(m, f, spec.n_classes)))
    for kind, make in kinds:
        steps = {"reference": make(reference, ref_feed), "cnn3d": make(ours, lambda: clip)}
        times: dict[str, list[float]] = {"reference": [], "cnn3d": []}
        for who in steps:  # one untimed pass each
            steps[who]()
        for _ in range(args.repeats):  # alternating, so a busy moment hits both
            for who, step in steps.items():
                times[who].append(once(step))
        rate = {who: 1 / statistics.median(t) for who, t in times.items()}
        rows.append(
            {
                "model": name, "kind": kind, "clip": f"{frames}x{size}x{size}",
                "reference": rate["reference"], "cnn3d": rate["cnn3d"],
                "ratio": rate["cnn3d"] / rate["reference"], "logits_rel_error": error,
            }
        )  # fmt: skip
    return rows


def once(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--piergiaj", type=Path, help="a checkout of piergiaj/pytorch-i3d")
    p.add_argument("--c3d-pytorch", type=Path, help="a checkout of DavideA/c3d-pytorch")
    p.add_argument("--pytorchvideo", type=Path, help="a checkout of facebookresearch/pytorchvideo")
    p.add_argument("--fvcore", type=Path, help="a checkout of facebookresearch/fvcore (X3D)")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--frames", type=int, help="clip length (default: each release's)")
    p.add_argument("--size", type=int, help="clip height and width (default: each release's)")
    p.add_argument("--no-train", action="store_true", help="inference only")
    args = p.parse_args(argv)
    FVCORE[:] = [args.fvcore] if args.fvcore else []
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, batch 1")
    print(f"{'model':<14}{'kind':<11}{'clip':<12}{'reference':>11}{'cnn3d':>9}{'ratio':>7}"
          f"{'logits rel. error':>19}")  # fmt: skip
    for name in args.models:
        flag, _ = MODELS[name]
        root = getattr(args, flag) if flag else None
        if flag and root is None:
            print(f"{name:<14}skipped: no --{flag.replace('_', '-')} checkout given")
            continue
        for row in compare(name, root, args):
            print(
                f"{row['model']:<14}{row['kind']:<11}{row['clip']:<12}{row['reference']:>11.3f}"
                f"{row['cnn3d']:>9.3f}{row['ratio']:>7.2f}{row['logits_rel_error']:>19.1e}"
            )
    print("clips/s, median of --repeats; ratio: cnn3d / reference (above 1: cnn3d faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
