"""Checkpoints that carry their card: training records how the run was made, `test --record`
adds the evaluation to a copy, `cnn3d info` prints it, and for the original's released files
says what was detected and what the original reports for that file."""

import numpy as np
import pytest
import torch
import torchvision

from cnn3d.cli import main
from cnn3d.models import build_model, load_model
from helpers import as_2018_file, train_args


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    result = tmp_path_factory.mktemp("card") / "run"
    assert main(train_args(tiny, result, "--n_epochs", "2", "--no-amp")) == 0
    return result


def test_training_writes_the_card_into_its_checkpoints(trained):
    for name in ("best.pth", "last.pth"):
        card = torch.load(trained / name, weights_only=True)["card"]
        assert card["dataset"] == "ann.json" and card["n_classes"] == 2
        assert (card["n_training_videos"], card["n_validation_videos"]) == (12, 4)
        assert card["epochs_planned"] == 2 and card["config"]["lr"] == 0.01
        assert card["recipe"] is None and card["cnn3d_version"]
    assert torch.load(trained / "last.pth", weights_only=True)["card"]["epochs_trained"] == 2


def test_record_puts_the_evaluation_on_a_copy_and_info_prints_it(tiny, trained, tmp_path, capsys):
    videos, ann = tiny
    recorded = tmp_path / "recorded.pth"
    argv = ["test", "--checkpoint", str(trained / "best.pth"), "--video-path", str(videos)]
    argv += ["--annotation-path", str(ann), "--result-path", str(tmp_path / "t"), "--workers", "0"]
    assert main([*argv, "--record", str(recorded)]) == 0
    capsys.readouterr()
    card = torch.load(recorded, weights_only=True)["card"]
    [evaluation] = card["evaluations"]
    scores = np.load(tmp_path / "t" / "scores.npz")  # the test's own per-video scores
    top1 = float(np.mean(scores["scores"].argmax(1) == scores["labels"]))
    assert evaluation["metrics"]["video_top1"] == pytest.approx(top1)
    assert evaluation["subset"] == "validation" and evaluation["dataset"] == "ann.json"
    assert evaluation["protocol"]["views_per_video"] == "all windows"
    assert card["n_training_videos"] == 12  # the training card kept
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():  # the copy is the same network
        torch.testing.assert_close(load_model(recorded)(x), load_model(trained / "best.pth")(x))
    again = tmp_path / "again.pth"
    assert main([*argv, "--checkpoint", str(recorded), "--record", str(again)]) == 0
    assert len(torch.load(again, weights_only=True)["card"]["evaluations"]) == 2
    capsys.readouterr()
    assert main(["info", str(recorded)]) == 0
    out = capsys.readouterr().out
    state = torch.load(recorded, weights_only=True)["state_dict"]
    n_params = sum(
        v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k
    )
    assert f"parameters: {n_params / 1e6:.2f} M" in out
    assert "resnet-10" in out and "GFLOPs per 8x32x32 clip" in out
    assert "classes: 2, names stored, from the annotation file ann.json" in out
    epochs = card["epochs_trained"]  # best.pth: the best epoch's
    assert f"trained on ann.json (12 training, 4 validation videos): {epochs} of 2 epochs" in out
    assert f"video top-1 {100 * top1:.2f}" in out and "stored as: cnn3d's format" in out


def test_record_refuses_to_overwrite_its_source_or_write_another_format(tiny, trained, capsys):
    videos, ann = tiny
    argv = ["test", "--checkpoint", str(trained / "best.pth"), "--video-path", str(videos)]
    argv += ["--annotation-path", str(ann), "--result-path", str(trained / "t")]
    assert main([*argv, "--record", str(trained / "x.safetensors")]) == 2
    assert "--record writes a .pth copy" in capsys.readouterr().err


def test_info_on_the_2018_release_says_what_was_detected_and_what_the_readme_reports(
    tmp_path, capsys
):
    path = tmp_path / "resnet-34-kinetics.pth"
    as_2018_file(build_model("resnet", 34, 400, shortcut="A").state_dict(), path, "resnet-34")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "resnet-34 (" in out and "shortcut=A" in out and "2018 release" in out and "hara2018" in out
    )
    assert "names the bundled Kinetics-400 list" in out
    assert "recipe k400-resnet-34" in out
    assert "reported: average_top1_top5 71 (verified" in out
    assert "reported: video_top1 60.1 (recalled, unverified" in out


def test_info_on_the_2020_release_and_on_torchvision(tmp_path, capsys):
    path = tmp_path / "r3d18_K_200ep.pth"
    state = {f"module.{k}": v for k, v in build_model("resnet", 18, 700).state_dict().items()}
    torch.save({"epoch": 200, "arch": "resnet-18", "state_dict": state, "optimizer": {},
                "scheduler": {}}, path)  # fmt: skip
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "resnet-18" in out and "2020 release" in out and "normalisation kinetics" in out
    assert "classes: 700, names not stored" in out and "recipe k700-r3d-18" in out
    assert "reported: none (the 2020 paper's per-model accuracy tables were not retrieved" in out
    path = tmp_path / "r3d_18.pth"
    torch.save(torchvision.models.video.r3d_18().state_dict(), path)  # random weights
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "torchvision's video model keys" in out and "normalisation torchvision" in out
    assert "classes: 400, names the bundled Kinetics-400 list" in out
