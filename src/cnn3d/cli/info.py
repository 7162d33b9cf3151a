"""`cnn3d info`: what a checkpoint is, how it was made and what it scored (its card)."""

from __future__ import annotations

from . import checks
from .common import add_parser


def add(sub) -> None:
    p = add_parser(sub, "info", "describe a checkpoint: model, input, classes, training, scores")
    p.add_argument(
        "checkpoint",
        help="any supported checkpoint (cnn3d, the original's, torchvision), or a file of "
        "`cnn3d export`",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..card import describe

    suffixes = checks.CHECKPOINT_SUFFIXES + checks.EXPORTED_SUFFIXES
    checks.input_file(args.checkpoint, "a checkpoint", suffixes)
    print("\n".join(describe(args.checkpoint)))
    return 0
