"""Feature presets: `--list-presets`, a preset's settings reaching the run, overrides recorded,
the checkpoint checked against the release the preset expects, and the I3D RGB preset against
video_features' own extractor (tests/data/goldens/presets_video_features-i3d-rgb, MAKE.md)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.cli import build_parser, main
from cnn3d.cli.common import crop_settings, inference_config
from cnn3d.errors import UsageError
from cnn3d.inference import presets
from seeded import seeded_state

GOLDENS = Path(__file__).parent / "data" / "goldens"
VF_I3D = GOLDENS / "presets_video_features-i3d-rgb"


def parsed(*argv):
    return build_parser().parse_args(
        ["features", "v.mp4", "--checkpoint", "m.pt", "-o", "o"] + list(argv)
    )


def config_of(args):
    preset, overrides = presets.apply(args)
    config = inference_config(
        args, fps=args.fps, layer=args.layer, spatial=args.spatial, **crop_settings(args)
    )
    return preset, overrides, config


def test_list_presets_names_each_with_backbone_file_release_shape_and_status(capsys):
    assert main(["features", "--list-presets"]) == 0
    out = capsys.readouterr().out
    names = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert len(names) >= 5
    for name in ("video_features-i3d-rgb", "video_features-r21d", "rtfm-i3d-10crop"):
        assert name in names
    for field in ("backbone:", "reproduces:", "output:", "status:"):
        assert out.count(f"  {field}") == len(names)
    assert "expects i3d_rgb.pt" in out and "T x 10 x 2048" in out
    assert "unverified: video_features computes the flow with RAFT" in out
    assert "hara2018-resnet" in out and "status: unverified: from a video file the tool" in out


def test_a_presets_settings_reach_the_inference_config_and_model_options():
    preset, overrides, config = config_of(parsed("--preset", "rtfm-i3d-10crop"))
    assert preset.family == "i3d_nl" and overrides == {}
    # hand-checked against RTFM's description: 16-frame clips, no overlap, 256 then TenCrop 224
    assert (config.window_stride, config.tail, config.fps, config.layer) == (16, "pad", None, None)
    assert (config.resize, config.crops, config.crop_order) == (256, 10, "torchvision")
    assert config.runtime.amp is False  # fp32
    args = parsed("--preset", "video_features-s3d")
    _, _, config = config_of(args)
    assert (args.clip_length, args.sample_size) == (64, 224)  # what load_model gets
    assert (config.window_stride, config.fps, config.resize, config.crops) == (64, 25.0, 224, 1)
    _, _, config = config_of(parsed("--preset", "sultani-c3d-fc6"))
    assert (config.layer, config.resize, config.window_stride) == ("fc6", 128, 16)


def test_flags_override_a_preset_and_are_recorded():
    args = parsed("--preset", "rtfm-i3d-10crop", "--crops", "5", "--tail", "pad", "--amp")
    preset, overrides, config = config_of(args)
    assert (config.crops, config.tail, config.runtime.amp) == (5, "pad", True)
    assert config.resize == 256  # not overridden: the preset's
    assert overrides == {"crops": 5, "tail": "pad", "amp": True}
    record = presets.record(preset, overrides, None)
    assert record["overrides"]["crops"] == {"preset": 10, "used": 5}
    assert record["overrides"]["tail"] == {"preset": "pad", "used": "pad"}
    _, _, plain = config_of(parsed())  # no preset: the command's own defaults
    assert (plain.tail, plain.window_stride, plain.resize, plain.crops) == ("pad", None, None, 1)


def test_sultani_segments_follow_save_c3dfeatures_32segments_by_hand():
    clips = np.arange(1, 41, dtype=np.float32)[:, None] * np.array([[1.0, 0.0]]) + [[0.0, 1.0]]
    seg = presets.sultani_segments(clips, 32)  # 40 clips: bounds round(1 + i * 39 / 32)
    assert seg.shape == (32, 2)
    unit = lambda v: np.asarray(v) / np.linalg.norm(v)  # noqa: E731
    np.testing.assert_allclose(seg[0], unit([1, 1]), rtol=1e-6)  # bounds 1, 2: clip 1
    np.testing.assert_allclose(seg[2], unit([3.5, 1]), rtol=1e-6)  # bounds 3, 5: clips 3-4
    np.testing.assert_allclose(seg[31], unit([39, 1]), rtol=1e-6)  # 39, 40: clip 40 unused
    few = presets.sultani_segments(clips[:5], 32)  # fewer clips than segments: repeats
    np.testing.assert_allclose(few[[0, 4, 31]], [unit([1, 1]), unit([2, 1]), unit([5, 1])])


def test_the_sultani_preset_writes_32_segments_beside_each_videos_clips(tmp_path):
    clips = np.random.default_rng(0).random((40, 8)).astype(np.float32)
    (tmp_path / "cam").mkdir()
    np.save(tmp_path / "cam" / "v1.npy", clips)
    args = parsed("-o", str(tmp_path))
    args.output = str(tmp_path)
    presets.write_segments(presets.get("sultani-c3d-fc6"), args, ["cam/v1.mp4", "gone.mp4"])
    seg = np.load(tmp_path / "cam" / "v1.32segments.npy")
    assert seg.shape == (32, 8) and seg.dtype == np.float32
    mean = clips[2:4].mean(0)  # bounds 3, 5: clips 3-4
    np.testing.assert_allclose(seg[2], mean / np.linalg.norm(mean), rtol=1e-6)
    assert not (tmp_path / "gone.32segments.npy").exists()


def test_an_unknown_preset_is_named(capsys):
    assert main(["features", "v.mp4", "--checkpoint", "m.pt", "-o", "o", "--preset", "i3d"]) == 2
    err = capsys.readouterr().err
    assert "--preset i3d: no such preset" in err and "video_features-i3d-rgb" in err


@pytest.fixture(scope="module")
def vf_i3d_rgb(tmp_path_factory):
    """The seeded weights of the goldens in video_features' file layout (`i3d_rgb.pt`)."""
    shapes = json.loads((GOLDENS / "i3d_hassony2" / "shapes.json").read_text())
    seed = int(np.load(GOLDENS / "i3d_hassony2" / "golden.npz")["weight_seed"])
    path = tmp_path_factory.mktemp("vf") / "i3d_rgb.pt"
    torch.save(seeded_state(shapes, seed), path)
    return path


def test_a_checkpoint_not_the_presets_release_is_refused_in_one_line(
    tiny_checkpoint, tmp_path, capsys
):
    argv = ["features", str(VF_I3D / "b.mp4"), "--checkpoint", str(tiny_checkpoint)]
    argv += ["--preset", "video_features-i3d-rgb", "-o", str(tmp_path / "x"), "--workers", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "the preset video_features-i3d-rgb expects i3d i3d_rgb.pt" in err[0]
    assert "but the file is resnet (no release recognised)" in err[0]
    assert not (tmp_path / "x" / "b.npy").exists()
    assert main(argv + ["--any-checkpoint", "--sample-size", "32", "--no-progress"]) == 0
    record = json.loads((tmp_path / "x" / "preset.json").read_text())
    assert "expects i3d" in record["checkpoint_mismatch"]
    assert record["overrides"]["sample_size"] == {"preset": 224, "used": 32}
    assert np.load(tmp_path / "x" / "b.npy").shape[0] == 1  # 67 frames: one 64-frame window
    with pytest.raises(UsageError, match="expects c3d.*hassony2"):
        spec = type("Spec", (), {"family": "i3d", "release": "hassony2/kinetics_i3d_pytorch"})
        presets.check_checkpoint(presets.get("sultani-c3d-fc6"), spec, "m", False)


@pytest.mark.slow  # end to end (make test runs it)
def test_video_features_i3d_rgb_preset_matches_its_extractor(vf_i3d_rgb, tmp_path, capsys):
    """video_features' ExtractI3D (OpenCV decode, PIL resize) against `--preset` (PyAV, cnn3d's
    resize) on the same two videos and weights: measured 3.6e-6 and 2.1e-6 relative."""
    out = tmp_path / "feats"
    argv = ["features", str(VF_I3D), "--preset", "video_features-i3d-rgb", "-o", str(out)]
    assert main(argv + ["--checkpoint", str(vf_i3d_rgb), "--no-progress", "--workers", "0"]) == 0
    want = np.load(VF_I3D / "golden.npz")
    for name in ("a", "b"):
        got, ref = np.load(out / f"{name}.npy"), want[f"{name}.mp4"]
        assert got.shape == ref.shape == (1, 1024)
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        assert rel < 1e-4, f"{name}: max abs {np.abs(got - ref).max():.3g}, relative {rel:.3g}"
    record = json.loads((out / "preset.json").read_text())
    assert record["preset"] == "video_features-i3d-rgb" and record["overrides"] == {}
    assert record["status"].startswith("unverified: video_features decodes with OpenCV")
    assert record["checkpoint_release"].startswith("hassony2/kinetics_i3d_pytorch i3d_rgb.pt")


@pytest.mark.slow  # end to end (make test runs it)
def test_video_features_r21d_preset_against_its_extractor_names_the_resize(tmp_path):
    """video_features' ExtractR21D stretches frames to 128 x 171 without antialiasing, cnn3d
    scales the short side (antialiased): measured 5.7e-3 relative on a.mp4 (0.3 grey levels
    mean, 31 max from the antialiasing alone); the same weights and windows otherwise."""
    shapes = json.loads((GOLDENS / "presets_video_features-r21d" / "shapes.json").read_text())
    want = np.load(GOLDENS / "presets_video_features-r21d" / "golden.npz")
    checkpoint = tmp_path / "r2plus1d_18.pth"
    torch.save(seeded_state(shapes, int(want["weight_seed"])), checkpoint)
    out = tmp_path / "feats"
    argv = ["features", str(VF_I3D / "a.mp4"), "--preset", "video_features-r21d", "-o", str(out)]
    assert main(argv + ["--checkpoint", str(checkpoint), "--no-progress", "--workers", "0"]) == 0
    got, ref = np.load(out / "a.npy"), want["a.mp4"]
    assert got.shape == ref.shape == (4, 512)  # 70 frames: 4 complete 16-frame stacks
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert 1e-4 < rel < 1e-2, rel  # near, and not equal: the resize the preset names
    assert "cannot match video_features' resize" in presets.get("video_features-r21d").status()


@pytest.mark.slow  # end to end (make test runs it)
def test_video_features_s3d_preset_against_its_extractor_names_the_resize(tmp_path):
    """video_features' ExtractS3D (re-encode skipped: the video is 25 fps already) scales the
    [0, 1] frames in float (scale factor 224 / short side); cnn3d resizes in 8 bits: measured
    1.1e-3 relative on b.mp4 (176 -> 224, so antialiasing plays no part)."""
    folder = GOLDENS / "presets_video_features-s3d"
    want = np.load(folder / "golden.npz")
    checkpoint = tmp_path / "S3D_kinetics400_torchified.pt"  # the name tells video_features' file
    shapes = json.loads((folder / "shapes.json").read_text())
    torch.save(seeded_state(shapes, int(want["weight_seed"])), checkpoint)
    out = tmp_path / "feats"
    argv = ["features", str(VF_I3D / "b.mp4"), "--preset", "video_features-s3d", "-o", str(out)]
    assert main(argv + ["--checkpoint", str(checkpoint), "--no-progress", "--workers", "0"]) == 0
    got, ref = np.load(out / "b.npy"), want["b.mp4"]
    assert got.shape == ref.shape == (1, 1024)
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert 1e-4 < rel < 5e-3, rel  # near, and not equal: the resize the preset names
    assert "resizes in float" in presets.get("video_features-s3d").status()
