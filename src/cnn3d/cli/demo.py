"""`cnn3d demo`: the whole job on the bundled synthetic dataset."""

from __future__ import annotations

from pathlib import Path

from ..values import positive_int
from .common import add_parser


def add(sub) -> None:
    p = add_parser(sub, "demo", "the end-to-end demo on the bundled synthetic dataset")
    p.add_argument("--output", default="demo_output", help="folder for everything it writes")
    p.add_argument("--epochs", type=positive_int, default=12, help="training epochs")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..demo import run_demo

    return run_demo(Path(args.output), epochs=args.epochs)
