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

from . import test as test_command
from . import train as train_command
from .common import add_parser

METRICS = ("video_top1", "video_top5", "average_top1_top5", "clip_top1")
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


def plain(value):
    """An option's value as JSON holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def changes_text(changed: list[tuple[str, object, object]]) -> str:
    return "options changed from the recipe: " + ", ".join(
        f"{option} {shown(value)} (recipe: {shown(expected)})"
        for option, expected, value in changed
    )


def shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "unset" if value is None else str(value)


def not_comparable_because(recipe, n_classes: int, changed: list) -> list[str]:
    """Why this run's figures are not the paper's protocol's (none: they are comparable)."""
    reasons = []
    if recipe.paper_classes is not None and n_classes != recipe.paper_classes:
        reasons.append(f"the data has {n_classes} classes, the paper's {recipe.paper_classes}")
    if changed:
        reasons.append(changes_text(changed))
    return reasons


def comparison(recipe, metrics: dict, reasons: list[str], subset: str) -> list[dict]:
    """One row per reported number, with what this run obtained (percent) and, where the run
    and the number are comparable, the difference."""
    rows = []
    for r in recipe.reported:
        value = metrics.get(r.metric)
        obtained = None if value is None else 100 * value
        why = ""
        if r.scope == "test set" and subset != "test":
            why = f"the paper's figure is on the test set; the protocol tests the {subset} subset"
        comparable = not reasons and not why and obtained is not None
        rows.append(
            {
                "metric": r.metric,
                "reported": r.value,
                "status": r.status,
                "scope": r.scope,
                "source": r.source,
                "note": r.note,
                "obtained": obtained,
                "comparable": comparable,
                "why": why,
                "difference": obtained - r.value if comparable else None,
            }
        )
    return rows


def table(recipe, rows: list[dict], metrics: dict, reasons: list[str]) -> list[str]:
    lines = [f"\nrecipe {recipe.name}: {recipe.title}", f"protocol: {recipe.protocol}", ""]
    if reasons:
        lines.append(
            "NOT COMPARABLE with the paper's figures (no differences shown): " + "; ".join(reasons)
        )
    elif rows:
        lines.append(
            "comparable with the paper: the recipe's options on data of the paper's class count"
        )
    lines.append(
        f"{'metric':<20}{'paper':>8}{'obtained':>10}{'diff':>8}  status of the paper's number"
    )
    for row in rows:
        obtained = "-" if row["obtained"] is None else f"{row['obtained']:.2f}"
        diff = "-" if row["difference"] is None else f"{row['difference']:+.2f}"
        notes = "; ".join(x for x in (row["scope"], row["why"], row["note"]) if x)
        lines.append(
            f"{row['metric']:<20}{row['reported']:>8.1f}{obtained:>10}{diff:>8}  {row['status']}"
            + (f"; {notes}" if notes else "")
        )
    reported = {row["metric"] for row in rows}
    for key in METRICS:
        if key not in reported and metrics.get(key) is not None:
            lines.append(f"{key:<20}{'-':>8}{100 * metrics[key]:>10.2f}{'':>8}  (not reported)")
    if not rows:
        lines.append(f"(the paper reports no number for this row: {recipe.note or 'none found'})")
    lines.append(
        f"\n{metrics.get('n_videos', '?')} videos tested; clip accuracy is not video accuracy: the paper's numbers are video level"
    )
    return lines
