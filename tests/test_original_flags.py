"""The original programs' command lines: every option of 3D-ResNets-PyTorch's 2020 and 2018
`main.py` and of the sister tool is accepted with the original's meaning or refused with one
line naming cnn3d's way (the option lists are the reference's, ../shared/reference/
original-system.md 1.1-1.3); flags that disagree with a checkpoint or an annotation file are
errors naming both; paths are checked before any work."""

import json

import pytest
import torch

from cnn3d.cli import build_parser, main
from cnn3d.cli.train import train_config_from_args
from cnn3d.models import build_model, save_model, with_spec
from helpers import frames_with_index, write_mp4

# (option, a value it takes or None for a switch), as the originals spell them
NEW = [
    ("--root_path", "."), ("--video_path", "v"), ("--annotation_path", "a.json"),
    ("--result_path", "r"), ("--dataset", "ucf101"), ("--n_classes", "101"),
    ("--sample_size", "112"), ("--sample_duration", "16"), ("--sample_t_stride", "2"),
    ("--train_crop", "random"), ("--train_crop_min_scale", "0.25"),
    ("--train_crop_min_ratio", "0.75"), ("--no_hflip", None), ("--colorjitter", None),
    ("--train_t_crop", "center"), ("--mean_dataset", "kinetics"), ("--no_mean_norm", None),
    ("--no_std_norm", None), ("--value_scale", "1"), ("--input_type", "rgb"),
    ("--file_type", "hdf5"), ("--n_threads", "4"), ("--accimage", None), ("--model", "resnet"),
    ("--model_depth", "18"), ("--conv1_t_size", "7"), ("--conv1_t_stride", "1"),
    ("--no_max_pool", None), ("--resnet_shortcut", "B"), ("--resnet_widen_factor", "1.0"),
    ("--wide_resnet_k", "2"), ("--resnext_cardinality", "32"), ("--n_pretrain_classes", "400"),
    ("--pretrain_path", "p.pth"), ("--ft_begin_module", "layer4"), ("--resume_path", "r.pth"),
    ("--learning_rate", "0.1"), ("--momentum", "0.9"), ("--dampening", "0.0"),
    ("--weight_decay", "1e-3"), ("--nesterov", None), ("--optimizer", "sgd"),
    ("--lr_scheduler", "multistep"), ("--multistep_milestones", "50"),
    ("--overwrite_milestones", None), ("--plateau_patience", "10"), ("--batch_size", "128"),
    ("--n_epochs", "200"), ("--batchnorm_sync", None), ("--manual_seed", "1"),
    ("--no_train", None), ("--no_val", None), ("--n_val_samples", "3"), ("--inference", None),
    ("--inference_subset", "val"), ("--inference_stride", "16"), ("--inference_crop", "center"),
    ("--inference_no_average", None), ("--inference_batch_size", "0"), ("--output_topk", "5"),
    ("--no_cuda", None), ("--distributed", None), ("--dist_url", "tcp://127.0.0.1:23456"),
    ("--world_size", "-1"), ("--checkpoint", "10"), ("--tensorboard", None),
]  # fmt: skip
OLD = [
    ("--n_finetune_classes", "101"), ("--initial_scale", "1.0"), ("--n_scales", "5"),
    ("--scale_step", "0.84089641525"), ("--std_norm", None), ("--lr_patience", "10"),
    ("--begin_epoch", "1"), ("--ft_begin_index", "4"), ("--test", None),
    ("--test_subset", "val"), ("--scale_in_test", "1.0"), ("--crop_position_in_test", "c"),
    ("--no_softmax_in_test", None), ("--norm_value", "1"),
]  # fmt: skip
SISTER = [
    ("--input", "list.txt"), ("--video_root", "."), ("--model", "m.pth"),
    ("--output", "out.json"), ("--mode", "score"), ("--batch_size", "32"), ("--n_threads", "4"),
    ("--model_name", "resnet"), ("--model_depth", "34"), ("--resnet_shortcut", "A"),
    ("--wide_resnet_k", "2"), ("--resnext_cardinality", "32"), ("--no_cuda", None),
    ("--verbose", None),
]  # fmt: skip

TRAIN = ["train", "--video_path", "v", "--annotation_path", "a.json", "--result_path", "r"]
CLASSIFY = ["classify", "x.mp4", "--checkpoint", "m.pth"]


def parse(argv, capsys):
    """(namespace or None if refused, the one line printed)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:
        err = capsys.readouterr().err.strip()
        assert stop.code == 2, err
        return None, err
    return args, capsys.readouterr().err.strip()


@pytest.mark.parametrize("flag,value", NEW + OLD, ids=[f for f, _ in NEW + OLD])
def test_every_option_of_the_originals_main_is_accepted_or_refused_in_one_line(flag, value, capsys):
    args, said = parse([*TRAIN, flag] + ([value] if value is not None else []), capsys)
    if args is None:
        assert "unrecognized" not in said and "invalid" not in said, said
        assert len(said.splitlines()) == 1 and said.startswith("cnn3d train: error:")
        assert "cnn3d" in said.split("error:", 1)[1] or "--" in said.split("(the original's)")[1]
    else:
        assert "error" not in said


@pytest.mark.parametrize("flag,value", SISTER, ids=[f for f, _ in SISTER])
def test_every_option_of_the_sister_tool_is_accepted(flag, value, capsys):
    args, said = parse([*CLASSIFY, flag] + ([value] if value is not None else []), capsys)
    assert args is not None, said


def config(argv, capsys):
    args, said = parse([*TRAIN, *argv], capsys)
    assert args is not None, said
    return train_config_from_args(args)


def test_the_original_meanings(capsys):
    cfg = config(["--root_path", "/data", "--resume_path", "runs/last.pth"], capsys)
    assert (cfg.video_path, cfg.annotation_path, cfg.result_path) == (
        "/data/v",
        "/data/a.json",
        "/data/r",
    )
    assert cfg.resume == "/data/runs/last.pth"
    assert config(["--no_hflip"], capsys).flip is False
    assert config(["--train_crop_min_scale", "0.3"], capsys).crop_scale == (0.3, 1.0)
    assert config(["--train_crop_min_ratio", "0.5"], capsys).crop_ratio == (0.5, 2.0)
    assert config(["--ft_begin_index", "3"], capsys).ft_begin_module == "layer3"
    assert config(["--ft_begin_index", "5"], capsys).ft_begin_module == "fc"
    assert config(["--no_cuda"], capsys).device == "cpu"
    assert config(["--batchnorm_sync"], capsys).sync_bn is True
    assert config(["--no_val"], capsys).val is False
    assert config(["--train_t_crop", "center"], capsys).temporal_crop == "center"
    old = config(["--n_classes", "400", "--n_finetune_classes", "101"], capsys)
    assert (old.n_classes, old.n_pretrain_classes) == (101, 400)
    # the 2018 defaults (activitynet mean, 0-255, no std) are the hara2018 preset
    assert config(["--norm_value", "1"], capsys).normalization.name == "hara2018"
    std = config(["--std_norm", "--mean_dataset", "kinetics", "--norm_value", "255"], capsys)
    assert std.normalization.std == pytest.approx(
        (38.7568578 / 255, 37.88248729 / 255, 40.02898126 / 255)
    )
    assert std.normalization.mean[0] == pytest.approx(110.63666788 / 255)
    assert std.normalization.value_range == 1.0
    scaled = config(["--value_scale", "255"], capsys).normalization  # 2020: mean and std x 255
    assert scaled.mean == pytest.approx((0.4345 * 255, 0.4051 * 255, 0.3775 * 255))
    assert scaled.std[0] == pytest.approx(0.2768 * 255) and scaled.value_range == 255
    no_mean = config(["--no_mean_norm", "--no_std_norm"], capsys).normalization
    assert no_mean.mean == (0.0, 0.0, 0.0) and no_mean.std == (1.0, 1.0, 1.0)
    assert parse([*TRAIN, "--n_scales", "4"], capsys)[0] is None  # only the paper's scales


@pytest.fixture
def r10(tmp_path):
    model = build_model("resnet", 10, 3, widen_factor=0.25)
    with_spec(model, class_names=["x", "y", "z"], sample_size=32)
    save_model(tmp_path / "r10.pth", model)
    return tmp_path / "r10.pth"


def test_flags_that_disagree_with_the_checkpoint_or_annotations_are_errors(
    tiny,
    tmp_path,
    r10,
    capsys,
):
    videos, ann = tiny
    base = ["train", "--video-path", str(videos), "--annotation-path", str(ann)]
    base += ["--result-path", str(tmp_path / "run"), "--workers", "0", "--n-epochs", "1"]
    cases = [
        (["--model_depth", "18", "--pretrain_path", str(r10)], "--model_depth 18, but"),
        (["--model", "densenet", "--pretrain_path", str(r10)], "--model densenet, but"),
        (["--n_pretrain_classes", "400", "--pretrain_path", str(r10)], "predicts 3 classes"),
        (["--n_classes", "6"], "--n_classes 6, but"),
    ]
    for extra, said in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert said in err and ("resnet-10" in err or "has 2 classes" in err or "3 classes" in err)
    assert not (tmp_path / "run").exists()  # nothing written
    video = tmp_path / "v.mp4"
    write_mp4(video, frames_with_index(8, 32, 32))
    assert main(["classify", str(video), "--checkpoint", str(r10), "--model_depth", "34"]) == 2
    assert "--model_depth 34, but" in capsys.readouterr().err
    assert main(["classify", str(video), "--checkpoint", str(r10), "--mode", "feature"]) == 2
    assert "is `cnn3d features`" in capsys.readouterr().err


def test_the_sister_tools_command_line_runs(tmp_path, r10, capsys):
    root = tmp_path / "videos"
    write_mp4(root / "a.mp4", frames_with_index(8, 32, 32))
    write_mp4(root / "sub" / "b.mp4", frames_with_index(8, 32, 32, seed=1))
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "list.txt").write_text("a.mp4\n./sub/b.mp4\n")
    argv = ["classify", "--input", str(tmp_path / "input" / "list.txt"), "--video_root", str(root)]
    argv += ["--model", str(r10), "--output", str(tmp_path / "out.json"), "--no_cuda"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "--model is the sister tool's name for the checkpoint" in captured.err
    entries = json.loads((tmp_path / "out.json").read_text())
    # "video" as listed in the input file, as the sister tool wrote it
    assert [e["video"] for e in entries] == ["a.mp4", "./sub/b.mp4"]
    assert main(argv[:-3] + ["--no_cuda"]) == 0  # printed, not written: the same names
    printed = [line.split("  (")[0] for line in capsys.readouterr().out.splitlines()]
    assert [p for p in printed if p.endswith(".mp4")] == ["a.mp4", "./sub/b.mp4"]


def test_paths_are_checked_before_any_work(tiny, tmp_path, r10, capsys, monkeypatch):
    videos, ann = tiny
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("x")
    train = ["train", "--video-path", str(videos), "--annotation-path", str(ann)]
    cases = [
        ([*train, "--result-path", str(in_the_way / "run")], "is a file"),
        (["train", "--video-path", str(tmp_path / "nope"), "--annotation-path", str(ann),
          "--result-path", str(tmp_path / "r")], "nope: no such folder"),
        (["train", "--video-path", str(videos), "--annotation-path", str(ann.parent),
          "--result-path", str(tmp_path / "r")], "is a folder, not an annotation file; it holds ann.json"),
        (["test", "--checkpoint", str(r10.parent), "--video-path", str(videos), "--annotation-path",
          str(ann), "--result-path", str(tmp_path / "t")], "is a folder, not a checkpoint; it holds r10.pth"),
        (["classify", str(videos), "--checkpoint", str(r10), "-o", str(in_the_way / "o.json")], "is a file"),
        (["features", str(videos), "--checkpoint", str(r10), "-o", str(in_the_way)], "is a file"),
    ]  # fmt: skip
    for argv, said in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert main(["features", str(videos), "--checkpoint", str(r10), "-o", str(tmp_path / "f")]) == 2
    assert "cannot write there" in capsys.readouterr().err and not (tmp_path / "f").exists()


def test_one_default_device_for_every_command(monkeypatch, capsys):
    from cnn3d.cli.common import runtime_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for argv in (["test", "--checkpoint", "m", "--video-path", "v", "--annotation-path", "a",
                  "--result-path", "r"], CLASSIFY, ["features", "x.mp4", "--checkpoint", "m", "-o", "f"]):  # fmt: skip
        args, _ = parse(argv, capsys)
        assert str(runtime_config(args).torch_device()) == "cuda:0"
    args, _ = parse(TRAIN, capsys)
    assert str(train_config_from_args(args).runtime.torch_device()) == "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert str(runtime_config(parse(CLASSIFY, capsys)[0]).torch_device()) == "cpu"
