"""Optical-flow input: both storage layouts read frame-exactly as two-channel clips, a flip negates
the x displacement, normalisation takes the preset's first two values, and a two-channel model
trains and tests on flow."""

import json

import h5py
import numpy as np
import pytest
import simplejpeg
import torch

from cnn3d.cli import main
from cnn3d.data.annotations import Annotations, Entry, write_annotations
from cnn3d.data.network_input import normalize
from cnn3d.data.sources import FlowFolderSource, FlowHDF5Source, VideoReadError, open_source
from cnn3d.data.transforms import TrainTransform
from cnn3d.normalization import PRESETS


def flow_frames(n, h=24, w=32, seed=0):
    """x and y images whose level names their frame: x = 20 + 9 i, y = 230 - 7 i, with a
    left-to-right ramp on x so a mirror image shows."""
    ramp = np.linspace(0, 12, w).astype(np.int16)[None, :]
    xs = [np.clip(20 + 9 * i + ramp + np.zeros((h, 1), np.int16), 0, 255) for i in range(n)]
    ys = [np.full((h, w), 230 - 7 * i, dtype=np.int16) for i in range(n)]
    return [x.astype(np.uint8) for x in xs], [y.astype(np.uint8) for y in ys]


def jpeg(gray):
    return simplejpeg.encode_jpeg(gray[..., None], quality=98, colorspace="GRAY")


def write_flow_hdf5(path, n, **kw):
    xs, ys = flow_frames(n, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, images in (("video_u", xs), ("video_v", ys)):
            d = f.create_dataset(name, (n,), dtype=h5py.vlen_dtype(np.uint8))
            for i, image in enumerate(images):
                d[i] = np.frombuffer(jpeg(image), dtype=np.uint8)


def write_flow_folder(folder, n, prefixes=("flow_x_", "flow_y_"), **kw):
    xs, ys = flow_frames(n, **kw)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(zip(xs, ys, strict=True), start=1):
        (folder / f"{prefixes[0]}{i:05d}.jpg").write_bytes(jpeg(x))
        (folder / f"{prefixes[1]}{i:05d}.jpg").write_bytes(jpeg(y))


def frame_of(clip_frame) -> int:
    """The frame index a [2, H, W] flow frame carries (its y level: 230 - 7 i)."""
    return round((230 - float(clip_frame[1].float().mean())) / 7)


@pytest.mark.parametrize("layout", ["hdf5", "flow_x_", "x_"])
def test_both_layouts_read_frame_exactly(tmp_path, layout):
    if layout == "hdf5":
        path = tmp_path / "v.hdf5"
        write_flow_hdf5(path, 12)
    else:
        path = tmp_path / "v"
        write_flow_folder(path, 12, (layout, layout.replace("x", "y")))
    source = open_source(path)
    assert isinstance(source, FlowHDF5Source if layout == "hdf5" else FlowFolderSource)
    assert source.n_frames == 12
    clip = source.read([7, 0, 11, 7, 3])
    assert clip.shape == (5, 2, 24, 32) and clip.dtype == torch.uint8
    assert [frame_of(f) for f in clip] == [7, 0, 11, 7, 3]
    assert abs(float(clip[2, 0, :, 0].float().mean()) - (20 + 9 * 11)) <= 2  # x of frame 11
    with pytest.raises(VideoReadError, match="frame position 12 asked for, but it has 12"):
        source.read([12])


def test_broken_flow_is_named(tmp_path):
    write_flow_folder(tmp_path / "v", 4)
    (tmp_path / "v" / "flow_y_00004.jpg").unlink()
    with pytest.raises(VideoReadError, match="flow_x_\\* goes to 4 but flow_y_\\* to 3"):
        open_source(tmp_path / "v").read([0])
    path = tmp_path / "u_only.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("video_u", (1,), dtype=h5py.vlen_dtype(np.uint8))
    with pytest.raises(VideoReadError, match="u_only.hdf5: has no dataset 'video_v'"):
        FlowHDF5Source(path).read([0])


def test_flip_negates_x_and_normalisation_takes_two_values(tmp_path):
    write_flow_hdf5(tmp_path / "v.hdf5", 4)
    clip = open_source(tmp_path / "v.hdf5").read([0, 1, 2, 3])
    identity = PRESETS["0.5"]
    transform = TrainTransform(size=24, crop="center", flip=True)
    outs = [normalize(transform(clip, np.random.default_rng(seed)), identity) for seed in range(12)]
    plain = normalize(clip[..., 4:28].permute(1, 0, 2, 3), identity)  # the centre 24 x 24
    flipped = [o for o in outs if not torch.equal(o, plain)]
    assert flipped and len(flipped) < 12
    x, y = clip[..., 4:28].permute(1, 0, 2, 3).float()
    for o in flipped:  # values on [0, 1] minus 0.5, over 0.5: v = 2 * (p / 255) - 1
        torch.testing.assert_close(o[0], 2 * ((255 - x.flip(-1)) / 255) - 1)  # x negated
        torch.testing.assert_close(o[1], 2 * (y.flip(-1) / 255) - 1)  # y only mirrored
    kinetics = normalize(clip.permute(1, 0, 2, 3), PRESETS["kinetics"])
    mean, std = (0.4345, 0.4051), (0.2768, 0.2713)  # the preset's first two values
    for c in range(2):
        want = (clip[:, c].float() / 255 - mean[c]) / std[c]
        torch.testing.assert_close(kinetics[c], want)


@pytest.mark.slow
def test_flow_pipeline_from_videos_to_a_trained_flow_model(tmp_path, capsys):
    """The README's flow pipeline on synthetic moving shapes: prepare flow, train a two-channel
    model (the loss falls), test it, and refuse RGB input for it by name."""
    from cnn3d.data.prepare import write_video
    from cnn3d.data.synthetic import synthesize_video

    videos, flow = tmp_path / "videos", tmp_path / "flow"
    entries = []
    for label in ("MoveLeft", "MoveRight"):
        for k in range(6):
            frames = synthesize_video(label, np.random.default_rng(k), 20, 40, 48)
            write_video(videos / label / f"{label}{k}.mp4", frames, fps=25)
            entries.append(Entry(f"{label}{k}", "training" if k < 5 else "validation", label))
    prepare = ["prepare", "flow", str(videos), str(flow), "--format", "hdf5", "--short-side", "0"]
    assert main(prepare) == 0
    write_annotations(flow / "ann.json", Annotations(["MoveLeft", "MoveRight"], entries))
    result = tmp_path / "run"
    argv = ["train", "--video-path", str(flow), "--annotation-path", str(flow / "ann.json")]
    argv += ["--result-path", str(result), "--model-depth", "10", "--widen-factor", "0.25"]
    argv += ["--input_type", "flow", "--sample-size", "32", "--clip-length", "8"]
    argv += ["--batch-size", "5", "--n-epochs", "4", "--lr", "0.02", "--workers", "0"]
    # no flip: a mirrored left-moving clip moves right, and the labels are the directions
    argv += ["--no-tensorboard", "--no-progress", "--lr-scheduler", "cosine", "--no-flip"]
    assert main(argv) == 0
    log = (result / "train.log").read_text().splitlines()[1:]
    losses = [float(line.split("\t")[1]) for line in log]
    assert losses[-1] < losses[0]
    test_argv = ["test", "--checkpoint", str(result / "last.pth"), "--video-path", str(flow)]
    test_argv += ["--annotation-path", str(flow / "ann.json"), "--result-path", str(tmp_path / "t")]
    assert main([*test_argv, "--workers", "0"]) == 0
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["n_videos"] == 2 and (tmp_path / "t" / "scores.npz").exists()
    # RGB frames into the flow model, and flow into an RGB model: named errors
    capsys.readouterr()
    rgb = str(videos / "MoveLeft" / "MoveLeft0.mp4")
    assert main(["classify", rgb, "--checkpoint", str(result / "last.pth")]) == 2
    err = capsys.readouterr().err
    assert "MoveLeft0.mp4: RGB input, but the model takes flow (x, y) (2 channels)" in err
    argv[argv.index("flow")] = "rgb"
    argv[argv.index(str(result))] = str(tmp_path / "rgb")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "flow (x, y) input, but the model takes RGB (3 channels)" in err and ".hdf5" in err


def _panning(n, shift, h=48, w=64, seed=0):
    """A smooth texture moving `shift` pixels right per frame."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (h // 4, (w + shift * n) // 4 + 1, 3), dtype=np.uint8)
    wide = np.asarray(Image.fromarray(coarse).resize((coarse.shape[1] * 4, h), Image.BICUBIC))
    start = shift * n
    return np.stack([wide[:, start - shift * i : start - shift * i + w] for i in range(n)])


@pytest.mark.parametrize("fmt,source", [("hdf5", "mp4"), ("jpg", "mp4"), ("hdf5", "frames")])
def test_prepare_flow_measures_the_motion_and_reads_back(tmp_path, fmt, source, capsys):
    from helpers import write_jpeg_folder, write_mp4

    if source == "mp4":
        write_mp4(tmp_path / "in" / "pan" / "right.mp4", _panning(10, 2))
    else:  # an RGB frame folder in the original's layout
        write_jpeg_folder(tmp_path / "in" / "pan" / "right", _panning(10, 2))
    argv = ["prepare", "flow", str(tmp_path / "in"), str(tmp_path / "out"), "--format", fmt]
    assert main([*argv, "--short-side", "0"]) == 0
    path = tmp_path / "out" / "pan" / ("right.hdf5" if fmt == "hdf5" else "right")
    source = open_source(path)
    assert source.n_frames == 9  # between consecutive frames
    clip = source.read(list(range(9))).float()
    inner = clip[:, :, 8:-8, 8:-8]  # away from the borders
    # 2 px to the right: x = (2 + 20) / 40 * 255 = 140.25; no vertical motion: y = 127.5
    assert abs(float(inner[:, 0].median()) - 140.25) < 4
    assert abs(float(inner[:, 1].median()) - 127.5) < 4
    capsys.readouterr()
    assert main([*argv, "--short-side", "0"]) == 0  # resumable: nothing to redo
    assert "0 videos converted, 1 already done" in capsys.readouterr().out


def test_fuse_averages_the_streams_scores(tmp_path):
    from cnn3d.evaluation.evaluate import write_scores

    names = ["a", "b", "c"]
    # video 0 (a): RGB wrong (b), flow right by more; video 1 (b): both lean b; video 2 (c):
    # RGB right, flow wrong by less; video 3 only in RGB (left out)
    rgb = torch.tensor([[0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [1.0, 0.0, 0.0]])
    flow = torch.tensor([[0.9, 0.05, 0.05], [0.3, 0.4, 0.3], [0.2, 0.45, 0.35]])
    write_scores(
        tmp_path / "rgb" / "scores.npz", ["v0", "v1", "v2", "v3"], rgb, [0, 1, 2, 0], names
    )
    write_scores(
        tmp_path / "flow" / "scores.npz", ["v2", "v0", "v1"], flow[[2, 0, 1]], [2, 0, 1], names
    )
    argv = ["fuse", str(tmp_path / "rgb"), str(tmp_path / "flow"), "-o", str(tmp_path / "f")]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    # means: v0 (0.6, 0.325, 0.075) -> a right; v1 (0.25, 0.55, 0.2) -> b right;
    # v2 (0.15, 0.375, 0.475) -> c right: 3 of 3, where RGB alone had 2 and flow alone 2
    assert metrics["n_videos"] == 3 and metrics["video_top1"] == 1.0
    assert metrics["videos_left_out"] == 1
    fused = json.loads((tmp_path / "f" / "fused.json").read_text())["results"]
    assert fused["v0"][0] == {"label": "a", "score": pytest.approx(0.6)}
    # flow weighted 4 to 1 turns v2 to b: (0.3 + 4 * 0.45) / 5 = 0.42 > (0.6 + 4 * 0.35) / 5 = 0.40
    weighted = ["fuse", str(tmp_path / "rgb"), str(tmp_path / "flow"), "-o", str(tmp_path / "g")]
    assert main([*weighted, "--weights", "1", "4"]) == 0
    results = json.loads((tmp_path / "g" / "fused.json").read_text())["results"]
    assert results["v2"][0] == {"label": "b", "score": pytest.approx(0.42)}
