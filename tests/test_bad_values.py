"""Bad values and misleading inputs: each is one line naming the option or the file, before any
work; the original's `--root_path` reaches every path it joined."""

import json
from pathlib import Path

import pytest
import torch

from cnn3d.cli import build_parser, main
from cnn3d.cli.train import train_config_from_args
from cnn3d.models import build_model, save_model, with_spec
from helpers import frames_with_index, train_args, write_mp4


def one_line_error(capsys, argv) -> str:
    """Run the command; it must fail with status 2 and one line on stderr."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no message"
    return err[-1]


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "videos").mkdir()
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"labels": ["a"], "database": {}}))
    return ["train", "--video-path", str(tmp_path / "videos"), "--annotation-path", str(ann),
            "--result-path", str(tmp_path / "run")]  # fmt: skip


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--seed", "-1"], "--seed"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--device", "tpu:7"], "--device"),
        (["--momentum", "5"], "--momentum"),
        (["--crop-scale", "1.0", "0.25"], "--crop-scale"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--dampening", "2"], "--dampening"),
        (["--sample-size", "100000"], "--sample-size"),
    ],
)
def test_bad_values_are_one_line_before_any_work(folders, capsys, tmp_path, extra, named):
    line = one_line_error(capsys, [*folders, *extra])
    assert named in line, line
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_missing_gpu_is_one_line(folders, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = one_line_error(capsys, [*folders, "--device", "cuda:7"])
    assert "--device cuda:7" in line and "no CUDA GPU" in line


def test_a_null_required_path_in_a_config_is_named(folders, capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"video_path: null\nannotation_path: {folders[4]}\nresult_path: r\n")
    line = one_line_error(capsys, ["train", "--config", str(config)])
    assert "video_path" in line and "null" in line


def test_a_malformed_yaml_is_one_line_with_its_line_number(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("n_epochs: 3\nlr: 0.1\nmilestones: [10, 20\nbatch_size: 4\n")
    line = one_line_error(capsys, ["train", "--config", str(config)])
    assert str(config) in line and "line 4" in line, line


def test_an_unknown_flag_gets_the_nearest_option(folders, capsys):
    line = one_line_error(capsys, [*folders, "--n-epoks", "3"])
    assert "--n-epoks" in line and "did you mean --n-epochs" in line, line


def test_root_path_is_joined_onto_every_path_the_original_joined():
    """The 2018/2020 code: opt.video_path = os.path.join(opt.root_path, opt.video_path), and so
    for the annotation, result, resume and pretrain paths."""
    args = build_parser().parse_args(
        ["train", "--root_path", "/data", "--video_path", "jpg", "--annotation_path", "a.json",
         "--result_path", "results", "--resume_path", "r.pth", "--pretrain_path", "p.pth"]
    )  # fmt: skip
    cfg = train_config_from_args(args)
    assert cfg.video_path == "/data/jpg"
    assert cfg.annotation_path == "/data/a.json"
    assert cfg.result_path == "/data/results"
    assert cfg.resume == "/data/r.pth"
    assert cfg.pretrain_path == "/data/p.pth"


def test_a_file_given_as_a_checkpoint_is_named_for_what_it_is(capsys, tmp_path):
    annotation = tmp_path / "ucf101_01.json"
    annotation.write_text(json.dumps({"labels": ["a"], "database": {"v": {}}}))
    log = tmp_path / "train.log"
    log.write_text("epoch\tloss\tacc\tlr\n1\t0.5\t0.7\t0.1\n")
    video = tmp_path / "clip.mp4"
    write_mp4(video, frames_with_index(4))
    for path, what in ((annotation, "an annotation JSON"), (log, "a text file"),
                       (video, "a video")):  # fmt: skip
        line = one_line_error(capsys, ["info", str(path)])
        assert f"{path}: {what}" in line and "not a checkpoint" in line, line
        assert "pickle" not in line


@pytest.mark.slow
def test_resume_auto_with_another_depth_names_the_option(tiny, tmp_path, capsys):
    result = tmp_path / "run"
    quick = ("--n_epochs", "1", "--no-amp", "--workers", "0", "--no-val")
    assert main(train_args(tiny, result, *quick)) == 0
    capsys.readouterr()
    line = one_line_error(
        capsys, train_args(tiny, result, *quick, "--model_depth", "18", "--resume", "auto")
    )
    assert "--model-depth 10 there, 18 here" in line, line


@pytest.mark.slow
def test_a_checkpoint_of_another_depth_names_both_architectures(tiny, tmp_path, capsys):
    model = with_spec(build_model("resnet", 18, 2, widen_factor=0.25), sample_size=32)
    other = tmp_path / "other.pth"
    save_model(other, model, extra={"epoch": 1})
    line = one_line_error(
        capsys, train_args(tiny, tmp_path / "run", "--n_epochs", "2", "--resume", str(other))
    )
    assert "resnet-18" in line and "resnet-10" in line, line


@pytest.mark.slow
def test_a_position_past_the_epochs_end_is_refused(tiny, tmp_path, capsys):
    """A hand-made last.pth at step 500 of an epoch of 3 steps (12 videos, batches of 4)."""
    result = tmp_path / "run"
    model = with_spec(build_model("resnet", 10, 2, widen_factor=0.25), sample_size=32)
    position = {"epoch": 1, "step": 500, "sums": torch.zeros(3, dtype=torch.float64)}
    save_model(result / "last.pth", model, extra={"epoch": 0, "position": position})
    args = train_args(tiny, result, "--n_epochs", "2", "--workers", "0", "--resume", "auto")
    line = one_line_error(capsys, args)
    assert "step 500" in line and "past the epoch's end" in line, line


@pytest.mark.slow
def test_a_non_finite_loss_before_any_checkpoint_says_none_was_written(tiny, tmp_path, capsys):
    args = train_args(tiny, tmp_path / "nan", "--n_epochs", "1", "--lr", "1e12", "--no-amp")
    line = one_line_error(capsys, [*args, "--save-every", "0", "--workers", "0"])
    assert "non-finite loss" in line and "No checkpoint was written yet" in line, line
    assert not Path(tmp_path / "nan" / "last.pth").exists()
