"""`cnn3d features` over a dataset: a killed run resumes to the result of an uninterrupted one,
shards (--shard, torchrun) split the inputs and together give one run's features, every clip
has its times, the manifest names every video once."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import cnn3d.inference.features
from cnn3d.cli import main
from cnn3d.data.network_input import normalize
from cnn3d.inference.bulk import Shard, share
from cnn3d.models import build_model, save_model, with_spec
from helpers import frames_with_index, write_jpeg_folder, write_mp4

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Videos as users have them: two folders holding the same file name, an .avi, 30 and 24
    fps, different lengths and sizes."""
    root = tmp_path_factory.mktemp("videos")
    write_mp4(root / "a" / "clip.mp4", frames_with_index(40, 48, 64, seed=1))
    write_mp4(root / "b" / "clip.mp4", frames_with_index(20, 64, 48, seed=2))
    write_mp4(root / "b" / "long.avi", frames_with_index(50, 48, 64, seed=3))
    from cnn3d.data.prepare import write_video

    write_video(root / "c" / "film.mp4", frames_with_index(36, 48, 80, seed=4), fps=24)
    model = build_model("resnet", 10, 3, widen_factor=0.25)
    with_spec(model, class_names=["x", "y", "z"], sample_size=32)
    save_model(root.parent / "m.safetensors", model)
    return root


KEYS = ["a/clip", "b/clip", "b/long", "c/film"]


def run(dataset, out, *extra):
    checkpoint = str(dataset.parent / "m.safetensors")
    argv = ["features", str(dataset), "--checkpoint", checkpoint, "-o", str(out), "--no-amp"]
    return main([*argv, "--batch-size", "3", "--no-progress", *extra])


def read_folder(out: Path) -> dict[str, np.ndarray]:
    return {k: np.load(out / f"{k}.npy") for k in KEYS if (out / f"{k}.npy").exists()}


@pytest.fixture(scope="module")
def plain(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "feats"
    assert run(dataset, out) == 0
    return read_folder(out)


def test_a_killed_run_resumes_to_an_uninterrupted_runs_result(
    dataset, plain, tmp_path, monkeypatch, capsys
):
    real = cnn3d.inference.features.write_video_features
    calls = []

    def killed_on_the_third(folder, result):
        calls.append(result.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(folder, result)

    monkeypatch.setattr(cnn3d.inference.features, "write_video_features", killed_on_the_third)
    out = tmp_path / "feats"
    assert run(dataset, out) == 130
    assert len(read_folder(out)) == 2  # the two finished before the kill are on disk
    err = capsys.readouterr().err
    assert "interrupted: 2 videos done in this run, 0 done before, 0 failed, 2 not done" in err
    assert "re-run the same command to resume" in err
    monkeypatch.setattr(cnn3d.inference.features, "write_video_features", real)
    assert run(dataset, out) == 0
    printed = capsys.readouterr().out
    assert "4 videos in this share: 2 done before, 2 to do" in printed
    assert "2 done, 2 done before, 0 failed" in printed
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        statuses = sorted(row["status"] for row in csv.DictReader(f))
    assert statuses == ["done", "done", "done-before", "done-before"]
    resumed = read_folder(out)
    assert sorted(resumed) == sorted(plain) == sorted(KEYS)
    for key in KEYS:
        np.testing.assert_allclose(resumed[key], plain[key], rtol=1e-5, atol=1e-6)
    # a changed source is done again; the others are not
    os.utime(dataset / "b" / "long.avi", ns=(1, 1))
    capsys.readouterr()
    assert run(dataset, out) == 0
    assert "3 done before, 1 to do" in capsys.readouterr().out


def test_h5_output_survives_a_kill_and_holds_every_video_with_times(
    dataset, plain, tmp_path, monkeypatch
):
    real = cnn3d.inference.features.write_video_features
    calls = []

    def killed_on_the_second(folder, result):
        calls.append(result.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(folder, result)

    monkeypatch.setattr(cnn3d.inference.features, "write_video_features", killed_on_the_second)
    out = tmp_path / "f.h5"
    assert run(dataset, out) == 130
    assert not out.exists()  # the .h5 is built once the share is done; the parts are kept
    monkeypatch.setattr(cnn3d.inference.features, "write_video_features", real)
    assert run(dataset, out) == 0
    with h5py.File(out) as f:
        assert sorted(f["a"]) == ["clip"] and sorted(f["b"]) == ["clip", "long"]
        for key in KEYS:
            np.testing.assert_allclose(f[key]["clips"][()], plain[key], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(f[key]["mean"][()], plain[key].mean(0), rtol=1e-5)
        # 36 frames at 24 fps, windows [1-16] [17-32] [33-36 looped]: frame i is shown from
        # (i - 1) / 24 to i / 24 seconds
        film = f["c/film"]
        assert film["segments"][()].tolist() == [[1, 16], [17, 32], [33, 36]]
        np.testing.assert_allclose(
            film["times"][()], [[0, 16 / 24], [16 / 24, 32 / 24], [32 / 24, 36 / 24]]
        )
        assert film.attrs["fps"] == pytest.approx(24.0)
        assert f["a/clip"].attrs["fps"] == pytest.approx(25.0)


def test_manifest_names_every_video_once_with_its_failure(dataset, tmp_path, capsys):
    src = tmp_path / "in"
    write_mp4(src / "ok.mp4", frames_with_index(30, 48, 64))
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    out = tmp_path / "feats"
    checkpoint = str(dataset.parent / "m.safetensors")
    argv = ["features", str(src), "--checkpoint", checkpoint, "-o", str(out), "--no-progress"]
    assert main(argv) == 1
    printed = capsys.readouterr()
    assert "1 done, 0 done before, 1 failed" in printed.out
    failures = [line for line in printed.err.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1 and "broken.mp4" in failures[0]  # one failure per video
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = {Path(r["input"]).name: r for r in csv.DictReader(f)}
    assert rows["ok.mp4"]["status"] == "done" and rows["ok.mp4"]["clips"] == "2"
    assert rows["ok.mp4"]["fps"] == "25" and float(rows["ok.mp4"]["duration_s"]) == 1.2
    assert rows["broken.mp4"]["status"] == "failed" and "broken.mp4" in rows["broken.mp4"]["error"]
    info = json.loads((out / "ok.segments.json").read_text())
    assert info["times"] == [[0.0, 16 / 25], [16 / 25, 30 / 25]]


def test_a_run_where_every_input_fails_writes_nothing(dataset, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_bytes(b"not a video")
    (src / "b.avi").write_bytes(b"")
    out = tmp_path / "feats"
    checkpoint = str(dataset.parent / "m.safetensors")
    assert main(["features", str(src), "--checkpoint", checkpoint, "-o", str(out)]) == 1
    assert "all 2 videos failed; nothing written" in capsys.readouterr().out
    assert not out.exists() or not any(p for p in out.rglob("*") if p.is_file())


def test_shares_are_disjoint_complete_and_balanced_by_size(tmp_path):
    sizes = [900, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"v{i}.mp4")
        paths[-1].write_bytes(bytes(size))
    shares = [share(paths, Shard(k, 2)) for k in range(2)]
    assert sorted(shares[0] + shares[1]) == list(range(10))
    # the big file alone is worth 9 small ones: 900 against 900
    assert [sum(sizes[i] for i in s) for s in shares] == [900, 900]
    assert shares[0] == [0]
    with pytest.raises(ValueError, match="K/N"):
        Shard.parse("2/2")


def test_two_shards_in_one_folder_equal_one_run(dataset, plain, tmp_path, capsys):
    out = tmp_path / "feats"
    for k in range(2):
        assert run(dataset, out, "--shard", f"{k}/2") == 0
    printed = capsys.readouterr().out
    assert "(shard 0 of 2)" in printed and "(shard 1 of 2)" in printed
    sharded = read_folder(out)
    assert sorted(sharded) == sorted(KEYS)
    for key in KEYS:
        np.testing.assert_allclose(sharded[key], plain[key], rtol=1e-5, atol=1e-6)
    inputs = []
    for k in range(2):
        with open(out / f"manifest.{k}-of-2.csv", newline="", encoding="utf-8") as f:
            inputs += [r["input"] for r in csv.DictReader(f)]
    assert len(inputs) == len(set(inputs)) == 4


@pytest.mark.slow
def test_torchrun_with_two_processes_equals_one_run(dataset, plain, tmp_path):
    out = tmp_path / "feats"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", "0", "-m", "cnn3d", "features", str(dataset),
        "--checkpoint", str(dataset.parent / "m.safetensors"), "-o", str(out),
        "--no-amp", "--batch-size", "3", "--no-progress",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "manifest.0-of-2.csv").exists() and (out / "manifest.1-of-2.csv").exists()
    sharded = read_folder(out)
    assert sorted(sharded) == sorted(KEYS)
    for key in KEYS:
        np.testing.assert_allclose(sharded[key], plain[key], rtol=1e-5, atol=1e-6)


def test_layer_and_spatial_features_are_the_stages_own_values(dataset, tmp_path, capsys):
    import torch

    from cnn3d.data.dataset import Video, VideoDataset
    from cnn3d.data.transforms import EvalTransform
    from cnn3d.models import load_model

    video = dataset / "a" / "clip.mp4"
    checkpoint = str(dataset.parent / "m.safetensors")
    model = load_model(checkpoint).double()  # unfolded, float64: the reference
    windows = VideoDataset(
        [Video("v", str(video), -1)],
        EvalTransform(32, "center"),
        "test",
        16,
    )
    clips = torch.stack([windows[i]["clip"] for i in range(len(windows))])
    clips = normalize(clips, model.spec.normalization).double()
    seen = {}
    model.layer3.register_forward_hook(lambda m, i, out: seen.update(layer3=out))
    model.avgpool.register_forward_pre_hook(lambda m, i: seen.update(last=i[0]))
    with torch.no_grad():
        pooled = model.forward_features(clips)
    argv = ["features", str(video), "--checkpoint", checkpoint, "--no-amp", "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "l3"), "--layer", "layer3"]) == 0
    got = np.load(tmp_path / "l3" / "clip.npy")
    want = seen["layer3"].mean(dim=(2, 3, 4)).numpy()
    assert got.shape == want.shape == (3, model.layer3[-1].conv2.out_channels)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert main([*argv, "-o", str(tmp_path / "sp"), "--spatial"]) == 0
    spatial = np.load(tmp_path / "sp" / "clip.npy")
    assert spatial.shape == tuple(seen["last"].shape)  # clips x C x T' x H' x W'
    np.testing.assert_allclose(spatial, seen["last"].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spatial.mean(axis=(2, 3, 4)), pooled.numpy(), rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    assert main([*argv, "-o", str(tmp_path / "x"), "--layer", "layer9"]) == 2
    err = capsys.readouterr().err
    assert "not a stage" in err and "layer1, layer2, layer3, layer4" in err


def _shown_at(t: float, fps: float, n: int) -> int:
    """The source frame on screen at time t, by search: frame k is shown from k / fps to
    (k + 1) / fps."""
    return next(k for k in range(n) if k / fps <= t + 1e-9 < (k + 1) / fps)


@pytest.mark.parametrize("source_fps,target_fps,n", [(30, 15, 40), (24, 25, 36)])
def test_fps_resamples_by_time_and_feeds_those_frames(dataset, tmp_path, source_fps, target_fps, n):
    import av
    import torch

    from cnn3d.data.prepare import write_video
    from cnn3d.data.transforms import EvalTransform
    from cnn3d.models import load_model

    video = tmp_path / "v.mp4"
    write_video(video, frames_with_index(n, 48, 64, seed=7), fps=source_fps)
    checkpoint = str(dataset.parent / "m.safetensors")
    argv = ["features", str(video), "--checkpoint", checkpoint, "--no-amp", "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "f"), "--fps", str(target_fps)]) == 0
    info = json.loads((tmp_path / "f" / "v.segments.json").read_text())
    length = -(-n * target_fps // source_fps)  # frames of the resampled stream: ceil
    stream = [_shown_at(i / target_fps, source_fps, n) for i in range(length)]
    windows = [list(range(s, min(s + 16, length))) for s in range(0, length, 16)]
    windows = [(w * 16)[:16] for w in windows]  # loop padding
    assert info["frames"] == [[stream[i] + 1 for i in w] for w in windows]
    assert info["segments"] == [[w[0] + 1, min(w[0] + 16, length)] for w in windows]
    np.testing.assert_allclose(
        info["times"], [[w[0] / target_fps, min(w[0] + 16, length) / target_fps] for w in windows]
    )
    assert info["fps"] == pytest.approx(source_fps) and info["stream_fps"] == target_fps
    assert info["duration_s"] == pytest.approx(n / source_fps)
    # the model saw those source frames: PyAV's own decode, the model in float64
    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    model = load_model(checkpoint).double()
    transform = EvalTransform(32, "center")
    clips = []
    for w in info["frames"]:
        frames = np.stack([decoded[k - 1] for k in w])
        clips.append(transform(torch.from_numpy(frames).permute(0, 3, 1, 2)))
    with torch.no_grad():
        clips = normalize(torch.stack(clips), model.spec.normalization)
        want = model.forward_features(clips.double()).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "f" / "v.npy"), want, rtol=1e-4, atol=1e-5)


def test_frame_and_flow_folders_are_videos_given_or_found_in_a_folder(dataset, tmp_path):
    """A JPEG frame folder given itself is one video named by the folder; a dataset root of
    class/video frame and flow folders (the original's jpg/ layout, TSN's flow_x_/x_) gives
    one video per folder, named class/video, beside the video files in it; the features of a
    frame folder are the network's on its frames read by hand (float64)."""
    import simplejpeg
    import torch
    from torchvision.transforms.v2.functional import resize

    from cnn3d.files import collect_inputs
    from cnn3d.models import load_model

    root = tmp_path / "jpg"
    frames = frames_with_index(20, 48, 64, seed=5)
    write_jpeg_folder(root / "run" / "v_1", frames)
    flow = root / "run" / "v_2_flow"
    flow.mkdir(parents=True)
    for i in (1, 2):
        for axis in ("x", "y"):
            (flow / f"{axis}_{i:05d}.jpg").write_bytes(
                simplejpeg.encode_jpeg(np.ascontiguousarray(frames[i, :, :, :1]), colorspace="GRAY")
            )
    write_mp4(root / "walk" / "w.mp4", frames_with_index(8, seed=6))
    found = collect_inputs([str(root)])
    assert found.names == ["run/v_1", "run/v_2_flow", "walk/w.mp4"] and not found.skipped
    alone = collect_inputs([str(root / "run" / "v_1")])
    assert alone.names == ["v_1"] and alone.paths == [root / "run" / "v_1"]
    assert collect_inputs([str(tmp_path)]).names[:2] == ["jpg/run/v_1", "jpg/run/v_2_flow"]
    (tmp_path / "none").mkdir()
    assert collect_inputs([str(tmp_path / "none")]).problems == [
        f"{tmp_path / 'none'}: no video files or frame folders in this folder"
    ]

    checkpoint = str(dataset.parent / "m.safetensors")
    out = tmp_path / "feats"
    argv = ["features", str(root / "run" / "v_1"), "--checkpoint", checkpoint, "-o", str(out)]
    assert main([*argv, "--no-amp", "--no-progress", "--workers", "0"]) == 0
    got = np.load(out / "v_1.npy")
    model = load_model(checkpoint).double()
    decoded = np.stack(
        [simplejpeg.decode_jpeg((root / "run" / "v_1" / f"image_{i:05d}.jpg").read_bytes())
         for i in range(1, 21)]
    )  # fmt: skip
    # 48 x 64 frames, short side 32: 32 x int(32 * 64 / 48) = 32 x 42 (torchvision's
    # antialiased bilinear on 8 bits), then the centre 32 x 32 (left (42 - 32) / 2 = 5)
    video = torch.from_numpy(decoded).permute(3, 0, 1, 2)  # C, T, H, W
    scaled = resize(video, [32, 42], antialias=True)
    crop = scaled[..., :, 5:37]
    # 20 frames, 16-frame windows every 16, pad tail: frames 0-15 and 16-19 looped (16-19, 16-19...)
    second = torch.cat([crop[:, 16:20]] * 4, dim=1)
    clips = torch.stack([crop[:, :16], second])  # N, C, T, H, W
    clips = normalize(clips, model.spec.normalization).double()
    with torch.no_grad():
        want = model.forward_features(clips).numpy()
    assert got.shape == want.shape == (2, model.fc.in_features)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # measured 8e-7 of 1.6
