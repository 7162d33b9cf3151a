"""The `cnn3d` command: one subcommand per job, each a thin layer over the library.

Each subcommand is a module of this package with `add(sub)`, which declares its parser and
sets its handler (`run(args) -> exit code`). Handlers import the library (torch and all) only
when they run, so `--help`, `--version` and argument errors answer without loading torch.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import benchmark, classify, convert, demo, features, fuse, models, prepare, test, train

# in the order `cnn3d --help` lists them
SUBCOMMANDS = (
    models, convert, prepare, train, test, classify, features, fuse, benchmark, demo,
)  # fmt: skip

TRACEBACK_VARIABLE = "CNN3D_TRACEBACK"  # set to 1 to see the traceback behind an error line


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="cnn3d",
        description="Train, evaluate and apply 3D CNNs for video action recognition.",
        epilog=f"Errors are one line; set {TRACEBACK_VARIABLE}=1 to see the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"cnn3d {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..errors import Cnn3dError, Interrupted

    try:
        return args.run(args)
    except Interrupted as stop:
        print(f"cnn3d {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print(f"cnn3d {args.command}: interrupted", file=sys.stderr)
        return 130
    except Cnn3dError as error:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        print(f"cnn3d {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if "DataLoader worker" not in str(error) or os.environ.get(TRACEBACK_VARIABLE):
            raise
        # a worker killed from outside (out of memory, a CPU limit): say so, not a traceback
        print(
            f"cnn3d {args.command}: error: {str(error).strip()} A data-loading worker process "
            "died; this is most often memory: try fewer --workers or a smaller --batch-size"
            + (", then --resume auto continues from last.pth" if args.command == "train" else ""),
            file=sys.stderr,
        )
        return 2
