"""`cnn3d convert`: any supported checkpoint re-saved in cnn3d's format."""

from __future__ import annotations

from .common import add_parser


def add(sub) -> None:
    p = add_parser(sub, "convert", "re-save any supported checkpoint in cnn3d's format")
    p.add_argument(
        "src", help="any checkpoint cnn3d loads (original 2018/2020, torchvision, cnn3d)"
    )
    p.add_argument("dst", help="a .pth or .safetensors path")
    p.add_argument(
        "--class-names",
        "--class_names",
        help="text file, one class name per line, stored in the output (default: the names "
        "the checkpoint has)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..models import convert
    from . import checks

    checks.input_file(args.src, "a checkpoint", checks.CHECKPOINT_SUFFIXES)
    checks.output_file(args.dst, "the converted checkpoint")
    model = convert(args.src, args.dst, args.class_names)
    spec = model.spec
    if args.class_names:
        names = f"class names from {args.class_names}"
    elif spec.class_names:
        names = "class names as found (the checkpoint's, or Kinetics-400's for a 2018 file)"
    else:
        names = "no class names (give --class-names FILE)"
    first = f" ({', '.join(spec.class_names[:3])}, ...)" if spec.class_names else ""
    print(
        f"{args.src} -> {args.dst}: {spec.arch}, {spec.n_classes} classes, "
        f"normalisation {spec.normalization.name}, options {spec.options}; {names}{first}"
    )
    return 0
