"""Fixtures shared by the test files; media helpers are in helpers.py."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A quarter-width 3D ResNet-10 with three classes (x, y, z) that takes 32x32 clips of 16
    frames, saved as a cnn3d checkpoint: fast enough for any command's end-to-end test."""
    from cnn3d.models import build_model, save_model, with_spec

    torch.manual_seed(0)
    model = build_model("resnet", 10, 3, widen_factor=0.25)
    with_spec(model, class_names=["x", "y", "z"], sample_size=32)
    path = tmp_path_factory.mktemp("tiny") / "m.safetensors"
    save_model(path, model)
    return path
