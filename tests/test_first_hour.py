"""The rough edges a new user meets first: Ctrl-C, odd batch sizes, argument checks, --help,
what `train` says and stores."""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from cnn3d.cli import build_parser, main
from cnn3d.cli.common import HelpFormatter
from cnn3d.models import with_spec
from cnn3d.models.checkpoint import read_file
from helpers import train_args

pytestmark = pytest.mark.slow


def start_training(tiny, result, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    argv = train_args(tiny, result, "--workers", "2", *extra)
    return subprocess.Popen(
        [sys.executable, "-m", "cnn3d", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_rows(path, rows, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= rows + 1:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {rows} rows")


def test_ctrl_c_stops_cleanly_says_what_was_saved_and_resumes(tiny, tmp_path):
    result = tmp_path / "run"
    process = start_training(tiny, result, "--n_epochs", "3", "--batch_size", "2")
    wait_for_rows(result / "train_batch.log", 1, process)
    process.send_signal(signal.SIGINT)  # Ctrl-C reaches the main process
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    # the partial epoch is saved: last.pth holds epoch 1 up to the step Ctrl-C came after
    found = re.search(r"holds epoch 1 up to step (\d+)\. .*it goes on with epoch 1 after step", err)
    assert found and "--resume auto" in err, err
    assert "Traceback" not in err and "exited unexpectedly" not in err
    saved = read_file(result / "last.pth")
    assert saved["epoch"] == 0 and saved["position"]["step"] == int(found.group(1))

    process = start_training(
        tiny, result, "--n_epochs", "3", "--batch_size", "2", "--resume", "auto"
    )
    wait_for_rows(result / "train.log", 1, process)  # epoch 1 done and saved
    wait_for_rows(result / "train_batch.log", 8, process)  # into epoch 2
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"at epoch 1 after step {found.group(1)}" in out  # where it went on from
    assert "interrupted (SIGINT) during epoch 2" in err and "holds epoch 2 up to step" in err

    assert (
        main(train_args(tiny, result, "--n_epochs", "3", "--batch_size", "2", "--resume", "auto"))
        == 0
    )
    rows = [ln.split("\t")[:2] for ln in (result / "train_batch.log").read_text().splitlines()[1:]]
    assert len(rows) == len(set(map(tuple, rows))) == 3 * 6  # 12 videos / 2: no duplicate rows
    assert [ln.split("\t")[0] for ln in (result / "train.log").read_text().splitlines()[1:]] == [
        "1",
        "2",
        "3",
    ]


def test_a_last_batch_of_one_clip_is_left_out(tiny, tmp_path, capsys):
    # 12 training videos at batch 11: the second batch would be a single clip
    result = tmp_path / "run"
    assert main(train_args(tiny, result, "--n_epochs", "1", "--batch_size", "11")) == 0
    assert "the last clip of each epoch left out" in capsys.readouterr().out
    assert len((result / "train_batch.log").read_text().splitlines()) == 2  # header + 1 step


def test_arguments_are_checked_before_anything_is_written(tiny, tmp_path, capsys):
    for bad in (["--n_epochs", "0"], ["--batch_size", "-2"], ["--sample_size", "0"]):
        with pytest.raises(SystemExit) as stop:
            main(train_args(tiny, tmp_path / "a", *bad))
        assert stop.value.code == 2
        assert "must be at least 1" in capsys.readouterr().err
    assert main(train_args(tiny, tmp_path / "b", "--model_depth", "19")) == 2
    assert "depth" in capsys.readouterr().err
    assert main(train_args(tiny, tmp_path / "c", "--ft_begin_module", "layer9")) == 2
    assert "layer9" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()  # no stray opts.json


def test_every_option_has_help_and_shows_its_default(capsys):
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    pending = list(subparsers.items())
    while pending:
        name, sub = pending.pop()
        for action in sub._actions:
            if action.dest == "help":
                continue
            if isinstance(action, type(parser._subparsers._group_actions[0])):
                pending += [(f"{name} {k}", v) for k, v in action.choices.items()]
                continue
            assert action.help, f"cnn3d {name}: {action.option_strings or action.dest} has no help"
            if action.help == argparse.SUPPRESS or not action.option_strings or action.required:
                continue
            if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
                continue  # a flag: off unless given
            shown = HelpFormatter("cnn3d")._get_help_string(action)
            assert "default" in shown, f"cnn3d {name} {action.option_strings[0]}: no default shown"
            assert "(default: )" not in shown % {"default": action.default}
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "(default: the family's, 18 for the ResNets, or the pretrained model's" in text
        and "(default: none)" in text
    )
    assert "count and list unreadable videos instead of stopping (default: off)" in text
    assert "SUPPRESS" not in text
    for shown in ("(default: 32)", "(default: 0.1)", "(default: 200)", "(default: 0.0)"):
        assert shown in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("cnn3d 0.")


def test_train_says_what_it_does_and_stores_the_values_used(tiny, tmp_path, capsys):
    result = tmp_path / "run"
    assert main(train_args(tiny, result, "--n_epochs", "1", "--no-amp")) == 0
    out = capsys.readouterr().out
    assert "12 training and 4 validation videos" in out and "2 classes" in out
    assert "fp32" in out and "channels_last_3d" in out and str(result) in out
    opts = json.loads((result / "opts.json").read_text())["used"]
    assert opts["amp"] is False and opts["precision"] == "fp32"
    assert opts["normalization"] == "kinetics" and opts["device"] == "cpu"
    best, last = read_file(result / "best.pth"), read_file(result / "last.pth")
    assert "optimizer" in last and "optimizer" not in best  # best.pth is for inference
    assert torch.equal(best["state_dict"]["fc.weight"], last["state_dict"]["fc.weight"])


def test_small_things(tiny, tmp_path, capsys):
    from cnn3d.models import build_model, save_model

    model = build_model("resnet", 10, 2, widen_factor=0.25)
    with_spec(model, clip_length=8, sample_size=32)
    save_model(tmp_path / "m.pth", model)  # no class names stored
    videos, ann = tiny
    video = str(next(iter(sorted(videos.rglob("*.avi")))))
    assert (
        main(
            ["features", video, "--checkpoint", str(tmp_path / "m.pth"), "-o", str(tmp_path / "f")]
        )
        == 0
    )
    assert "class names" not in capsys.readouterr().err  # features need none
    assert main(["classify", video, "--checkpoint", str(tmp_path / "m.pth")]) == 0
    assert "no class names stored" in capsys.readouterr().err
    names = tmp_path / "names.txt"
    names.write_text("Grow\nMoveRight\n")
    argv = ["convert", str(tmp_path / "m.pth"), str(tmp_path / "n.safetensors")]
    assert main([*argv, "--class-names", str(names)]) == 0
    assert f"class names from {names} (Grow, MoveRight, ...)" in capsys.readouterr().out
    argv = ["test", "--checkpoint", str(tmp_path / "n.safetensors"), "--video-path", str(videos)]
    argv += ["--annotation-path", str(ann), "--result-path", str(tmp_path / "t"), "--workers", "0"]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    want = (metrics["video_top1"] + metrics["video_top5"]) / 2
    assert metrics["average_top1_top5"] == pytest.approx(want)
    assert "average" in capsys.readouterr().out


def test_a_killed_data_worker_is_an_error_message_not_a_traceback(monkeypatch, capsys, tmp_path):
    import cnn3d.training.loop

    def killed(cfg):
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")

    monkeypatch.setattr(cnn3d.training.loop, "train", killed)
    (tmp_path / "a.json").write_text("{}")  # the paths are checked before train() is called
    argv = ["train", "--video-path", str(tmp_path), "--annotation-path", str(tmp_path / "a.json")]
    assert main([*argv, "--result-path", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "pid 4242" in err and "fewer --workers" in err and "--resume auto" in err
    assert "Traceback" not in err
