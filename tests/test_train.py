import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnn3d.cli import build_parser, main
from cnn3d.evaluation.metrics import Accumulator, compute_metrics
from cnn3d.models import build_model, save_model, with_spec
from cnn3d.models.checkpoint import read_file
from helpers import frames_with_index, free_port, train_args, update_drift, weights, write_mp4

pytestmark = pytest.mark.slow


def test_training_lowers_loss_and_beats_chance(tiny, tmp_path):
    assert main(train_args(tiny, tmp_path / "run", "--n_epochs", "8")) == 0
    rows = [r.split("\t") for r in (tmp_path / "run" / "train.log").read_text().splitlines()]
    assert rows[0] == ["epoch", "loss", "acc", "lr"]
    losses = [float(r[1]) for r in rows[1:]]
    assert min(losses[-3:]) < losses[0]
    assert max(float(r[2]) for r in rows[-3:]) > 0.5  # 2 classes: chance is 0.5
    for name in (
        "val.log",
        "train_batch.log",
        "opts.json",
        "curves.png",
        "last.pth",
        "best.pth",
        "save_2.pth",
        "save_8.pth",
    ):
        assert (tmp_path / "run" / name).exists(), name
    assert (tmp_path / "run" / "val.log").read_text().startswith("epoch\tloss\tacc\tvideo_acc")


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    model = build_model("resnet", 10, 3, widen_factor=0.25)
    save_model(tmp_path / "last.pth", model, extra={"epoch": 1})
    before = (tmp_path / "last.pth").read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(tmp_path / "last.pth", model, extra={"epoch": 2})
    assert (tmp_path / "last.pth").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_fine_tuning_swaps_head_and_freezes(tiny, tmp_path):
    pretrained = build_model("resnet", 10, 400, widen_factor=0.25)
    torch.save(
        {"epoch": 200, "arch": "resnet-10", "state_dict": pretrained.state_dict(), "scheduler": {}},
        tmp_path / "r3d10_K_200ep.pth",
    )
    args = train_args(
        tiny,
        tmp_path / "ft",
        "--n_epochs",
        "1",
        "--pretrain_path",
        str(tmp_path / "r3d10_K_200ep.pth"),
        "--ft_begin_module",
        "layer4",
    )
    assert main(args) == 0
    tuned = weights(tmp_path / "ft" / "last.pth")
    original = pretrained.state_dict()
    assert tuned["fc.weight"].shape == (2, 128)
    assert torch.equal(tuned["layer1.0.conv1.weight"], original["layer1.0.conv1.weight"])
    assert torch.equal(tuned["conv1.weight"], original["conv1.weight"])
    assert not torch.equal(tuned["layer4.0.conv1.weight"], original["layer4.0.conv1.weight"])
    spec = read_file(tmp_path / "ft" / "last.pth")["spec"]
    assert spec["normalization"]["name"] == "kinetics" and spec["n_classes"] == 2


def test_non_finite_loss_stops_with_epoch_and_batch(tiny, tmp_path, capsys):
    rc = main(train_args(tiny, tmp_path / "nan", "--n_epochs", "3", "--lr", "1e12", "--no-amp"))
    assert rc == 2
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "epoch" in err and "batch" in err


# 2 ranks x batch 2 against 1 process x batch 4, fp32. BatchNorm is the one part that differs
# by design (per-rank statistics; SyncBatchNorm needs a GPU), so it is frozen here: with
# --freeze-bn (or SyncBatchNorm on GPUs) DDP training is the single-process training.
DDP_COMMON = ("--n_epochs", "2", "--no-amp", "--freeze-bn", "--lr", "0.05")


@pytest.fixture(scope="module")
def ddp_run(tiny, tmp_path_factory):
    """One torchrun job of 2 ranks (batches of 2 each, validated every epoch), which the DDP
    tests share."""
    ddp = tmp_path_factory.mktemp("ddp") / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(free_port()), "-m", "cnn3d"]
    ddp_args = train_args(tiny, ddp, *DDP_COMMON)
    ddp_args[ddp_args.index("--batch_size") + 1] = "2"  # per rank
    done = subprocess.run([*cmd, *ddp_args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return ddp


def test_ddp_training_equals_one_process_with_the_whole_batch(tiny, tmp_path, ddp_run):
    single = tmp_path / "single"
    args = train_args(tiny, single, *DDP_COMMON)
    args[args.index("--batch_size") + 1] = "4"
    assert main(args) == 0
    a, b = weights(single / "last.pth"), weights(ddp_run / "last.pth")
    torch.manual_seed(1)  # train's --manual_seed: the weights both started from
    initial = build_model("resnet", 10, 2, widen_factor=0.25).state_dict()
    changed = max((a[k].float() - initial[k].float()).abs().max().item() for k in a)
    assert changed > 1e-3  # training moved the weights
    # rounding moves the DDP weights by 0.2% of the update on a Zen 4, 1e-5 on a Xeon; an
    # unaveraged gradient or another split of the batch moves them by a share near 1
    worst, name = update_drift(a, b, initial)
    assert worst < 1e-2, (name, worst)


def test_ddp_two_processes_validate_as_one(tiny, tmp_path, ddp_run):
    """The 2-rank validation (summed over ranks) of the last epoch equals `cnn3d test` of its
    last.pth in one process."""
    val = (ddp_run / "val.log").read_text().splitlines()[-1].split("\t")
    videos, ann = tiny
    argv = ["test", "--checkpoint", str(ddp_run / "last.pth"), "--video_path", str(videos),
            "--annotation_path", str(ann), "--result_path", str(tmp_path / "t"), "--n-clips",
            "2", "--no-amp", "--workers", "0"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert abs(float(val[1]) - metrics["loss"]) < 0.05
    assert abs(float(val[3]) - metrics["video_top1"]) < 1e-6


def test_metrics_by_hand():
    acc = Accumulator(n_videos=3, n_classes=3)
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 4.0, 0], [0, 0, 1.0], [0, 0, 9.0]])
    # video 0: clips say class 0 and class 1 (weaker) -> video says 0 (label 0): right
    # video 1: one clip says 1 (label 2): wrong; video 2: two clips say 2 (label 2): right
    acc.add(logits, torch.tensor([0, 0, 2, 2, 2]), torch.tensor([0, 0, 1, 2, 2]))
    acc.add(torch.tensor([[0.0, 0.0, 3.0]]), torch.tensor([0]), torch.tensor([0]))
    m = compute_metrics(acc, torch.tensor([0, 2, 2]), ["a", "b", "c"])
    assert m.n_videos == 3 and m.n_clips == 6
    assert m.clip_top1 == pytest.approx(3 / 6)
    assert m.video_top1 == pytest.approx(2 / 3)
    assert m.mean_class_accuracy == pytest.approx((1 + 0.5) / 2)
    assert m.confusion[2] == [0, 1, 1]


def test_test_command_writes_original_result_json(tiny, tmp_path):
    model = build_model("resnet", 10, 2, widen_factor=0.25)
    with_spec(model, clip_length=8, sample_size=32)
    save_model(tmp_path / "m.pth", model)
    videos, ann = tiny
    rc = main(
        [
            "test",
            "--checkpoint",
            str(tmp_path / "m.pth"),
            "--video-path",
            str(videos),
            "--annotation-path",
            str(ann),
            "--result-path",
            str(tmp_path / "out"),
            "--topk",
            "2",
            "--workers",
            "0",
        ]
    )
    assert rc == 0
    results = json.loads((tmp_path / "out" / "validation.json").read_text())["results"]
    assert len(results) == 4
    entry = next(iter(results.values()))
    assert [set(e) for e in entry] == [{"label", "score"}] * 2
    assert entry[0]["score"] >= entry[1]["score"]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_videos"] == 4 and metrics["n_clips"] == 8  # 16 frames = 2 windows of 8
    assert (tmp_path / "out" / "per_class.csv").read_text().startswith("class,videos,correct")
    assert (tmp_path / "out" / "confusion.png").exists()


def test_classify_and_features_on_a_messy_folder(tmp_path, capsys, tiny_checkpoint):
    folder = tmp_path / "in"
    write_mp4(folder / "good1.mp4", frames_with_index(40, 48, 64))
    write_mp4(folder / "good2.mp4", frames_with_index(20, 48, 64, seed=3))
    write_mp4(folder / "short.mp4", frames_with_index(5, 48, 64))
    (folder / "notes.mp4").write_text("not a video")
    data = (folder / "good1.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    rc = main(
        [
            "classify",
            str(folder),
            "--checkpoint",
            str(tiny_checkpoint),
            "--output",
            str(tmp_path / "out.json"),
            "--topk",
            "2",
        ]
    )
    assert rc == 1  # something failed: said in the exit code
    captured = capsys.readouterr()
    assert "notes.mp4" in captured.err and "truncated.mp4" in captured.err
    entries = {Path(e["video"]).name: e for e in json.loads((tmp_path / "out.json").read_text())}
    assert set(entries) == {"good1.mp4", "good2.mp4", "short.mp4"}
    assert [c["segment"] for c in entries["good1.mp4"]["clips"]] == [[1, 16], [17, 32], [33, 40]]
    assert [c["segment"] for c in entries["short.mp4"]["clips"]] == [[1, 5]]  # loop-padded
    clip = entries["good2.mp4"]["clips"][0]
    assert set(clip) == {"segment", "time", "label", "scores"} and len(clip["scores"]) == 3
    assert clip["time"] == [0.0, pytest.approx(16 / 25)]  # frames 1-16 at 25 fps
    assert "good1.mp4" in captured.out
    rc = main(
        [
            "features",
            str(folder),
            "--checkpoint",
            str(tiny_checkpoint),
            "--output",
            str(tmp_path / "feats"),
        ]
    )
    assert rc == 1
    import numpy as np

    clips = np.load(tmp_path / "feats" / "good1.npy")
    assert clips.shape == (3, 128)
    np.testing.assert_allclose(
        np.load(tmp_path / "feats" / "good1.mean.npy"), clips.mean(0), rtol=1e-5
    )
    assert (
        main(
            [
                "features",
                str(folder / "short.mp4"),
                "--checkpoint",
                str(tiny_checkpoint),
                "--output",
                str(tmp_path / "f.h5"),
            ]
        )
        == 0
    )
    import h5py

    with h5py.File(tmp_path / "f.h5") as f:
        assert f["short"]["clips"].shape == (1, 128)


def test_original_underscore_spellings_parse():
    args = build_parser().parse_args(
        [
            "train",
            "--video_path",
            "v",
            "--annotation_path",
            "a",
            "--result_path",
            "r",
            "--n_classes",
            "101",
            "--model_depth",
            "34",
            "--sample_duration",
            "16",
            "--resnet_shortcut",
            "A",
            "--learning_rate",
            "0.001",
            "--weight_decay",
            "1e-5",
            "--n_epochs",
            "300",
            "--ft_begin_module",
            "layer4",
            "--pretrain_path",
            "p.pth",
            "--n_val_samples",
            "3",
            "--multistep_milestones",
            "10",
            "20",
            "--n_threads",
            "4",
            "--manual_seed",
            "2",
            "--lr_scheduler",
            "plateau",
            "--resume_path",
            "x.pth",
        ]
    )
    assert args.model_depth == 34 and args.shortcut == "A" and args.lr == 0.001
    assert args.milestones == [10, 20] and args.resume == "x.pth" and args.seed == 2


def test_train_crop_options_reach_the_transform():
    from cnn3d.cli.train import train_config_from_args

    args = build_parser().parse_args(
        ["train", "--video-path", "v", "--annotation-path", "a", "--result-path", "r"]
        + ["--train-crop", "random", "--crop-scale", "0.5", "1", "--no-flip"]
    )
    cfg = train_config_from_args(args)
    assert cfg.train_crop == "random" and cfg.crop_scale == (0.5, 1.0) and not cfg.flip


@pytest.mark.parametrize(
    "options,t_stride,clips_per_video",
    [
        ([], 1, 2),  # 16 frames, 8-frame windows: [0-7], [8-15]
        (["--window-stride", "4"], 1, 3),  # [0-7], [4-11], [8-15]: the last one ends the list
        (["--n-clips", "3"], 1, 3),  # starts 0, 4, 8
        (["--three-crop"], 1, 6),  # 2 windows x 3 crops
        (["--n-clips", "2", "--three-crop"], 1, 6),
        (["--window-stride", "4"], 2, 2),  # a 15-frame span: [0, 2, .., 14], [4, .., 18->looped]
    ],
)
def test_test_protocols_count_their_clips(tiny, tmp_path, options, t_stride, clips_per_video):
    model = build_model("resnet", 10, 2, widen_factor=0.25)
    with_spec(model, clip_length=8, sample_size=32, t_stride=t_stride)
    save_model(tmp_path / "m.pth", model)
    videos, ann = tiny
    argv = ["test", "--checkpoint", str(tmp_path / "m.pth"), "--video-path", str(videos)]
    argv += ["--annotation-path", str(ann), "--result-path", str(tmp_path / "out")]
    assert main([*argv, "--workers", "0", "--no-amp", *options]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_videos"] == 4 and metrics["n_clips"] == 4 * clips_per_video
