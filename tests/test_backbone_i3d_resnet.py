"""Tushar-N/pytorch-resnet3d's I3D ResNet-50 files (`i3d_r50_kinetics.pth`, the network of the
UCF-Crime / ShanghaiTech ten-crop "I3D" features, and `i3d_r50_nl_kinetics.pth`) load with no
flags and compute what its `I3Res50` computes, with the 2048 features that
GowthamGottimukkala/I3D_Feature_Extraction_resnet saves (goldens in
tests/data/goldens/tushar-n-i3d-resnet50*/, made by make_x3d.py); the layout does not take the
2018/2020 ResNet-50 files, nor theirs it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.models import build_model, load_model
from cnn3d.models.releases import detect
from seeded import relative_error, seeded_clip, seeded_state

GOLDENS = Path(__file__).parent / "data" / "goldens"


def converted_file(tmp_path, golden: str, filename: str) -> Path:
    """The golden's seeded weights as `utils/convert_weights.py` saves them: a plain state_dict
    in `I3Res50`'s keys, without BatchNorm's num_batches_tracked."""
    shapes = json.loads((GOLDENS / golden / "shapes.json").read_text())
    path = tmp_path / filename
    torch.save(seeded_state(shapes, seed=0), path)
    return path


@pytest.mark.parametrize(
    "golden, filename, kind",
    [
        ("tushar-n-i3d-resnet50", "i3d_r50_kinetics.pth", "baseline"),
        ("tushar-n-i3d-resnet50-nl", "i3d_r50_nl_kinetics.pth", "non-local"),
    ],
)
def test_tushar_n_i3d_resnet50_matches_its_reference(tmp_path, golden, filename, kind):
    expected = np.load(GOLDENS / golden / "golden.npz")
    model = load_model(converted_file(tmp_path, golden, filename))
    spec = model.spec
    assert (spec.family, spec.depth, spec.release.split(" (")[0]) == (
        "i3d_nl",
        50,
        "Tushar-N/pytorch-resnet3d I3D ResNet-50",
    )
    assert kind in spec.release and spec.options.get("nonlocal_blocks", False) == (
        kind != "baseline"
    )
    # the Caffe2 training's mean 114.75 / std 57.375 on 0-255 pixels
    assert spec.normalization.mean[0] * 255 == pytest.approx(114.75)
    assert spec.normalization.std[0] * 255 == pytest.approx(57.375)
    assert (spec.clip_length, spec.sample_size, spec.class_names[399]) == (16, 224, "zumba")
    record = expected["clip"]
    clip = seeded_clip(tuple(int(s) for s in record[:5]), int(record[5]))
    with torch.no_grad():
        features = model.forward_features(clip)
        logits = model.fc(features)
    assert relative_error(logits, torch.from_numpy(expected["logits"])) < 1e-4
    if "features" in expected:
        assert relative_error(features, torch.from_numpy(expected["features"])) < 1e-4


def test_the_layouts_keep_to_their_own_files():
    """Hara's ResNet-50 (7x7x7 stem, 1x1x1 then 3x3x3) is left to the 2018/2020 reading; the
    Tushar-N file is not taken by another layout."""
    with torch.device("meta"):
        hara = build_model("resnet", 50).state_dict()
        tushar = build_model("i3d_nl", 50).state_dict()
    assert detect(hara, "resnet-50-kinetics.pth") is None
    assert detect(tushar, "i3d_r50_kinetics.pth").family == "i3d_nl"


def test_i3d_nl_trains_on_cpu():
    torch.manual_seed(0)
    model = build_model("i3d_nl", 50, n_classes=3, nonlocal_blocks=True).train()
    clips = torch.randn(2, 3, 8, 32, 32)  # 8 frames: 1 left at layer4
    loss = torch.nn.functional.cross_entropy(model(clips), torch.tensor([0, 2]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.layer2[1].nl.theta.weight.grad.abs().sum() > 0
