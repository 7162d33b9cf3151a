"""The `cnn3d` command: one subcommand per job, each a thin layer over the library."""

from __future__ import annotations

import argparse
import sys


def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from .models import build_model, count_flops, count_parameters, list_models

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


def cmd_convert(args: argparse.Namespace) -> int:
    from .models import convert

    model = convert(args.src, args.dst, args.class_names)
    spec = model.spec
    print(
        f"{args.src} -> {args.dst}: {spec.arch}, {spec.n_classes} classes, "
        f"normalisation {spec.normalization.name}, options {spec.options}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnn3d", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="table of every model family and depth")
    p.add_argument("--n-classes", "--n_classes", type=int, default=400)
    p.add_argument("--clip-length", "--sample_duration", type=int, default=16)
    p.add_argument("--size", "--sample_size", type=int, default=112)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("convert", help="re-save any supported checkpoint in cnn3d's format")
    p.add_argument("src")
    p.add_argument("dst", help="a .pth or .safetensors path")
    p.add_argument("--class-names", "--class_names", help="text file, one class name per line")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .models import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"cnn3d {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
