"""pytorchvideo's hub X3D files load with no flags and compute what pytorchvideo's `create_x3d`
computes (goldens in tests/data/goldens/pytorchvideo-x3d*/, made by make_x3d.py): XS, S and M
(the same tensors) told apart by the file name, L by its depth; the head's fixed averaging kernel
per variant; the 2048 features; ONNX export; training on CPU."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.models import build_model, load_model
from cnn3d.models.features import FeatureExtractor
from helpers import family_checkpoint
from seeded import relative_error, seeded_clip, seeded_state

GOLDENS = Path(__file__).parent / "data" / "goldens"


def hub_file(tmp_path, golden: str, filename: str) -> Path:
    """The golden's seeded weights in pytorchvideo's keys, saved as the hub does (a `.pyth`
    dict with the weights under `model_state`)."""
    shapes = json.loads((GOLDENS / golden / "shapes.json").read_text())
    path = tmp_path / filename
    torch.save({"model_state": seeded_state(shapes, seed=0), "epoch": 1}, path)
    return path


def run(model, clip_record):
    """(features, logits, the map `--spatial` gives) on the golden's clip; channels-last, which
    computes the same and is several times faster on CPU for X3D's depthwise convolutions."""
    clip = seeded_clip(tuple(int(s) for s in clip_record[:5]), int(clip_record[5]))
    model = model.to(memory_format=torch.channels_last_3d)
    heads = FeatureExtractor(model, spatial=True)
    with torch.no_grad():
        spatial, logits = heads(clip.contiguous(memory_format=torch.channels_last_3d))
    features = torch.flatten(spatial.mean(dim=(2, 3, 4)), 1)
    return features, logits, spatial


@pytest.mark.parametrize(
    "variant, filename, clip",
    [("xs", "X3D_XS.pyth", (4, 12, 182)), ("s", "x3d_s.pyth", (13, 6, 182))],
)
def test_hub_x3d_xs_and_s_match_pytorchvideo(tmp_path, variant, filename, clip):
    golden = np.load(GOLDENS / "pytorchvideo-x3d" / "golden.npz")
    model = load_model(hub_file(tmp_path, "pytorchvideo-x3d", filename))
    spec = model.spec
    assert (spec.family, spec.depth) == ("x3d", variant)
    assert (
        spec.release == f"pytorchvideo hub X3D-{variant.upper()} ({clip[0]}x{clip[1]}, {clip[2]})"
    )
    # the torch.hub page's input: frames, every n-th frame, crop
    assert (spec.clip_length, spec.t_stride, spec.sample_size) == clip
    assert model.pool_size == {"xs": (4, 5, 5), "s": (13, 5, 5)}[variant]  # the training clip's
    assert spec.normalization.name == "pytorchvideo" and spec.normalization.std[0] == 0.225
    assert spec.class_names[0] == "abseiling" and spec.class_names[208].startswith("passing Am")
    features, logits, spatial = run(model, golden[f"{variant}_clip"])
    assert relative_error(logits, torch.from_numpy(golden[f"{variant}_logits"])) < 1e-4
    assert relative_error(features, torch.from_numpy(golden[f"{variant}_features"])) < 1e-4
    # S's golden clip is the hub tutorial's 182 crop: the head's 13x5x5 kernel, stride 1, leaves
    # a 2x2 map of 2048 features, averaged (the reference averages the logits: the same)
    assert spatial.shape[2:] == ((1, 2, 2) if variant == "s" else (1, 1, 1))


def test_hub_x3d_l_matches_pytorchvideo(tmp_path):
    golden = np.load(GOLDENS / "pytorchvideo-x3d-l" / "golden.npz")
    model = load_model(hub_file(tmp_path, "pytorchvideo-x3d-l", "X3D_L.pyth"))
    assert (model.spec.depth, model.spec.clip_length, model.spec.sample_size) == ("l", 16, 312)
    assert model.pool_size == (16, 10, 10)  # ceil(312 / 32)
    features, logits, _ = run(model, golden["clip"])
    assert relative_error(logits, torch.from_numpy(golden["logits"])) < 1e-4
    assert relative_error(features, torch.from_numpy(golden["features"])) < 1e-4


def test_a_file_named_otherwise_is_read_as_m_and_info_says_so(tmp_path, capsys):
    path = hub_file(tmp_path, "pytorchvideo-x3d", "kinetics_checkpoint.pyth")
    model = load_model(path)
    assert model.spec.depth == "m" and model.pool_size == (16, 7, 7)
    assert "read as M" in model.spec.release
    assert main(["info", str(hub_file(tmp_path, "pytorchvideo-x3d", "X3D_XS.pyth"))]) == 0
    assert "pytorchvideo hub X3D-XS (4x12, 182)" in capsys.readouterr().out


@pytest.mark.slow
def test_x3d_xs_exports_to_onnx_with_parity(tmp_path, capsys, shallow_networks):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    out = tmp_path / "x3d_xs.onnx"
    assert main(["export", str(family_checkpoint(tmp_path, "x3d", "xs", {})), str(out)]) == 0
    assert "parity passed" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"


def test_x3d_trains_on_cpu_and_runs_on_clips_smaller_than_its_kernel():
    torch.manual_seed(0)
    model = build_model("x3d", "xs", n_classes=3).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(1, 3, 4, 32, 32)), torch.tensor([2]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.stem.conv_xy.weight.grad.abs().sum() > 0
    model.eval()
    clips = torch.randn(2, 3, 2, 16, 16)  # smaller than XS's 4x160: the head pools what is there
    with torch.no_grad():
        assert torch.allclose(model.fc(model.forward_features(clips)), model(clips))
