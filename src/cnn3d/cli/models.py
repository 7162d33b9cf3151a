"""`cnn3d models`: every family and depth with parameters, GFLOPs and feature width."""

from __future__ import annotations

from ..values import positive_int
from .common import add_parser


def add(sub) -> None:
    p = add_parser(sub, "models", "table of every model family and depth")
    p.add_argument(
        "--n-classes",
        "--n_classes",
        type=positive_int,
        default=400,
        help="classes of the head the parameter counts include",
    )
    p.add_argument(
        "--clip-length",
        "--sample_duration",
        type=positive_int,
        default=16,
        help="frames per clip for the GFLOPs column",
    )
    p.add_argument(
        "--size",
        "--sample_size",
        type=positive_int,
        default=112,
        help="clip height and width for the GFLOPs column",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from ..models import build_model, count_flops, count_parameters, list_models

    print(f"{'family':<12}{'depth':>6}{'params (M)':>12}{'GFLOPs':>9}{'features':>10}")
    for family, depth in list_models():
        with torch.device("meta"):
            model = build_model(family, depth, n_classes=args.n_classes)
        gflops = count_flops(family, depth, args.clip_length, args.size) / 1e9
        params = count_parameters(model) / 1e6
        print(f"{family:<12}{depth:>6}{params:>12.2f}{gflops:>9.2f}{model.num_features:>10}")
    print(
        f"\nGFLOPs: one {args.clip_length}x{args.size}x{args.size} clip, forward, 2 per "
        f"multiply-add; params with a {args.n_classes}-class head."
    )
    return 0
