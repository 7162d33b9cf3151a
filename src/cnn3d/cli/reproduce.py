"""`cnn3d reproduce NAME`: train with a recipe, test the result with the recipe's protocol,
and print the figures obtained beside the ones the paper reports (also `reproduce.json`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import test as test_command
from . import train as train_command
from .common import add_parser

METRICS = ("video_top1", "video_top5", "average_top1_top5", "clip_top1")


def add(sub) -> None:
    p = add_parser(
        sub, "reproduce", "train with a recipe, test with its protocol, compare with the paper"
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
    from ..files import atomic_write
    from ..recipes import load_recipe
    from ..runtime import Torchrun
    from ..train import train

    recipe = load_recipe(args.recipe)
    train_command.check_requirements(args.recipe, args)
    cfg = train_command.train_config_from_args(args)
    train_command.check_paths(cfg)
    result = Path(cfg.result_path)
    train(cfg)
    if Torchrun.from_environment().rank != 0:  # under torchrun: rank 0 tests, alone
        return 0
    checkpoint = result / "best.pth" if (result / "best.pth").exists() else result / "last.pth"
    tested = result / "test"
    test_command.run(protocol_args(recipe, checkpoint, tested, args))
    metrics = json.loads((tested / "metrics.json").read_text())
    rows = comparison(recipe, metrics)
    report = {
        "recipe": recipe.name,
        "title": recipe.title,
        "protocol": recipe.protocol,
        "checkpoint": str(checkpoint),
        "rows": rows,
        "metrics": {k: metrics.get(k) for k in (*METRICS, "n_videos", "mean_class_accuracy")},
    }
    atomic_write(
        result / "reproduce.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1))
    )
    print("\n".join(table(recipe, rows, metrics)))
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


def comparison(recipe, metrics: dict) -> list[dict]:
    """One row per reported number, with what this run obtained (percent)."""
    rows = []
    for r in recipe.reported:
        value = metrics.get(r.metric)
        obtained = None if value is None else 100 * value
        rows.append(
            {
                "metric": r.metric,
                "reported": r.value,
                "status": r.status,
                "source": r.source,
                "note": r.note,
                "obtained": obtained,
                "difference": None if obtained is None else obtained - r.value,
            }
        )
    return rows


def table(recipe, rows: list[dict], metrics: dict) -> list[str]:
    lines = [f"\nrecipe {recipe.name}: {recipe.title}", f"protocol: {recipe.protocol}", ""]
    lines.append(
        f"{'metric':<20}{'paper':>8}{'obtained':>10}{'diff':>8}  status of the paper's number"
    )
    for row in rows:
        note = f"; {row['note']}" if row["note"] else ""
        lines.append(
            f"{row['metric']:<20}{row['reported']:>8.1f}{row['obtained']:>10.2f}"
            f"{row['difference']:>+8.2f}  {row['status']}{note}"
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
