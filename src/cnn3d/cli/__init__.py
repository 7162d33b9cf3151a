"""The `cnn3d` command: one subcommand per job, each a thin layer over the library.

Each subcommand is a module of this package with `add(sub)`, which declares its parser and
sets its handler (`run(args) -> exit code`). Handlers import the library (torch and all) only
when they run, so `--help`, `--version` and argument errors answer without loading torch.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from . import (
    benchmark,
    classify,
    convert,
    demo,
    export,
    features,
    fuse,
    info,
    models,
    prepare,
    recipes,
    reproduce,
    test,
    train,
)

# in the order `cnn3d --help` lists them
SUBCOMMANDS = (
    models, info, convert, export, prepare, train, test, recipes, reproduce, classify, features, fuse,
    benchmark, demo,
)  # fmt: skip

CONFIGURABLE = ("train", "test", "reproduce")  # the commands that take --config and --recipe
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
    parser.commands = sub.choices  # name -> the subcommand's parser
    return parser


def configured(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Apply `--recipe NAME` (or `reproduce NAME`), then `--config FILE`, as the command's
    defaults, so that the flags on the command line override them (`config.py`)."""
    from ..errors import UsageError
    from ..recipes import load_recipe
    from .config import apply_config, given, read_config

    command = argv[0] if argv else None
    if command not in CONFIGURABLE:
        return
    sub = parser.commands[command]
    recipe = argv[1] if command == "reproduce" and len(argv) > 1 else given(argv, "--recipe")
    if command == "reproduce" and recipe in ("-h", "--help"):
        return  # argparse answers it, before it would ask for the recipe
    if command == "reproduce" and recipe and recipe.startswith("-"):
        raise UsageError("the recipe comes first: cnn3d reproduce NAME --video-path ...")
    if recipe and not recipe.startswith("-"):
        loaded = load_recipe(recipe)
        table = loaded.test if command == "test" else loaded.options
        apply_config(sub, table, f"recipe {loaded.name} ({loaded.path})")
    path = given(argv, "--config")
    if path:
        apply_config(sub, read_config(path), path)


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left


def main(argv: list[str] | None = None) -> int:
    """Run one command line; the exit status (2 for a user's error, printed as one line)."""
    try:
        try:
            return run_command(sys.argv[1:] if argv is None else list(argv))
        finally:  # `--help` exits: flush here, not at exit, so a closed pipe is caught below
            sys.stdout.flush()
    except BrokenPipeError:
        # `cnn3d info x.pth | head`: the reader left. Quietly, as Python's docs recommend:
        # point stdout at devnull so that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_EXIT


def run_command(argv: list[str]) -> int:
    parser = build_parser()
    from ..errors import Cnn3dError, Interrupted

    try:
        configured(parser, argv)
    except Cnn3dError as error:
        print(f"cnn3d {argv[0]}: error: {error}", file=sys.stderr)
        return 2
    args, extras = parser.parse_known_args(argv)
    if extras:
        from .common import unknown_options

        parser.commands[args.command].error(unknown_options(parser.commands[args.command], extras))

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
    except OSError as error:  # a full disk where no atomic write named the file
        if error.errno not in (errno.ENOSPC, errno.EDQUOT) or os.environ.get(TRACEBACK_VARIABLE):
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(
            f"cnn3d {args.command}: error: no space left on the device{where}: free some space "
            "and run again",
            file=sys.stderr,
        )
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
