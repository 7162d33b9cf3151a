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
        help="frames per clip for the GFLOPs column (default: each family's native clip)",
    )
    p.add_argument(
        "--size",
        "--sample_size",
        type=positive_int,
        help="clip height and width for the GFLOPs column (default: each family's native size)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from ..models import build_model, count_flops, count_parameters, list_models
    from ..models.zoo import FAMILIES

    print(
        f"{'family':<12}{'depth':>13}{'params (M)':>12}{'GFLOPs':>9}{'features':>10}"
        f"{'clip':>12}  normalisation"
    )
    for family, depth in list_models():
        native = FAMILIES[family]
        length = args.clip_length or native.clip_of(depth)[0]
        size = args.size or native.clip_of(depth)[1]
        with torch.device("meta"):
            model = build_model(family, depth, n_classes=args.n_classes)
        gflops = count_flops(family, depth, length, size) / 1e9
        params = count_parameters(model) / 1e6
        print(
            f"{family:<12}{depth!s:>13}{params:>12.2f}{gflops:>9.2f}{model.num_features:>10}"
            f"{f'{length}x{size}x{size}':>12}  {native.normalization}"
        )
    print(
        "\nGFLOPs: one clip of the size shown (each family's native clip unless --clip-length "
        f"or --size is given), forward, 2 per multiply-add; params with a {args.n_classes}-class "
        "head."
    )
    return 0
