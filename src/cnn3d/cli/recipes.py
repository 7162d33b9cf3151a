"""`cnn3d recipes`: the paper's experiments shipped as recipes, with their reported numbers."""

from __future__ import annotations

from .common import add_parser


def add(sub) -> None:
    p = add_parser(sub, "recipes", "list the paper's experiments (recipes) or show one")
    p.add_argument("name", nargs="?", help="a recipe to show in full (its options and card)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..recipes import load_recipe, recipe_names, reported_line

    if args.name:
        recipe = load_recipe(args.name)
        print(f"{recipe.name}: {recipe.title}\n  file: {recipe.path}")
        for label, text in (
            ("source", recipe.source),
            ("dataset", recipe.dataset),
            ("protocol", recipe.protocol),
            ("follows", recipe.follows),
            ("needs", recipe.needs),
            ("note", recipe.note),
        ):
            if text:
                print(f"  {label}: {text}")
        if recipe.paper_classes:
            print(f"  classes: {recipe.paper_classes} in the paper's data")
        print(f"  tests: {recipe.test_checkpoint} of the run")
        for r in recipe.reported:
            print(f"  reported: {reported_line(r)}")
        print("  train: " + ", ".join(f"{k} = {v!r}" for k, v in recipe.options.items()))
        print("  test: " + ", ".join(f"{k} = {v!r}" for k, v in recipe.test.items()))
        return 0
    width = max(len(n) for n in recipe_names())
    for name in recipe_names():
        recipe = load_recipe(name)
        numbers = "; ".join(
            f"{r.metric} {r.value:g}" + (f" ({', '.join(r.tags)})" if r.tags else "")
            for r in recipe.reported
        )
        print(f"{name:<{width}}  {recipe.title}" + (f"  [{numbers}]" if numbers else ""))
    print(
        "\nThe numbers are the paper's (or the original README's), one run of the recipe's "
        "protocol unless tagged: 'mean of 3 splits' (a split's row shows the paper's mean over "
        "the three), 'test set' (the Kinetics test set, not the validation set the protocol "
        "tests), 'unverified' (recalled, not checked against the source)."
        "\n`cnn3d recipes NAME` shows one; `cnn3d train --recipe NAME ...` trains with it; "
        "`cnn3d reproduce NAME ...` trains, tests and compares with the reported numbers."
    )
    return 0
