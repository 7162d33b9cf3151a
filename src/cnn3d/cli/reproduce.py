"""`cnn3d reproduce NAME`: train with a recipe, test the result with the recipe's protocol,
and print the figures obtained beside the ones the paper reports (also `reproduce.json`).

The figures are comparable with the paper's only when the run is the recipe's: its data has the
paper's class count and no training option differs from the recipe's (a flag or `--config`
changed none). Otherwise the table says that they are not comparable and why, and gives no
difference. A reported number measured on something other than one run of the protocol says so
on its row: "test set" (no difference against a validation run), "mean of 3 splits".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..recipes.comparison import (
    METRICS,
    changes_text,
    comparison,
    not_comparable_because,
    plain,
    table,
)
from . import test as test_command
from . import train as train_command
from .common import add_parser

# options that change how a run executes or where it writes, not what it computes: a run that
# changes them is still the recipe's (AMP, channels-last and compile change rounding only)
NOT_PROTOCOL = frozenset(
    {
        "recipe", "config", "video_path", "annotation_path", "result_path", "root_path",
        "pretrain_path", "workers", "prefetch", "skip_bad_videos", "device", "resume",
        "checkpoint_every", "save_every", "save_every_steps", "stop_signals", "index_cache", "requeue",
        "amp", "channels_last", "compile", "log_every", "tensorboard", "progress",
    }
)  # fmt: skip


def add(sub) -> None:
    p = add_parser(
        sub, "reproduce", "train with a recipe, test with its protocol, compare with the paper"
    )
    p.epilog = (
        "A flag or --config overrides the recipe's option; the comparison then says the figures "
        "are not comparable with the paper's, and why. Trying a recipe small: docs/training.md."
    )
    p.add_argument("recipe", metavar="NAME", help="a recipe (`cnn3d recipes`) or a recipe file")
    train_command.add_options(p)
    p.add_argument(
        "--config",
        metavar="FILE",
        help="options from a TOML, YAML or JSON file, over the recipe's; flags override both (default: none)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import numpy as np

    from ..errors import UsageError
    from ..files import atomic_write
    from ..recipes import load_recipe
    from ..runtime import Torchrun
    from ..training.loop import train

    recipe = load_recipe(args.recipe)
    train_command.check_requirements(args.recipe, args)
    cfg = train_command.train_config_from_args(args)
    train_command.check_paths(cfg)
    if recipe.test_checkpoint == "best.pth" and not cfg.val:
        raise UsageError(
            f"recipe {recipe.name} tests best.pth, which a run without validation (--no-val) "
            "does not write"
        )
    changed = overridden_options(recipe, args)
    if changed and Torchrun.from_environment().rank == 0:
        print(
            f"not the recipe's protocol ({changes_text(changed)}): the figures will not be comparable with the paper's"
        )
    result = Path(cfg.result_path)
    train(cfg)
    if Torchrun.from_environment().rank != 0:  # under torchrun: rank 0 tests, alone
        return 0
    checkpoint = result / recipe.test_checkpoint
    if not checkpoint.exists():
        raise UsageError(
            f"{checkpoint}: the recipe's protocol tests {recipe.test_checkpoint}, which this run did not write"
        )
    tested = result / "test"
    protocol = protocol_args(recipe, checkpoint, tested, args)
    test_command.run(protocol)
    metrics = json.loads((tested / "metrics.json").read_text())
    n_classes = len(np.load(tested / "scores.npz")["class_names"])
    reasons = not_comparable_because(recipe, n_classes, changed)
    rows = comparison(recipe, metrics, reasons, protocol.subset)
    report = {
        "recipe": recipe.name,
        "title": recipe.title,
        "protocol": recipe.protocol,
        "checkpoint": str(checkpoint),
        "comparable": not reasons,
        "not_comparable_because": reasons,
        "n_classes": {"run": n_classes, "paper": recipe.paper_classes},
        "overridden": [{"option": o, "recipe": r, "run": v} for o, r, v in changed],
        "rows": rows,
        "metrics": {k: metrics.get(k) for k in (*METRICS, "n_videos", "mean_class_accuracy")},
    }
    atomic_write(
        result / "reproduce.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1))
    )
    print("\n".join(table(recipe, rows, metrics, reasons)))
    print(f"wrote {result / 'reproduce.json'}")
    return 0


def protocol_args(recipe, checkpoint: Path, out: Path, args) -> argparse.Namespace:
    """`cnn3d test`'s options for the recipe's protocol, on the data the run trained on."""
    from .config import apply_config

    parser = argparse.ArgumentParser(prog="cnn3d")
    commands = parser.add_subparsers(dest="command")
    test_command.add(commands)
    apply_config(commands.choices["test"], recipe.test, f"recipe {recipe.name}: [test]")
    argv = ["test", "--checkpoint", str(checkpoint), "--video-path", args.video_path]
    argv += ["--annotation-path", args.annotation_path, "--result-path", str(out)]
    argv += ["--batch-size", str(args.batch_size), "--workers", str(args.workers)]
    if args.device:
        argv += ["--device", args.device]
    return parser.parse_args(argv)


def overridden_options(recipe, args) -> list[tuple[str, object, object]]:
    """(option, the recipe's value, this run's) for each setting of what the run computes that
    a flag or `--config` moved from the recipe (from the default, where the recipe is silent)."""
    from .config import apply_config

    commands = argparse.ArgumentParser(prog="cnn3d").add_subparsers(dest="command")
    add(commands)
    sub = commands.choices["reproduce"]
    apply_config(sub, recipe.options, f"recipe {recipe.name}")
    paths = ["--video-path", "v", "--annotation-path", "a", "--result-path", "r"]
    baseline = vars(sub.parse_args([str(args.recipe), *paths]))
    names = {}  # dest -> its first long option, as a user would type it
    for action in sub._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs:
            names.setdefault(action.dest, longs[0])
    changed = []
    for dest, expected in baseline.items():
        if dest in NOT_PROTOCOL or dest not in names:
            continue
        value = getattr(args, dest, expected)
        if value != expected:
            changed.append((names[dest], plain(expected), plain(value)))
    return changed
