"""`cnn3d classify` with the dataset machinery: resume, shards, clip times, the timeline figure and
the rendered result video."""

import json

import av
import numpy as np
import pytest

import cnn3d.inference.classify
from cnn3d.cli import main
from cnn3d.data.prepare import write_video
from cnn3d.evaluation.plots import timeline_figure
from cnn3d.models import build_model, save_model, with_spec
from helpers import frames_with_index, write_mp4


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    write_mp4(root / "in" / "a" / "v.mp4", frames_with_index(40, 48, 64, seed=1))
    write_mp4(root / "in" / "b" / "v.mp4", frames_with_index(56, 48, 64, seed=2))
    write_video(root / "in" / "c.mp4", frames_with_index(30, 64, 48, seed=3), fps=30)
    model = build_model("resnet", 10, 3, widen_factor=0.25)
    with_spec(model, class_names=["x", "y", "z"], sample_size=32)
    save_model(root / "m.safetensors", model)
    return root


def classify(job, out, *extra):
    argv = ["classify", str(job / "in"), "--checkpoint", str(job / "m.safetensors")]
    return main([*argv, "-o", str(out), "--no-amp", "--no-progress", "--batch-size", "2", *extra])


def entries(path):
    return {e["video"]: e for e in json.loads(path.read_text())}


def test_killed_classify_resumes_and_shards_give_one_runs_json(job, tmp_path, monkeypatch):
    plain = tmp_path / "plain.json"
    assert classify(job, plain) == 0
    want = entries(plain)
    assert len(want) == 3
    c = want[str(job / "in" / "c.mp4")]
    assert c["fps"] == pytest.approx(30) and c["duration_s"] == pytest.approx(1.0)
    assert [clip["time"] for clip in c["clips"]] == [[0.0, 16 / 30], [16 / 30, 1.0]]
    real = cnn3d.inference.classify.write_json
    calls = []

    def killed(path, obj):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, obj)

    monkeypatch.setattr(cnn3d.inference.classify, "write_json", killed)
    out = tmp_path / "out.json"
    assert classify(job, out) == 130 and not out.exists()
    monkeypatch.setattr(cnn3d.inference.classify, "write_json", real)
    assert classify(job, out) == 0
    for got in (entries(out), _shards(job, tmp_path)):
        assert sorted(got) == sorted(want)
        for video, entry in want.items():
            assert [t["label"] for t in got[video]["top_k"]] == [t["label"] for t in entry["top_k"]]
            assert got[video]["labels"] == ["x", "y", "z"]  # the order of every `scores`
            for a, b in zip(got[video]["clips"], entry["clips"], strict=True):
                assert a["segment"] == b["segment"] and len(a["scores"]) == 3
                assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)


def _shards(job, tmp_path):
    out = tmp_path / "sharded.json"
    for k in range(2):
        assert classify(job, out, "--shard", f"{k}/2") == 0
    merged = {}
    for k in range(2):
        merged |= entries(tmp_path / f"sharded.{k}-of-2.json")
    return merged


def test_timeline_draws_each_top_class_over_the_clip_times():
    entry = {
        "video": "long.mp4",
        "top_k": [{"label": "b", "score": 0.6}, {"label": "a", "score": 0.3}],
        "clips": [
            {"segment": [1, 16], "time": [0.0, 0.5], "scores": [0.2, 0.7, 0.1]},
            {"segment": [17, 32], "time": [0.5, 1.0], "scores": [0.4, 0.5, 0.1]},
            {"segment": [33, 48], "time": [1.0, 1.5], "scores": [0.3, 0.6, 0.1]},
        ],
    }
    fig = timeline_figure(entry, ["a", "b", "c"], k=2)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["b (0.60)", "a (0.30)"]
    assert list(lines["b (0.60)"].get_xdata()) == [0.0, 0.5, 0.5, 1.0, 1.0, 1.5]
    assert list(lines["b (0.60)"].get_ydata()) == [0.7, 0.7, 0.5, 0.5, 0.6, 0.6]
    assert list(lines["a (0.30)"].get_ydata()) == [0.2, 0.2, 0.4, 0.4, 0.3, 0.3]
    assert ax.get_xlabel() == "time (s)"


def test_timeline_and_render_files(job, tmp_path):
    timeline, render = tmp_path / "timeline", tmp_path / "render"
    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    bright = rng.integers(170, 230, (40, 48, 64, 3)).astype(np.uint8)  # the label box is dark
    write_mp4(src / "bright.mp4", bright)
    write_mp4(src / "long.mp4", frames_with_index(56, 48, 64, seed=2))
    argv = ["classify", str(src), "--checkpoint", str(job / "m.safetensors"), "--no-amp"]
    argv += ["--timeline", str(timeline), "--render", str(render), "--tail", "drop"]
    assert main([*argv, "--no-progress"]) == 0
    # 3 clips or more get a timeline: long.mp4 (56 frames) only
    assert sorted(p.name for p in timeline.rglob("*.png")) == ["long.png"]
    source, drawn = _frames(src / "bright.mp4"), _frames(render / "bright.mp4")
    assert len(drawn) == len(source) == 40 and drawn[0].shape == source[0].shape
    with av.open(str(render / "bright.mp4")) as f:
        assert float(f.streams.video[0].average_rate) == pytest.approx(25)
    # --tail drop on 40 frames: windows 1-16 and 17-32 are labelled, 33-40 are not; the label
    # sits on a dark box in the top-left corner
    corner = [float(d[:4, :8].mean()) for d in drawn]
    assert max(corner[:32]) < 100 and min(corner[32:]) > 150
    pairs = zip(drawn, source, strict=True)
    below = (slice(30, 48), slice(None))  # the rest of the picture is the video's own
    # (pixel noise survives two encodings only roughly: a few grey levels on average)
    assert max(np.abs(d[below].astype(int) - s[below]).mean() for d, s in pairs) < 12


def _frames(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_sigterm_stops_classify_cleanly_and_a_rerun_resumes(job, tmp_path, monkeypatch, capsys):
    """A cluster's SIGTERM (or SIGUSR1) during classify: the video in flight is abandoned, the
    finished ones stay recorded, the command exits 143, and the same command resumes."""
    import os
    import signal

    plain = tmp_path / "plain.json"
    assert classify(job, plain) == 0
    want = entries(plain)
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL; a pytest-xdist worker ignores it
    real = cnn3d.inference.classify.write_json
    calls = []

    def signalled(path, obj):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the second video is written
        real(path, obj)

    monkeypatch.setattr(cnn3d.inference.classify, "write_json", signalled)
    out = tmp_path / "out.json"
    capsys.readouterr()
    assert classify(job, out) == 128 + signal.SIGTERM and not out.exists()
    err = capsys.readouterr().err
    assert "interrupted (SIGTERM)" in err and "re-run the same command to resume" in err
    assert signal.getsignal(signal.SIGTERM) == before  # its usual meaning is back
    monkeypatch.setattr(cnn3d.inference.classify, "write_json", real)
    assert classify(job, out) == 0
    assert "1 done before" in capsys.readouterr().out  # the video finished before the signal
    assert sorted(entries(out)) == sorted(want)
