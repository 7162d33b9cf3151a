"""`cnn3d export`: every family exports to ONNX (and .pt2, TorchScript) with the model's card
as metadata; the written graph, run by ONNX Runtime itself, computes what the checkpoint does
in float64; a graph that does not is refused and not written; and classify/features run an
exported model through ONNX Runtime and OpenVINO with PyTorch's outputs."""

import json
import sys
import warnings

import numpy as np
import pytest
import torch

from cnn3d.cli import main
from cnn3d.models import build_model, load_model
from cnn3d.models.features import FeatureExtractor
from helpers import family_checkpoint, frames_with_index, write_mp4

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

# each family at its smallest, narrow where the family allows it, and (`shallow_networks`) one or
# two blocks a stage: exporting traces every block (DenseNet-121's 58 dense layers took 18 s)
SMALL = [
    ("resnet", 10, {"widen_factor": 0.25, "shortcut": "A"}),
    ("preresnet", 10, {}),
    ("wideresnet", 50, {"widen_factor": 0.25}),
    ("resnext", 50, {"cardinality": 4}),
    ("densenet", 121, {"growth_rate": 8, "num_init_features": 16}),
    ("resnet2p1d", 10, {"widen_factor": 0.25}),
    ("resnet", 10, {"widen_factor": 0.25, "n_input_channels": 2}),  # optical flow
]


@pytest.mark.parametrize("family, depth, options", SMALL, ids=lambda v: str(v))
def test_every_family_exports_to_onnx_and_onnxruntime_agrees_with_float64(
    tmp_path, capsys, shallow_networks, family, depth, options
):
    ck = family_checkpoint(tmp_path, family, depth, options)
    out = tmp_path / "model.onnx"
    assert main(["export", str(ck), str(out)]) == 0
    assert "parity passed" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    channels = options.get("n_input_channels", 3)
    clips = torch.randn(3, channels, 8, 32, 32, generator=torch.Generator().manual_seed(5))
    features, logits = session.run(["features", "logits"], {"clips": clips.numpy()})
    reference = load_model(ck).double().eval()
    with torch.no_grad():
        expected = reference(clips.double()).numpy()
    spread = expected.max(1) - expected.min(1)
    assert np.max(np.abs(logits - expected).max(1) / spread) < 1e-4
    assert features.shape == (3, reference.num_features)
    card = json.loads(
        {p.key: p.value for p in onnx.load(str(out)).metadata_props}["cnn3d"]
    )  # the model's card travels with it
    assert card["spec"]["class_names"][4] == "action 4" and card["spec"]["clip_length"] == 8
    assert card["spec"]["normalization"]["name"] == reference.spec.normalization.name
    assert session.get_inputs()[0].shape[0] == "batch"  # any batch size


@pytest.mark.parametrize("suffix", [".pt2", ".ts"])
def test_pt2_and_torchscript_carry_the_card_and_compute_the_same(tmp_path, suffix):
    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})
    out = tmp_path / f"model{suffix}"
    assert main(["export", str(ck), str(out)]) == 0
    extra = {"cnn3d.json": ""}
    if suffix == ".pt2":
        module = torch.export.load(str(out), extra_files=extra).module()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["cnn3d.json"])["spec"]["sample_size"] == 32
    clips = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(clips)[1], load_model(ck)(clips), rtol=1e-5, atol=1e-5)


def test_an_export_that_does_not_agree_is_refused_and_not_written(tmp_path, capsys, monkeypatch):
    """A planted exporter bug (one weight changed in the exported graph) fails the parity."""
    import cnn3d.export as export

    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})
    real = export.write_exported

    def broken(heads, example, path, fmt, card):
        altered = build_model("resnet", 10, 5, widen_factor=0.25)
        altered.load_state_dict(heads.model.state_dict())
        with torch.no_grad():
            altered.fc.bias[0] += 1.0
        altered.spec = heads.model.spec
        real(FeatureExtractor(altered).eval(), example, path, fmt, card)

    monkeypatch.setattr(export, "write_exported", broken)
    out = tmp_path / "model.onnx"
    assert main(["export", str(ck), str(out)]) == 1
    printed = capsys.readouterr().out
    assert "parity FAILED" in printed and "not written" in printed
    assert not out.exists() and not list(tmp_path.glob(".model*"))


def test_parity_is_judged_on_the_worst_clip():
    """By hand: clip 0 agrees exactly; clip 1's top logit is off by 0.4 on a range of 4 (0 to 4),
    a relative error of 0.1, which fails a tolerance of 0.05 whatever clip 0 says."""
    from cnn3d.export import compare

    reference = torch.tensor([[0.0, 1.0, 3.0], [0.0, 2.0, 4.0]])
    exported = torch.tensor([[0.0, 1.0, 3.0], [0.0, 2.0, 4.4]])
    parity = compare(reference, exported, tolerance=0.05)
    assert parity.max_abs_error == pytest.approx(0.4)
    assert parity.max_rel_error == pytest.approx(0.1)
    assert parity.top1_agreement == 1.0 and parity.unexplained == 0
    assert not parity.passed


def test_an_export_wrong_on_one_clip_only_is_refused_and_not_written(tmp_path, capsys, monkeypatch):
    """The exported model answers one clip of the parity batch 1% off (the top-1 choice kept):
    the export fails on that clip alone."""
    import cnn3d.export as export

    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})
    real = export.load_exported

    def wrong_on_one_clip(path, engine="auto"):
        runner = real(path, engine)
        calls = []

        def run(clips):
            features, logits = runner(clips)
            calls.append(len(clips))
            if len(calls) == 1:  # the first batch: clips 0 to 2; clip 1 is scaled about its mean
                logits = logits.clone()
                logits[1] = logits[1].mean() + 1.01 * (logits[1] - logits[1].mean())
            return features, logits

        return run

    monkeypatch.setattr(export, "load_exported", wrong_on_one_clip)
    out = tmp_path / "model.pt2"
    assert main(["export", str(ck), str(out)]) == 1
    printed = capsys.readouterr().out
    assert "parity FAILED on 8 clips" in printed and "not written" in printed
    assert "top-1 agreement 100.0%" in printed  # only the error gives it away
    assert not out.exists() and not list(tmp_path.glob(".model*"))


def test_export_makes_a_missing_folder(tmp_path, capsys):
    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})
    out = tmp_path / "new" / "deeper" / "model.ts"
    assert main(["export", str(ck), str(out)]) == 0
    assert out.is_file() and f"wrote {out}" in capsys.readouterr().out


def test_export_without_the_onnx_extra_says_so_before_any_work(tmp_path, capsys, monkeypatch):
    import cnn3d.models

    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})

    def no_work(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the check")

    monkeypatch.setattr(cnn3d.models, "load_model", no_work)
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript fails
    out = tmp_path / "model.onnx"
    assert main(["export", str(ck), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"cnn3d export: error: {out}: exporting to ONNX needs onnxscript, not installed: "
        "pip install -e '.[export]'"
    )


@pytest.mark.parametrize(
    "engine, module, extra",
    [("onnxruntime", "onnxruntime", "'.[export]'"), ("openvino", "openvino", "'.[openvino]'")],
)
def test_an_engine_not_installed_is_named_with_its_extra(
    exported, capsys, monkeypatch, engine, module, extra
):
    _, model, video = exported
    monkeypatch.setitem(sys.modules, module, None)
    assert main(["classify", str(video), "--checkpoint", str(model), "--engine", engine]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--engine {engine} needs {module}, not installed: pip install -e {extra}")
    if engine == "onnxruntime":  # info runs .onnx files with it
        assert main(["info", str(model)]) == 2
        assert "pip install -e '.[export]'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    ck = family_checkpoint(root, "resnet", 10, {"widen_factor": 0.25})
    assert main(["export", str(ck), str(root / "model.onnx")]) == 0
    video = root / "clip.mp4"
    write_mp4(video, frames_with_index(30, 48, 64))
    return ck, root / "model.onnx", video


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_classify_and_features_through_an_engine_give_pytorchs_outputs(exported, tmp_path, engine):
    if engine == "openvino":
        pytest.importorskip("openvino")
    ck, model, video = exported
    common = [str(video), "--workers", "0", "--no-progress", "--no-amp"]
    assert main(["classify", *common, "--checkpoint", str(ck), "-o", str(tmp_path / "a.json")]) == 0
    argv = ["classify", *common, "--checkpoint", str(model), "--engine", engine]
    assert main([*argv, "-o", str(tmp_path / "b.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert [c["label"] for c in a[0]["clips"]] == [c["label"] for c in b[0]["clips"]]
    for x, y in zip(a[0]["clips"], b[0]["clips"], strict=True):
        np.testing.assert_allclose(x["scores"], y["scores"], rtol=1e-4, atol=1e-5)
    for out, m in ((tmp_path / "fa", ck), (tmp_path / "fb", model)):
        argv = ["features", *common, "--checkpoint", str(m), "--engine", "auto", "-o", str(out)]
        assert main(argv if m == ck else [*argv[:-4], "--engine", engine, "-o", str(out)]) == 0
    fa = np.load(next((tmp_path / "fa").rglob("*.npy")))
    fb = np.load(next((tmp_path / "fb").rglob("*.npy")))
    np.testing.assert_allclose(fa, fb, rtol=1e-4, atol=1e-5)


def test_an_engine_wants_an_exported_file(exported, capsys):
    ck, _, video = exported
    assert main(["classify", str(video), "--checkpoint", str(ck), "--engine", "onnxruntime"]) == 2
    assert "runs an exported model; make one with `cnn3d export" in capsys.readouterr().err


def test_info_reads_the_card_an_exported_file_carries(exported, capsys):
    _, model, _ = exported
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "resnet-10 (widen_factor=0.25), exported by cnn3d" in out
    assert "input: float32 [N, 3, 8, 32, 32], normalisation kinetics" in out
    assert "classes: 5, names stored" in out


def test_live_runs_an_exported_model_with_pytorchs_scores(exported, tmp_path):
    ck, model, video = exported
    out = tmp_path / "a.json"
    argv = ["classify", str(video), "--workers", "0", "--no-progress", "--no-amp"]
    assert main([*argv, "--checkpoint", str(ck), "-o", str(out)]) == 0
    [entry] = json.loads(out.read_text())
    by_start = {
        c["segment"][0] - 1: dict(zip(entry["labels"], c["scores"], strict=True))
        for c in entry["clips"]
    }
    live = tmp_path / "live.jsonl"
    argv = ["classify", "--live", str(video), "--checkpoint", str(model), "--topk", "5"]
    assert main([*argv, "-o", str(live)]) == 0
    windows = [json.loads(line) for line in live.read_text().splitlines()]
    assert [w["first_frame"] for w in windows] == [0, 8, 16, 24]  # classify's, 24 loop-padded
    for w in windows:
        for item in w["top_k"]:
            assert item["score"] == pytest.approx(
                by_start[w["first_frame"]][item["label"]], abs=1e-5
            )
