"""C3D, MC3-18, R(2+1)D-34 (IG-65M, TSP) and S3D (torchvision, kylemin): each public file, written
here in its release's own format with seeded weights, loads with no flags and computes what the
reference code computed (`tests/data/goldens/<layout>/`, made by `make_tvfam.py`); its input
convention and name reach the spec; C3D's BGR input goes through the pipeline; the new families
train on the CPU and export to ONNX."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.data.network_input import normalize
from cnn3d.errors import CheckpointError, UsageError
from cnn3d.inference.runner import Runner
from cnn3d.models import build_model, load_model, releases
from cnn3d.models.features import FeatureExtractor, stage_names
from cnn3d.normalization import PRESETS
from cnn3d.runtime import RuntimeConfig
from helpers import family_checkpoint, frames_with_index, write_mp4
from seeded import relative_error, seeded_clip, seeded_state

GOLDENS = Path(__file__).parent / "data" / "goldens"


def plain(state):
    return state


def tsp_checkpoint(state):
    """TSP's training checkpoint (train.py) with the weights under `model` beside the epoch,
    without its `args` (an argparse.Namespace, which `weights_only` loading refuses: see
    `test_a_tsp_checkpoint_with_its_argparse_options_is_refused_in_one_line`)."""
    return {"model": state, "epoch": 5}


def data_parallel(state):
    return {"module." + k: v for k, v in state.items()}


def write_release(tmp_path, layout, filename, wrap=plain, legacy=False):
    """The release file of `layout` with the golden's seeded weights, in its own keys."""
    shapes = json.loads((GOLDENS / layout / "shapes.json").read_text())
    path = tmp_path / filename
    state = seeded_state(shapes, int(np.load(GOLDENS / layout / "golden.npz")["seed"]))
    # torch < 1.6 (c3d-pytorch's 2017 file, TSP's torch 1.4) wrote the legacy format
    torch.save(wrap(state), path, _use_new_zipfile_serialization=not legacy)
    return path


def run_golden(model, layout, layer=None):
    """(relative error of the logits, of the features) against the reference's, and the
    golden's features."""
    golden = np.load(GOLDENS / layout / "golden.npz")
    clip = seeded_clip(tuple(golden["clip_shape"]), int(golden["clip_seed"]))
    heads = FeatureExtractor(model, layer)
    with torch.no_grad():
        features, logits = heads(clip)
    heads.remove_hooks()
    want = torch.from_numpy(golden["features"])
    return relative_error(logits, torch.from_numpy(golden["logits"])), features, want


# layout, file name as released, wrapper, legacy format, expected (family, depth, classes, clip,
# normalisation, class names bundled, words of the release name)
RELEASES = [
    (
        "torchvision-mc3_18",
        "mc3_18-a3ff3b82.pth",
        plain,
        False,
        ("mc3", 18, 400, 16, "torchvision", True, "mc3_18"),
    ),
    (
        "ig65m-r2plus1d_34",
        "r2plus1d_34_clip32_ft_kinetics_from_ig65m-ade133f1.pth",
        plain,
        False,
        ("resnet2p1d", 34, 400, 32, "torchvision", True, "ig65m-pytorch R(2+1)D-34"),
    ),
    (
        "tsp-r2plus1d_34",
        "r2plus1d_34-tsp_on_activitynet-max_gvf-backbone_lr_0.0001-fc_lr_0.002-epoch_5-0d2cf854.pth",
        tsp_checkpoint,
        True,
        ("resnet2p1d", 34, 200, 16, "torchvision", False, "TSP R(2+1)D-34"),
    ),
    (
        "torchvision-s3d",
        "s3d-d76dad2f.pth",
        plain,
        False,
        ("s3d", 22, 400, 128, "torchvision", True, "torchvision s3d"),
    ),
    (
        "kylemin-s3d",
        "S3D_kinetics400.pt",
        data_parallel,
        False,
        ("s3d", 22, 400, 64, "i3d", True, "kylemin/S3D"),
    ),
]


@pytest.mark.parametrize("layout, filename, wrap, legacy, expected", RELEASES, ids=lambda v: v)
def test_release_loads_with_no_flags_and_matches_its_reference(
    tmp_path, capsys, layout, filename, wrap, legacy, expected
):
    path = write_release(tmp_path, layout, filename, wrap, legacy)
    model = load_model(path)
    logits_error, features, want = run_golden(model, layout)
    assert logits_error < 1e-4
    assert relative_error(features, want) < 1e-4
    family, depth, n_classes, clip, norm, named, words = expected
    spec = model.spec
    assert (spec.family, spec.depth, spec.n_classes, spec.clip_length) == (
        family,
        depth,
        n_classes,
        clip,
    )
    assert spec.normalization.name == norm and words in spec.release
    assert (spec.class_names is not None) == named
    if family == "mc3":  # one small one: `cnn3d info` loads the file again
        assert main(["info", str(path)]) == 0
        assert words in capsys.readouterr().out  # `cnn3d info` names the release


def meta_state(layout, wrap=plain):
    shapes = json.loads((GOLDENS / layout / "shapes.json").read_text())
    with torch.device("meta"):
        return wrap({k: torch.empty(shape) for k, shape in shapes.items()})


@pytest.mark.parametrize(
    "filename, clip",
    [
        ("r2plus1d_34_clip8_ig65m_from_scratch-9bae36ae.pth", 8),
        ("r2plus1d_34_clip32_ig65m_from_scratch-449a7af9.pth", 32),
        ("r2plus1d_34_clip8_ft_kinetics_from_ig65m-0aa0550b.pth", 8),
        ("my_renamed_copy.pth", None),  # then the family's 16 frames
    ],
)
def test_ig65m_clip_length_comes_from_the_file_name_and_its_batchnorm_is_caffe2s(filename, clip):
    release = releases.detect(meta_state("ig65m-r2plus1d_34"), filename)
    assert release.clip_length == clip and release.options["bn_eps"] == 1e-3
    assert release.options["stem_mid_width"] == 45 and "per_block_mid" not in release.options
    tsp = releases.detect(meta_state("tsp-r2plus1d_34"), "any.pth")
    assert tsp.options == release.options


def test_video_features_copy_of_the_s3d_weights_gets_its_unit_input():
    state = meta_state("kylemin-s3d")
    assert releases.detect(state, "S3D_kinetics400_torchified.pt").normalization == "unit"
    assert releases.detect(state, "S3D_kinetics400.pt").normalization == "i3d"


def test_a_tsp_checkpoint_with_its_argparse_options_is_refused_in_one_line(tmp_path):
    with torch.device("meta"):
        state = {"features.stem.0.weight": torch.empty(45, 3, 1, 7, 7)}
    path = tmp_path / "r2plus1d_34-tsp_on_thumos14.pth"
    torch.save({"model": state, "args": argparse.Namespace(backbone="r2plus1d_34")}, path)
    with pytest.raises(CheckpointError, match=r"refused: .*\(argparse\.Namespace\)"):
        load_model(path)


@pytest.fixture(scope="module")
def c3d(tmp_path_factory):
    """c3d-pytorch's `c3d.pickle` (a legacy-format plain state_dict), loaded with no flags."""
    path = write_release(tmp_path_factory.mktemp("c3d"), "c3d-pytorch", "c3d.pickle", legacy=True)
    return path, load_model(path)


def test_c3d_matches_its_reference_at_fc6_and_fc7(c3d, capsys):
    path, model = c3d
    logits_error, fc6, want = run_golden(model, "c3d-pytorch")
    assert logits_error < 1e-4
    assert relative_error(fc6, want[:, :4096]) < 1e-4  # post-ReLU fc6: the default feature
    _, fc7, _ = run_golden(model, "c3d-pytorch", layer="fc7")
    assert relative_error(fc7, want[:, 4096:]) < 1e-4
    spec = model.spec
    assert (spec.family, spec.depth, spec.n_classes, spec.clip_length, spec.sample_size) == (
        "c3d",
        8,
        487,
        16,
        112,
    )
    assert spec.normalization == PRESETS["c3d"] and spec.class_names is None
    assert {"fc6", "fc7", "conv5b"} <= set(stage_names(model))
    assert main(["info", str(path)]) == 0
    assert "c3d-pytorch" in capsys.readouterr().out


def test_commands_load_c3d_folded_as_they_do_every_network(c3d):
    """classify, features and test load with `fold_bn`; C3D has no BatchNorm to fold (and its
    fc6 takes 112-pixel clips only, not the small probe clip folding runs)."""
    path, _ = c3d
    assert load_model(path, fold_bn=True).spec.release.startswith("DavideA/c3d-pytorch")


def test_c3d_feature_layer_fc7_moves_the_feature_point_and_keeps_the_logits(c3d):
    _, loaded = c3d
    model = build_model("c3d", 8, 487, feature_layer="fc7").eval()
    model.load_state_dict(loaded.state_dict())  # the same keys whichever feature point
    logits_error, fc7, want = run_golden(model, "c3d-pytorch")
    assert logits_error < 1e-4 and relative_error(fc7, want[:, 4096:]) < 1e-4


def test_the_c3d_preset_reverses_channels_and_subtracts_the_sports1m_mean():
    clip = torch.empty(3, 1, 1, 1, dtype=torch.uint8)
    clip[0], clip[1], clip[2] = 10, 20, 30  # R, G, B
    out = normalize(clip, PRESETS["c3d"]).flatten().tolist()
    # BGR order, minus the Sports-1M mean (B 90.25, G 97.66, R 101.41), 0-255 units
    assert out == pytest.approx([30 - 90.25, 20 - 97.66, 10 - 101.41])


def test_c3d_gets_bgr_input_through_the_pipeline(c3d):
    """What reaches conv1 when a command runs the loaded C3D on uint8 RGB pixels."""
    _, model = c3d
    pixels = torch.randint(0, 256, (1, 3, 16, 112, 112), dtype=torch.uint8)
    seen = []
    hook = model.conv1.register_forward_pre_hook(lambda _m, i: seen.append(i[0].clone()))
    runner = Runner(model, RuntimeConfig(device="cpu", amp=False, channels_last=False))
    runner(pixels)
    runner.close()
    hook.remove()
    by_hand = pixels.flip(1).float() - torch.tensor([90.25, 97.66, 101.41]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(seen[0], by_hand, rtol=0, atol=1e-5)


def test_features_command_takes_c3d_fc7_from_a_video(c3d, tmp_path):
    path, _ = c3d
    write_mp4(tmp_path / "clip.mp4", frames_with_index(16, 120, 160))
    out = tmp_path / "features"
    argv = ["features", "--checkpoint", str(path), str(tmp_path / "clip.mp4"), "-o", str(out)]
    assert main([*argv, "--layer", "fc7", "--device", "cpu"]) == 0
    assert np.load(out / "clip.npy").shape == (1, 4096)


def test_a_c3d_clip_of_another_size_is_a_named_error():
    with torch.device("meta"):
        model = build_model("c3d", 8, 5)
        with pytest.raises(UsageError, match="16x112x112"):
            model(torch.empty(1, 3, 16, 64, 64))


@pytest.mark.parametrize(
    "family, depth, shape",
    [
        ("c3d", 8, (1, 3, 16, 112, 112)),
        ("mc3", 10, (2, 3, 4, 32, 32)),
        ("s3d", 22, (2, 3, 8, 32, 32)),
    ],
)
def test_new_family_trains_on_the_cpu(family, depth, shape):
    model = build_model(family, depth, 3)
    x = torch.randn(*shape)
    model(x).logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.reset_classifier(7)
    assert model(x).shape == (shape[0], 7)


@pytest.mark.slow
def test_mc3_exports_to_onnx_with_any_batch_and_passes_parity(tmp_path, capsys):
    """MC3's strides in space only, through the exporter (S3D's export passes too, in 10 s)."""
    pytest.importorskip("onnxruntime")
    checkpoint = family_checkpoint(tmp_path, "mc3", 10, {})
    assert main(["export", str(checkpoint), str(tmp_path / "model.onnx")]) == 0
    assert "parity passed" in capsys.readouterr().out
