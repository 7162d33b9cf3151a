"""pytorchvideo's hub `.pyth` files (Slow, C2D, I3D-R50, R(2+1)D-R50, CSN-R101, SlowFast) load
with no flags and no pytorchvideo, and compute what pytorchvideo's own hub builders compute
(goldens: `tests/data/goldens/pytorchvideo_*/MAKE.md`)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.errors import CheckpointError, UsageError
from cnn3d.models import build_model, load_model, releases
from cnn3d.models.checkpoint import kinetics400_class_names
from cnn3d.models.features import FeatureExtractor
from cnn3d.models.slowfast import slow_frame_indices
from helpers import family_checkpoint
from seeded import relative_error, seeded_clip, seeded_state

GOLDENS = Path(__file__).parent / "data" / "goldens"

# hub name -> (family, depth, frames between a clip's frames)
HUB = {
    "slow_r50": ("slow", 50, 8),
    "c2d_r50": ("c2d", 50, 8),
    "i3d_r50": ("i3d_r", 50, 8),
    "r2plus1d_r50": ("r2plus1d_r", 50, 4),
    "csn_r101": ("csn", 101, 2),
    "slowfast_r50": ("slowfast", 50, 2),
    "slowfast_r101": ("slowfast", 101, 2),
}


# each full-size forward takes seconds on two cores: the goldens of C2D (its blocks are I3D-R50's
# with 1x1x1 conv_a) and SlowFast-R101 (SlowFast-R50's, deeper) run on request
# (CNN3D_ALL_GOLDENS=1); every file's layout is recognised by the test after the goldens
ON_REQUEST = {"c2d_r50", "slowfast_r101"}
GOLDEN_RUNS = [
    pytest.param(name, marks=pytest.mark.skipif(
        name in ON_REQUEST and not os.environ.get("CNN3D_ALL_GOLDENS"),
        reason="a full-size golden run on request (CNN3D_ALL_GOLDENS=1)"))
    for name in HUB
]  # fmt: skip


def reference_shapes(name: str) -> dict:
    return json.loads((GOLDENS / f"pytorchvideo_{name}" / "shapes.json").read_text())


def hub_file(
    tmp_path: Path, name: str, drop: str | None = None, seeded: bool = True
) -> tuple[Path, dict]:
    """The hub's `.pyth` for `name` with seeded weights (the golden's; zeros where only the
    layout matters), as PySlowFast writes it: the weights under `model_state` beside the epoch."""
    golden = dict(np.load(GOLDENS / f"pytorchvideo_{name}" / "golden.npz"))
    shapes = reference_shapes(name)
    if seeded:
        state = seeded_state(shapes, int(golden["weight_seed"]))
    else:
        state = {k: torch.zeros(shape, dtype=torch.long if k.endswith("tracked") else None)
                 for k, shape in shapes.items()}  # fmt: skip
    if drop:
        del state[drop]
    path = tmp_path / f"{name.upper()}.pyth"
    torch.save({"epoch": 196, "model_state": state}, path)
    return path, golden


@pytest.mark.parametrize("name", GOLDEN_RUNS)
def test_a_hub_file_loads_with_no_flags_and_computes_what_pytorchvideo_does(tmp_path, name):
    path, golden = hub_file(tmp_path, name)
    model = load_model(path)
    family, depth, t_stride = HUB[name]
    spec = model.spec
    assert (spec.family, spec.depth, spec.release) == (
        family,
        depth,
        f"pytorchvideo hub {name} (.pyth)",
    )
    assert spec.normalization.name == "pytorchvideo" and spec.normalization.mean == (0.45,) * 3
    assert spec.class_names == kinetics400_class_names()  # the hub's kinetics_classnames.json
    assert (spec.clip_length, spec.sample_size, spec.t_stride) == (
        int(golden["clip_shape"][2]), 256, t_stride
    )  # fmt: skip
    clip = seeded_clip(tuple(golden["clip_shape"]), int(golden["clip_seed"]))
    with torch.no_grad():
        features, logits = FeatureExtractor(model)(clip)
    assert relative_error(features, torch.from_numpy(golden["features"])) < 1e-4
    assert relative_error(logits, torch.from_numpy(golden["logits"])) < 1e-4
    # the hub's R(2+1)D ends in a softmax; cnn3d returns the logits before it
    output = logits.softmax(1) if name == "r2plus1d_r50" else logits
    assert relative_error(output, torch.from_numpy(golden["output"])) < 1e-4


@pytest.mark.parametrize("name", list(HUB))
def test_each_hub_layout_is_told_apart_by_its_tensors_alone(name):
    state = {k: torch.empty(shape) for k, shape in reference_shapes(name).items()}
    found = releases.detect(state, f"{name}.pyth")
    family, depth, _ = HUB[name]
    assert (found.family, found.depth, found.options) == (family, depth, {})
    assert found.name == f"pytorchvideo hub {name} (.pyth)"
    assert found.class_names == "kinetics400" and found.normalization == "pytorchvideo"
    state[
        "blocks.1.res_blocks.0.branch2.conv_a.weight"
        if "slowfast" not in name
        else "blocks.1.multipathway_blocks.1.res_blocks.0.branch2.conv_a.weight"
    ] = torch.empty(1)
    assert releases.detect(state, f"{name}.pyth") is None  # one wrong shape: not this layout


def test_slowfast_takes_the_slow_frames_pyslowfast_takes():
    # linspace(0, 31, 8) = 31 k / 7, truncated: 0, 4.43, 8.86, 13.29, 17.71, 22.14, 26.57, 31
    assert slow_frame_indices(32, 4).tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    assert slow_frame_indices(16, 4).tolist() == [0, 5, 10, 15]
    model = build_model("slowfast", 50, 5, width=16).eval()
    seen = []
    model.slow.stem.register_forward_pre_hook(lambda _m, i: seen.append(i[0]))
    clip = torch.randn(1, 3, 32, 32, 32)
    with torch.no_grad():
        model(clip)
    assert torch.equal(seen[0], clip[:, :, [0, 4, 8, 13, 17, 22, 26, 31]])
    with pytest.raises(UsageError, match="multiple of alpha = 4 frames, not 30"):
        model(clip[:, :, :30])


def test_info_names_the_hub_release(tmp_path, capsys):
    path, _ = hub_file(tmp_path, "c2d_r50", seeded=False)
    assert main(["info", str(path)]) == 0
    assert "pytorchvideo hub c2d_r50 (.pyth)" in capsys.readouterr().out


def test_a_hub_file_missing_a_tensor_is_refused_in_one_line(tmp_path):
    path, _ = hub_file(
        tmp_path, "c2d_r50", drop="blocks.3.res_blocks.1.branch2.conv_b.weight", seeded=False
    )
    with pytest.raises(CheckpointError, match="^" + str(path)) as error:
        load_model(path)
    assert "\n" not in str(error.value)


# every kind of block once: C2D's stage-1 pool, CSN's depthwise conv, the (2+1)D conv, SlowFast's
# fusions and 3x1x1 conv_a (Slow and I3D-R50 are made of these blocks)
@pytest.mark.parametrize("family", ["c2d", "csn", "r2plus1d_r", "slowfast"])
def test_each_family_trains_on_cpu(family):
    torch.manual_seed(0)
    model = build_model(family, 50, 3, width=8).train()
    clip = torch.randn(2, 3, 8, 32, 32)
    loss = torch.nn.functional.cross_entropy(model(clip), torch.tensor([0, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    head = getattr(model, model.classifier_name)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(head(model.forward_features(clip)), model(clip))


def test_slowfast_spatial_features_are_refused_with_a_way_out():
    model = build_model("slowfast", 50, 3, width=16)
    with pytest.raises(UsageError, match="--layer slow.layer4"):
        FeatureExtractor(model, spatial=True)
    assert "fast.layer4" in model.feature_points


@pytest.mark.slow
def test_slowfast_exports_to_onnx_with_any_batch(tmp_path, capsys, shallow_networks):
    """Both pathways, their lateral connections and the fused head, one block a stage."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    ck = family_checkpoint(tmp_path, "slowfast", 50, {"width": 16})
    out = tmp_path / "slowfast.onnx"
    assert main(["export", str(ck), str(out)]) == 0
    assert "parity passed" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    clips = torch.randn(3, 3, 8, 32, 32, generator=torch.Generator().manual_seed(5))
    features, logits = session.run(["features", "logits"], {"clips": clips.numpy()})
    with torch.no_grad():
        expected = load_model(ck)(clips)
    assert relative_error(torch.from_numpy(logits), expected) < 1e-4
    assert features.shape == (3, 512 + 64)  # slow 16 x 32, fast 2 x 32
