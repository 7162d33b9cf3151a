"""Runs as files: `--config` (TOML, YAML, JSON) and `--recipe` give options, flags override
them, every value is checked as its flag's would be, unknown keys name the nearest option; and
the opts.json a run writes starts the same run again."""

import json

import pytest
import torch

from cnn3d.cli import build_parser, configured, main
from cnn3d.models.checkpoint import read_file
from helpers import train_args

DATA = ["--video-path", "v", "--annotation-path", "a.json", "--result-path", "r"]


def parsed(*argv):
    parser = build_parser()
    configured(parser, list(argv))
    return parser.parse_args(list(argv))


def write(path, text):
    path.write_text(text)
    return str(path)


def test_a_config_gives_options_and_flags_override_it(tmp_path):
    config = write(
        tmp_path / "run.toml",
        'model_depth = 34\nlearning_rate = 0.05\nshortcut = "A"\nmilestones = [5, 9]\n'
        'sample-duration = 8\nno_val = true\nflip = false\nvideo_path = "from-config"\n',
    )
    args = parsed("train", "--config", config, "--annotation-path", "a.json", "--result-path", "r")
    assert (args.model_depth, args.lr, args.shortcut, args.milestones) == (34, 0.05, "A", [5, 9])
    assert (args.clip_length, args.val, args.flip, args.video_path) == (
        8,
        False,
        False,
        "from-config",
    )
    args = parsed("train", "--lr", "0.02", "--config", config, "--val", *DATA)  # flags win,
    assert (args.lr, args.val, args.video_path, args.model_depth) == (0.02, True, "v", 34)
    # wherever they stand; untouched options keep their defaults
    plain = parsed("train", *DATA)
    for name in ("batch_size", "weight_decay", "n_epochs", "momentum", "train_crop"):
        assert getattr(args, name) == getattr(plain, name), name


def test_recipe_then_config_then_flags(tmp_path):
    config = write(tmp_path / "c.json", json.dumps({"shortcut": "B", "n_epochs": 3}))
    args = parsed("train", "--recipe", "k400-resnet-34", *DATA)
    assert (args.shortcut, args.normalization, args.dampening, args.n_epochs) == (
        "A",
        "hara2018",
        0.0,
        200,
    )
    args = parsed("train", "--recipe", "k400-resnet-34", "--config", config, *DATA)
    assert (args.shortcut, args.n_epochs, args.model_depth) == ("B", 3, 34)
    args = parsed(
        "train", "--config", config, "--recipe", "k400-resnet-34", "--n-epochs", "7", *DATA
    )
    assert (args.shortcut, args.n_epochs) == ("B", 7)


def test_toml_yaml_and_json_say_the_same(tmp_path):
    pytest.importorskip("yaml")
    texts = {
        "c.toml": 'batch_size = 8\nlr_scheduler = "cosine"\ncrop-scale = [0.3, 1.0]\namp = false\n',
        "c.yaml": "batch_size: 8\nlr_scheduler: cosine\ncrop-scale: [0.3, 1.0]\namp: false\n",
        "c.json": '{"batch_size": 8, "lr_scheduler": "cosine", "crop-scale": [0.3, 1.0], "amp": false}',
    }
    seen = []
    for name, text in texts.items():
        args = parsed("train", "--config", write(tmp_path / name, text), *DATA)
        seen.append((args.batch_size, args.lr_scheduler, args.crop_scale, args.amp))
    assert seen == [(8, "cosine", [0.3, 1.0], False)] * 3


@pytest.mark.parametrize(
    "text, said",
    [
        ("learning_rat = 0.1", "unknown option 'learning_rat'; did you mean learning_rate?"),
        ("batch_size = 0", "batch_size: must be at least 1, not 0"),
        ('batch_size = "many"', "batch_size: invalid literal for int() with base 10: 'many'"),
        ('lr_scheduler = "sometimes"', "lr_scheduler: 'sometimes' is not one of multistep"),
        ('flip = "yes"', "flip: expected true or false, not 'yes'"),
        ("lr = [0.1, 0.2]", "lr: expected one value, not a list"),
        ("crop_scale = [0.3]", "crop_scale: expected 2 values, not 1"),
        ("[optimizer]\nlr = 0.1", "optimizer: expected a number or a string"),
        ("lr = 0.1\nlr 0.2", "not valid TOML"),
    ],
)
def test_a_bad_key_or_value_is_named_with_its_file(tmp_path, capsys, text, said):
    config = write(tmp_path / "bad.toml", text)
    assert main(["train", "--config", config, *DATA]) == 2
    err = capsys.readouterr().err
    assert said in err and str(config) in err and len(err.strip().splitlines()) == 1, err


def test_a_missing_config_or_recipe_is_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.toml"), *DATA]) == 2
    assert "none.toml: no such config file" in capsys.readouterr().err
    assert main(["train", "--config", write(tmp_path / "c.ini", "x=1"), *DATA]) == 2
    assert "a config is a .toml, .yaml or .json file" in capsys.readouterr().err
    assert main(["train", "--recipe", "k400-resnet-35", *DATA]) == 2
    err = capsys.readouterr().err
    assert "no recipe 'k400-resnet-35'; did you mean" in err and "k400-resnet-34" in err


def test_test_takes_a_config_too(tmp_path):
    config = write(tmp_path / "t.json", '{"n_clips": 4, "three_crop": true, "tail": "drop"}')
    args = parsed("test", "--config", config, "--checkpoint", "c.pth", *DATA)
    assert (args.n_clips, args.three_crop, args.tail) == (4, True, "drop")


def test_opts_json_starts_the_same_run_again(tiny, tmp_path, capsys):
    """A run, then `train --config <run>/opts.json --result-path <other>`: the same options
    (bar the result folder), the same weights after its steps."""
    first, second = tmp_path / "a", tmp_path / "b"
    extra = ("--n_epochs", "2", "--lr", "0.05", "--no-amp", "--weight-decay", "0.01")
    assert main(train_args(tiny, first, *extra)) == 0
    opts = json.loads((first / "opts.json").read_text())
    assert opts["lr"] == 0.05 and opts["used"]["lr"] == 0.05 and "config" not in opts
    assert main(["train", "--config", str(first / "opts.json"), "--result-path", str(second)]) == 0
    again = json.loads((second / "opts.json").read_text())
    assert {k: v for k, v in again.items() if k not in ("result_path", "used")} == {
        k: v for k, v in opts.items() if k not in ("result_path", "used")
    }
    a, b = read_file(first / "last.pth"), read_file(second / "last.pth")
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert (first / "train_batch.log").read_text() == (second / "train_batch.log").read_text()
