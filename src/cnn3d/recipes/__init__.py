"""The paper's experiments as files: one TOML recipe per row of the seed paper (Hara, Kataoka,
Satoh, CVPR 2018) and of the 2020 release (Kataoka et al., arXiv:2004.04968), shipped in
`cnn3d/recipes/`.

A recipe holds `train` options at its top level (the long option names, as in `--config`),
its evaluation protocol as `cnn3d test` options in `[test]`, and its card in `[recipe]`: a
title, the source, the dataset, the protocol in words, where it follows the paper against the
original code, the options a user must add (e.g. the checkpoint to fine-tune), and the reported
numbers, each `[[recipe.reported]]` with its metric (a key of `metrics.json`), its value in
percent, its status ("verified" or "recalled, unverified"), its source and its scope: what the
number was measured on when that is not one run of the recipe's protocol ("mean of 3 splits" on
a split's row, "test set" where the protocol tests the validation set). The card also gives the
class count of the paper's dataset (`n_classes`, where the train options leave it to the data)
and the checkpoint the protocol tests (`test_checkpoint`, default `last.pth`: the paper reports
the trained model, not one chosen on the set it is tested on). Nothing here imports torch:
`cnn3d recipes` and `--help` stay fast.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

RECIPE_DIR = Path(__file__).parent  # the TOML files beside this module
STATUSES = ("verified", "recalled, unverified")
# what a reported number was measured on, when not one run of the recipe's own protocol
SCOPES = ("", "mean of 3 splits", "test set")
METRICS = ("video_top1", "video_top5", "average_top1_top5", "clip_top1", "mean_class_accuracy")


@dataclass(frozen=True)
class Reported:
    """A number the paper (or the original README) reports for a recipe's row."""

    metric: str  # a key of metrics.json
    value: float  # percent
    status: str  # one of STATUSES
    source: str
    note: str = ""
    scope: str = ""  # one of SCOPES: "" is one run of the recipe's protocol

    @property
    def tags(self) -> tuple[str, ...]:
        """The short labels a listing shows beside the value: its scope, and "unverified"."""
        unverified = ("unverified",) if self.status != "verified" else ()
        return unverified + ((self.scope,) if self.scope else ())


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    title: str
    source: str
    dataset: str
    protocol: str
    follows: str  # where it follows the paper against the original code, or ""
    requires: tuple[str, ...]  # options the user must give besides the data and result paths
    reported: tuple[Reported, ...]
    needs: str = ""  # the required options in words (which checkpoint to fine-tune)
    release: str = ""  # the file name of the model the original released for this row
    note: str = ""
    options: dict = field(default_factory=dict)  # train options
    test: dict = field(default_factory=dict)  # cnn3d test options: the protocol
    paper_classes: int | None = None  # the class count of the paper's dataset, where known
    test_checkpoint: str = "last.pth"  # the checkpoint of the run the protocol tests


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def recipe_path(name: str) -> Path:
    """A shipped recipe by name, or a recipe file by path."""
    given = Path(name)
    if given.suffix == ".toml" and given.exists():
        return given
    path = RECIPE_DIR / f"{name}.toml"
    if not path.exists():
        import difflib

        near = difflib.get_close_matches(name, recipe_names(), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else "; `cnn3d recipes` lists them"
        raise UsageError(f"no recipe {name!r}{hint}")
    return path


def load_recipe(name: str) -> Recipe:
    path = recipe_path(name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: not a readable recipe ({error})") from None
    card = data.get("recipe")
    if not isinstance(card, dict):
        raise UsageError(f"{path}: no [recipe] table (title, source, reported numbers)")
    try:
        reported = tuple(Reported(**r) for r in card.get("reported", []))
        recipe = Recipe(
            name=path.stem,
            path=path,
            title=card["title"],
            source=card["source"],
            dataset=card["dataset"],
            protocol=card["protocol"],
            follows=card.get("follows", ""),
            requires=tuple(card.get("requires", ())),
            reported=reported,
            needs=card.get("needs", ""),
            release=card.get("release", ""),
            note=card.get("note", ""),
            options={k: v for k, v in data.items() if k not in ("recipe", "test")},
            test=dict(data.get("test", {})),
            paper_classes=paper_classes(path, data, card),
            test_checkpoint=card.get("test_checkpoint", "last.pth"),
        )
    except (KeyError, TypeError) as error:
        raise UsageError(f"{path}: an incomplete recipe card ({error})") from None
    check_card(recipe)
    return recipe


def paper_classes(path: Path, options: dict, card: dict) -> int | None:
    """The train options' n_classes where they fix it (fine-tuning rows), else the card's."""
    trained, stated = options.get("n_classes"), card.get("n_classes")
    if trained is not None and stated is not None and trained != stated:
        raise UsageError(f"{path}: n_classes {trained} in the options but {stated} in the card")
    return trained if trained is not None else stated


def check_card(recipe: Recipe) -> None:
    """The card's vocabularies: statuses, metrics, scopes, the class count, the checkpoint."""
    path = recipe.path
    for r in recipe.reported:
        if r.status not in STATUSES or r.metric not in METRICS or r.scope not in SCOPES:
            raise UsageError(
                f"{path}: a reported number needs a status in {STATUSES}, a metric in "
                f"{METRICS} and a scope in {SCOPES}, not {r.status!r} / {r.metric!r} / "
                f"{r.scope!r}"
            )
    classes = recipe.paper_classes
    if classes is not None and (not isinstance(classes, int) or classes < 1):
        raise UsageError(f"{path}: n_classes must be a positive whole number, not {classes!r}")
    name = recipe.test_checkpoint
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".pth"):
        raise UsageError(
            f"{path}: test_checkpoint names a .pth file of the run's result folder "
            f"(e.g. 'last.pth'), not {name!r}"
        )


def recipe_for_release(file_name: str) -> Recipe | None:
    """The recipe of the row whose released model has this file name, if any."""
    for name in recipe_names():
        recipe = load_recipe(name)
        if recipe.release and recipe.release == file_name:
            return recipe
    return None


def missing_requirements(recipe: Recipe, given: dict) -> list[str]:
    """The options the recipe requires that `given` (option dest -> value) leaves unset."""
    return [key for key in recipe.requires if given.get(key) in (None, "")]


def reported_line(r: Reported) -> str:
    details = ", ".join(x for x in (r.status, r.scope, r.note) if x)
    return f"{r.metric} {r.value:g} ({details}; {r.source})"
