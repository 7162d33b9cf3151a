"""The `hara2018-resnet` preset against the sister tool's own feature path
(kenshohara/video-classification-3d-cnn-pytorch `--mode feature`, run by
tests/data/goldens/make_presets_hara.py; presets_hara2018-resnet/MAKE.md): its clips, segments
and features of JPEG frame folders and of a video, with the golden's seeded ResNet-18 weights
in the 2018 release layout."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.inference import presets
from seeded import seeded_state

GOLDEN = Path(__file__).parent / "data" / "goldens" / "presets_hara2018-resnet"
INPUTS = ("frames", "frames160", "video.mp4")


def relative(got, ref) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def features(tmp: Path, inputs, *flags) -> Path:
    """cnn3d features --preset hara2018-resnet on golden inputs through a list file (a frame
    folder is a video there; given as an input itself, a folder is searched for video files),
    with the weights as a 2018 release file: `module.` keys, no num_batches_tracked."""
    checkpoint = tmp / "resnet-18-kinetics.pth"
    if not checkpoint.exists():
        gold = np.load(GOLDEN / "golden.npz")
        shapes = json.loads((GOLDEN / "shapes.json").read_text())
        state = seeded_state(shapes, int(gold["weight_seed"]))
        old = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        torch.save({"epoch": 200, "arch": "resnet-18", "state_dict": old}, checkpoint)
    out = tmp / f"out{len(list(tmp.glob('out*')))}"
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"{name}\n" for name in inputs))
    argv = ["features", str(listing), "--video_root", str(GOLDEN), "--preset", "hara2018-resnet"]
    argv += ["--checkpoint", str(checkpoint), "-o", str(out), "--no-progress", "--workers", "0"]
    assert main([*argv, *flags]) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return features(tmp_path_factory.mktemp("hara"), INPUTS), np.load(GOLDEN / "golden.npz")


def output(out: Path, name: str):
    key = name.rsplit(".", 1)[0] if name.endswith(".mp4") else name
    info = json.loads((out / f"{key}.segments.json").read_text())
    return np.load(out / f"{key}.npy"), info["segments"]


def test_jpeg_frames_at_short_side_112_match_the_sister_tools_features(run):
    out, gold = run
    got, segments = output(out, "frames")
    # 32 frames: clip 1-16 only; 17-32 would end on the last frame, which its range drops
    assert segments == gold["frames.segments"].tolist() == [[1, 16]]
    assert got.shape == gold["frames"].shape == (1, 512)
    assert relative(got, gold["frames"]) < 1e-4  # measured 6.3e-7


def test_frames_resized_to_112_by_pil_match_and_by_torch_are_a_grey_level_off(run, tmp_path):
    out, gold = run
    got, segments = output(out, "frames160")
    assert segments == gold["frames160.segments"].tolist() == [[1, 16], [17, 32]]
    assert relative(got, gold["frames160"]) < 1e-4  # the preset's --resizer pil: 6.9e-7
    torch_resized, _ = output(features(tmp_path, ["frames160"], "--resizer", "torch"), "frames160")
    # torchvision's uint8 kernel rounds ~0.4 % of the pixels one grey level off PIL: 1.3e-4
    assert 1e-5 < relative(torch_resized, gold["frames160"]) < 1e-3


def test_a_video_is_near_the_tools_features_of_its_ffmpeg_jpegs(run):
    out, gold = run
    got, segments = output(out, "video.mp4")
    assert segments == gold["video.mp4.segments"].tolist() == [[1, 16]]
    # the tool reads ffmpeg's lossy JPEG re-encode of the frames: 1.1e-2 measured
    assert 1e-3 < relative(got, gold["video.mp4"]) < 5e-2


def test_the_preset_says_what_is_unverified_and_why():
    preset = presets.get("hara2018-resnet")
    assert (preset.tail, preset.resize, preset.resizer, preset.window_stride) == (
        "drop", None, "pil", 16,
    )  # fmt: skip
    status = preset.status()
    assert status.startswith("unverified: from a video file the tool reads the JPEGs ffmpeg")
    assert "1.1e-2" in status and "6.9e-7" in status


def test_the_pil_resizer_gives_pils_own_rgb_pixels_and_resizes_flow_too():
    from PIL import Image

    from cnn3d.data.transforms import EvalTransform

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 37, 51, 3), dtype=np.uint8)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)  # [T, C, H, W], a strided view
    got = EvalTransform(24, resize=30, resizer="pil")(clip)  # 37 x 51 -> 30 x 41, crop 24
    for t, frame in enumerate(frames):  # by hand: PIL on the RGB image, then the centre box
        want = np.asarray(Image.fromarray(frame).resize((41, 30), Image.BILINEAR))
        assert np.array_equal(got[:, t].permute(1, 2, 0).numpy(), want[3:27, 8:32])
    flow = EvalTransform(24, resize=30, resizer="pil")(clip[:, :2])
    assert flow.shape == (2, 2, 24, 24) and torch.equal(flow, got[:2])
