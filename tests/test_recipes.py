"""The paper's experiments as recipes: every recipe parses, builds its model and transforms,
and carries exactly the reported numbers of the reference (tests/paper_numbers.py), each with
its status and scope; `cnn3d recipes` lists them with what each number is. `cnn3d reproduce`
is tested in test_reproduce.py."""

import re

import numpy as np
import pytest
import torch

from cnn3d.cli import build_parser, configured, main
from cnn3d.cli.train import train_config_from_args
from cnn3d.data.transforms import EvalTransform, TrainTransform
from cnn3d.errors import UsageError
from cnn3d.models import build_model
from cnn3d.recipes import load_recipe, recipe_names
from paper_numbers import CLASSES, README_AVERAGE, expected_numbers

DATA = ["--video-path", "v", "--annotation-path", "a.json", "--result-path", "r"]


def test_the_paper_and_the_2020_release_are_all_there():
    names = set(recipe_names())
    for model in README_AVERAGE:
        assert f"k400-{model}" in names
    assert "k400-resnext-101-64f" in names
    for dataset in ("ucf101", "hmdb51"):
        for split in (1, 2, 3):
            assert f"{dataset}-resnext-101-split{split}" in names
            assert f"{dataset}-resnext-101-64f-split{split}" in names
        assert {f"{dataset}-from-k700-r3d-50-split1", f"{dataset}-from-km-r3d-50-split1"} <= names
    for depth in (18, 34, 50, 101, 152, 200):
        assert {f"k700-r3d-{depth}", f"km-r3d-{depth}"} <= names


@pytest.mark.parametrize("name", recipe_names())
def test_reported_numbers_are_the_references_with_its_status_and_scope(name):
    recipe = load_recipe(name)
    carried = {(r.metric, r.value, r.scope, r.status) for r in recipe.reported}
    assert len(carried) == len(recipe.reported)  # no number twice
    assert carried == expected_numbers(name)
    if not carried:  # the 2020 tables were not retrieved (the 64f row has only its test set)
        assert "not retrieved" in recipe.note
    assert recipe.paper_classes == CLASSES[name.split("-")[0]]


def test_the_abstracts_78_4_is_the_64_frame_model():
    values = {r.value for r in load_recipe("k400-resnext-101").reported}
    assert 78.4 not in values and 74.5 in values
    [test_set] = load_recipe("k400-resnext-101-64f").reported
    assert (test_set.value, test_set.scope, test_set.status) == (78.4, "test set", "verified")


def test_a_split_row_carries_the_mean_of_3_splits_as_such():
    for dataset in ("ucf101", "hmdb51"):
        for split in (1, 2, 3):
            recipe = load_recipe(f"{dataset}-resnext-101-split{split}")
            assert [r.scope for r in recipe.reported] == ["mean of 3 splits"]
            assert recipe.requires == ("pretrain_path",)


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_parses_and_builds_its_model_and_transforms(name):
    recipe = load_recipe(name)
    argv = ["train", "--recipe", name, *DATA]
    parser = build_parser()
    configured(parser, argv)
    cfg = train_config_from_args(parser.parse_args(argv))
    n_classes = cfg.n_classes or CLASSES[name.split("-")[0]]
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.model_depth, n_classes, **cfg.model_options)
        out = model(torch.empty(2, 3, cfg.clip_length, cfg.sample_size, cfg.sample_size))
    assert out.shape == (2, n_classes)
    clip = torch.zeros(3, 2 * cfg.sample_size, 2 * cfg.sample_size, dtype=torch.uint8)
    clip = clip[None].expand(cfg.clip_length, -1, -1, -1)
    train = TrainTransform(cfg.sample_size, cfg.train_crop, cfg.flip, tuple(cfg.crop_scale))
    size = (3, cfg.clip_length, cfg.sample_size, cfg.sample_size)
    assert train(clip, np.random.default_rng(0)).shape == size
    assert EvalTransform(cfg.sample_size, "center")(clip).shape == size
    test_argv = ["test", "--recipe", name, "--checkpoint", "c.pth", *DATA]
    parser = build_parser()
    configured(parser, test_argv)
    assert parser.parse_args(test_argv).subset == recipe.test["subset"]
    assert recipe.title and recipe.source and recipe.protocol and recipe.dataset


def listed(out: str, name: str) -> str:
    """The numbers `cnn3d recipes` lists on a recipe's row."""
    [row] = [line for line in out.splitlines() if line.startswith(name + " ")]
    return row.split("[", 1)[1].rstrip("]") if "[" in row else ""


def test_cnn3d_recipes_lists_them_with_what_each_number_is(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in recipe_names())
    assert listed(out, "k400-resnet-34") == (
        "video_top1 60.1 (unverified); video_top5 81.9 (unverified); average_top1_top5 71"
    )
    # two values of one metric: the README's validation figure and the poster's test set one
    assert listed(out, "k400-resnext-101").endswith(
        "average_top1_top5 75.4; average_top1_top5 74.5 (test set)"
    )
    assert listed(out, "k400-resnext-101-64f") == "average_top1_top5 78.4 (test set)"
    for split in (1, 2, 3):  # each split's row shows the mean over the three, labelled
        assert (
            listed(out, f"ucf101-resnext-101-split{split}") == "video_top1 90.7 (mean of 3 splits)"
        )
        assert listed(out, f"hmdb51-resnext-101-64f-split{split}") == (
            "video_top1 70.2 (mean of 3 splits)"
        )
    assert listed(out, "k700-r3d-50") == ""
    assert "'mean of 3 splits'" in out and "'test set'" in out  # the tags are explained
    assert main(["recipes", "k400-resnet-34"]) == 0
    out = capsys.readouterr().out
    assert "dampening 0" in out and "shortcut = 'A'" in out and "71 (verified" in out
    assert "classes: 400 in the paper's data" in out and "tests: last.pth of the run" in out
    assert main(["recipes", "hmdb51-resnext-101-split2"]) == 0
    assert "63.8 (verified, mean of 3 splits, " in capsys.readouterr().out


CARD = """
model = "resnet"
{options}
[recipe]
title = "t"
source = "s"
dataset = "d"
protocol = "p"
{card}
[[recipe.reported]]
metric = "video_top1"
value = 50.0
status = "verified"
source = "s"
{reported}
"""


@pytest.mark.parametrize(
    "options, card, reported, complaint",
    [
        ("", "", 'scope = "val set"', "a scope in"),
        ("", "", 'status = "confirmed"', "a status in"),
        ("", 'test_checkpoint = "runs/best.pth"', "", "test_checkpoint names a .pth file"),
        ("", 'test_checkpoint = "best.pt"', "", "test_checkpoint names a .pth file"),
        ("", "n_classes = 0", "", "n_classes must be a positive whole number"),
        ("n_classes = 101", "n_classes = 400", "", "n_classes 101 in the options but 400"),
    ],
)
def test_a_recipe_card_is_checked(tmp_path, options, card, reported, complaint):
    path = tmp_path / "r.toml"
    text = CARD.format(options=options, card=card, reported=reported)
    if reported.startswith("status"):  # a second status line replaces the first
        text = text.replace('status = "verified"\n', "")
    path.write_text(text)
    with pytest.raises(UsageError, match=re.escape(complaint)):
        load_recipe(str(path))


def test_a_recipe_card_gives_the_class_count_and_the_tested_checkpoint(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(CARD.format(options="n_classes = 51", card="", reported=""))
    recipe = load_recipe(str(path))
    assert (recipe.paper_classes, recipe.test_checkpoint) == (51, "last.pth")
    card = 'n_classes = 3\ntest_checkpoint = "best.pth"'
    path.write_text(CARD.format(options="", card=card, reported='scope = "test set"'))
    recipe = load_recipe(str(path))
    assert (recipe.paper_classes, recipe.test_checkpoint) == (3, "best.pth")
    assert recipe.reported[0].scope == "test set"


def test_a_fine_tuning_recipe_names_the_checkpoint_it_needs(tmp_path, capsys, tiny):
    videos, ann = tiny
    argv = ["train", "--recipe", "ucf101-resnext-101-64f-split1", "--video-path", str(videos)]
    argv += ["--annotation-path", str(ann), "--result-path", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs --pretrain-path: --pretrain-path resnext-101-64f-kinetics.pth" in err
    assert not (tmp_path / "r").exists()
