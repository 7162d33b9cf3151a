"""`cnn3d benchmark`: the JSON's fields and units, every stage of the loader counted, and the
verdict's logic, on numbers made up here and on a loader made slow on purpose."""

import json
import time
from pathlib import Path

import pytest

from cnn3d import benchmark as B
from cnn3d.cli import main

TINY = ["--model-depth", "10", "--batch-size", "2", "--sample-size", "16", "--clip-length", "4"]


@pytest.mark.slow  # end to end (make test runs it)
def test_model_rows_one_per_setting_with_consistent_units(tmp_path, capsys):
    out = tmp_path / "model.json"
    argv = ["benchmark", "model", *TINY, "--steps", "2", "--warmup", "0", "-o", str(out)]
    argv += ["--precision", "fp32", "bf16", "--memory-format", "channels_last", "contiguous"]
    assert main([*argv, "--compare", "r3d_18"]) == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    # 2 networks x 2 precisions x 2 layouts, ours first
    assert [(r["model"], r["precision"], r["memory_format"]) for r in rows] == [
        (m, p, f)
        for m in ("resnet-10", "r3d_18 (torchvision)")
        for p in ("fp32", "bf16")
        for f in ("channels_last_3d", "contiguous")
    ]
    for row in rows:
        assert row["timed_steps"] == [2, 2] and row["batch"] == 2
        assert row["clip_length"] == 4 and row["size"] == 16 and row["device"] == "cpu"
        # clips/s is the batch over the median step, in seconds
        assert row["train_clips_s"] == pytest.approx(2 / (row["train_step_ms"] / 1000))
        assert row["infer_clips_s"] == pytest.approx(2 / (row["infer_step_ms"] / 1000))
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"]
    best = max(r["train_clips_s"] for r in rows[:4])
    shown = f"{best:,.0f}" if best >= 10 else f"{best:.2g}"  # two digits below 10 clips/s
    assert f"{shown} training clips/s" in report["verdict"]
    printed = capsys.readouterr().out
    assert printed.count("\nmodel ") == 7 and report["verdict"] in printed


def test_model_refuses_an_unknown_family(capsys):
    assert main(["benchmark", "model", "--model", "resnot", *TINY]) == 2
    assert "resnot" in capsys.readouterr().err


def test_loader_counts_every_clip_and_stage_and_names_no_model(tiny, tmp_path):
    videos, ann = tiny
    out = tmp_path / "loader.json"
    argv = ["benchmark", "loader", "--video-path", str(videos), "--annotation-path", str(ann)]
    argv += [*TINY[2:], "--batch-size", "3", "--batches", "5", "--workers", "0", "2"]
    assert main([*argv, "-o", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["workers"] for r in rows] == [0, 2]
    for row in rows:
        assert row["kind"] == "loader" and row["source"] == "video files"
        # 12 training videos, batches of 3 after the first one: 5 timed batches go on into a
        # second epoch (the loader runs epoch after epoch), 15 clips
        assert row["videos"] == 12 and row["batches"] == 5 and row["clips"] == 15
        assert row["failed"] == 0
        for stage in ("decode_ms", "transform_ms", "collate_ms", "copy_ms"):
            assert row[stage] > 0, stage
        per_clip_s = (row["decode_ms"] + row["transform_ms"] + row["collate_ms"]) / 1000
        assert row["worker_clips_s"] == pytest.approx(1 / per_clip_s)
        # uint8 3 x 4 x 16 x 16 clips, 3 per batch; float32 would be 4 times as many bytes
        assert row["batch_mb_uint8"] == pytest.approx(3 * 3 * 4 * 16 * 16 / 1e6)
        assert row["batch_mb_float32"] == pytest.approx(4 * row["batch_mb_uint8"])


def test_loader_counts_unreadable_videos(tiny, tmp_path):
    import shutil

    videos, ann = tiny
    copy = tmp_path / "videos"
    shutil.copytree(videos, copy)
    from cnn3d.data.annotations import read_annotations
    from cnn3d.data.index import index_subset

    training, _ = index_subset(read_annotations(ann), "training", copy)
    for path in (training.path(0), training.path(5)):
        Path(path).write_bytes(b"not a video")
    setting = B.LoaderSetting(str(copy), str(ann), workers=0, batch=4, clip_length=4, size=16)
    setting = B.LoaderSetting(**{**setting.__dict__, "batches": 6})
    row = B.bench_loader(setting, B.torch.device("cpu"))
    # the first batch is not timed; each epoch of 12 videos holds the 2 broken ones once
    assert row["failed"] >= 2 and row["clips"] + row["failed"] == 6 * 4


@pytest.mark.parametrize(
    "loader, model, expect",
    [
        (850, 2100, "the loader is the limit"),
        (2100, 850, "the model is the limit"),
        (1000, 1050, "they are balanced"),
    ],
)
def test_verdict_names_the_slower_side(loader, model, expect):
    text = B.verdict(loader, model, workers=4, source="video files", cpus=16)
    assert f"the loader gives {loader:,} clips/s, the model takes {model:,}" in text.lower()
    assert expect in text
    if expect == "the loader is the limit":
        assert "--workers 8" in text and "short-GOP mp4" in text and "16 cores" in text


def test_verdict_hints_follow_what_is_already_used():
    used = B.ModelSetting(precision="bf16", channels_last=True)
    text = B.verdict(3000, 100, model=used)
    assert "bf16" not in text.split("limit")[1] and "channels_last" not in text
    assert "compile" in text
    text = B.verdict(3000, 100, model=B.ModelSetting(precision="fp32", channels_last=False))
    assert "bf16" in text and "channels_last" in text
    assert "already use all 2" in B.verdict(10, 100, workers=2, cpus=2)
    assert "HDF5 (" in B.verdict(10, 100, workers=1, source="JPEG folders", cpus=4)


@pytest.mark.slow  # end to end (make test runs it)
def test_a_slow_loader_is_found_the_limit_in_real_training_steps(tiny, monkeypatch):
    """Decoding made slow on purpose (a sleep in every read): in real steps the loop waits for
    data most of the time, and the verdict says so; a fast loader leaves the model the limit."""
    from cnn3d.data.sources.video import VideoFileSource

    videos, ann = tiny
    model = B.ModelSetting(depth=10, clip_length=4, size=16, batch=2)
    loader = B.LoaderSetting(str(videos), str(ann), workers=0, batch=2, clip_length=4, size=16)
    read = VideoFileSource.read

    def slow_read(self, positions):
        time.sleep(0.6)  # far longer than a step at these sizes, in any precision, on any load
        return read(self, positions)

    monkeypatch.setattr(VideoFileSource, "read", slow_read)
    slow = B.bench_train(model, loader, B.torch.device("cpu"), steps=4)
    assert slow["steps"] == 4 and slow["data_wait_share"] > 0.5
    text = B.verdict(None, None, data_wait_share=slow["data_wait_share"], workers=0, cpus=2)
    assert "waited for data" in text and "the loader is the limit" in text
    monkeypatch.setattr(VideoFileSource, "read", read)
    fast = B.bench_train(model, loader, B.torch.device("cpu"), steps=4)
    assert fast["data_wait_share"] < slow["data_wait_share"]
    assert "the model is the limit" in B.verdict(None, None, data_wait_share=0.05)


def test_train_command_runs_model_loader_and_both(tiny, tmp_path, capsys):
    videos, ann = tiny
    out = tmp_path / "train.json"
    argv = ["benchmark", "train", "--video-path", str(videos), "--annotation-path", str(ann)]
    argv += [*TINY, "--steps", "3", "--warmup", "0", "--workers", "0", "--batches", "2"]
    assert main([*argv, "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["kind"] for r in report["rows"]] == ["model", "loader", "train"]
    assert report["rows"][2]["steps"] == 3 and 0 <= report["rows"][2]["data_wait_share"] <= 1
    assert "waited for data" in report["verdict"]


def test_real_steps_decide_over_the_figures_measured_apart():
    text = B.verdict(300, 49, data_wait_share=0.13, workers=1, cpus=2)
    assert text.startswith("Training waited for data 13% of the time: the loader is the limit")
    assert "Measured apart, the loader gives 300 clips/s, the model takes 49" in text
    assert "share this machine's cores" in text
    agreeing = B.verdict(300, 49, data_wait_share=0.02)
    assert "the model is the limit" in agreeing and "share" not in agreeing


def test_model_rows_are_printed_as_they_are_measured(monkeypatch, capsys):
    """A long run shows each row when it is done: by the time the second setting starts, the
    first one's row is on stdout already (not all of them at the end)."""
    measure = B.bench_model
    printed_before = []

    def watched(setting, device, timing):
        printed_before.append(capsys.readouterr().out)
        return measure(setting, device, timing)

    monkeypatch.setattr(B, "bench_model", watched)
    argv = ["benchmark", "model", *TINY, "--steps", "1", "--warmup", "0"]
    assert main([*argv, "--precision", "fp32", "bf16"]) == 0
    assert len(printed_before) == 2
    assert printed_before[0] == ""
    first = printed_before[1].splitlines()
    assert len(first) == 1 and first[0].startswith("model   resnet-10") and " fp32 " in first[0]
    rest = capsys.readouterr().out
    assert rest.startswith("model   resnet-10") and " bf16 " in rest.splitlines()[0]


@pytest.mark.parametrize("native_bf16, expect", [(True, "bf16"), (False, "fp32")])
def test_train_defaults_to_the_precision_train_uses(
    tiny,
    tmp_path,
    monkeypatch,
    native_bf16,
    expect,
):
    """`cnn3d train` autocasts to bf16 on a CPU with native bf16 and stays in fp32 on one
    without (precision.py, README); `benchmark train` with no --precision measures the same."""
    from cnn3d import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    videos, ann = tiny
    out = tmp_path / "train.json"
    argv = ["benchmark", "train", "--video-path", str(videos), "--annotation-path", str(ann)]
    argv += [*TINY, "--steps", "1", "--warmup", "0", "--workers", "0", "--batches", "1"]
    assert main([*argv, "--device", "cpu", "-o", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["precision"] for r in rows if r["kind"] != "loader"] == [expect, expect]
