import collections
import os
import pickle
import zipfile

import pytest
import torch
import torchvision

from cnn3d.models import CheckpointError, build_model, convert, load_model, save_model
from helpers import as_2018_file

X = torch.randn(1, 3, 8, 32, 32)


def outputs(model, x=X):
    with torch.no_grad():
        return model.eval()(x)


def randomise_bn(model):
    # non-trivial running statistics, so a mis-mapped BN would show in the outputs
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_2018_resnet18_shortcut_a(tmp_path):
    model = randomise_bn(build_model("resnet", 18, 400, shortcut="A"))
    path = tmp_path / "resnet-18-kinetics.pth"
    as_2018_file(model.state_dict(), path, "resnet-18")
    loaded = load_model(path)
    assert loaded.spec.options["shortcut"] == "A"
    assert loaded.spec.normalization.name == "hara2018"
    assert loaded.spec.normalization.value_range == 255
    assert loaded.spec.class_names[:2] == ["abseiling", "air drumming"]
    assert len(loaded.spec.class_names) == 400
    assert not loaded.training
    torch.testing.assert_close(outputs(loaded), outputs(model))


def test_2018_densenet_old_names(tmp_path):
    model = randomise_bn(build_model("densenet", 121, 400))
    state = {}
    for k, v in model.state_dict().items():
        k = k.replace("features.conv1.", "features.conv0.").replace(
            "features.norm1.", "features.norm0."
        )
        for a in ("norm", "conv"):
            for i in "12":
                k = k.replace(f".{a}{i}.", f".{a}.{i}.") if "denselayer" in k else k
        state[k] = v
    assert "features.denseblock1.denselayer1.norm.1.weight" in state
    path = tmp_path / "densenet-121-kinetics.pth"
    as_2018_file(state, path, "densenet-121")
    loaded = load_model(path)
    assert loaded.spec.arch == "densenet-121"
    assert loaded.spec.normalization.name == "hara2018"
    x = torch.randn(1, 3, 16, 32, 32)
    torch.testing.assert_close(outputs(loaded, x), outputs(model, x))


def test_2018_resnext_64_wide_stem_and_64f_name(tmp_path):
    model = randomise_bn(build_model("resnext", 50, 400, cardinality=32, stem_width=64))
    path = tmp_path / "resnext-101-64f-kinetics.pth"  # name only: clip length hint
    as_2018_file(model.state_dict(), path, "resnext-101")
    with pytest.warns(UserWarning, match="arch says 'resnext-101'"):
        loaded = load_model(path)
    assert loaded.spec.family == "resnext" and loaded.spec.depth == 50
    assert loaded.spec.options["stem_width"] == 64
    assert loaded.spec.clip_length == 64
    torch.testing.assert_close(outputs(loaded), outputs(model))


def test_2018_wide_resnet(tmp_path):
    model = randomise_bn(build_model("wideresnet", 50, 400, widen_factor=1))
    path = tmp_path / "wrn.pth"
    as_2018_file(model.state_dict(), path, "wideresnet-50")
    loaded = load_model(path)
    assert loaded.spec.family == "wideresnet"
    torch.testing.assert_close(outputs(loaded), outputs(model))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_2020_release_any_class_count(tmp_path, prefix):
    model = randomise_bn(build_model("resnet", 10, 1039))
    path = tmp_path / "r3d10_KM_200ep.pth"
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save(
        {"epoch": 200, "arch": "resnet-10", "state_dict": state, "optimizer": {}, "scheduler": {}},
        path,
    )
    loaded = load_model(path)
    assert loaded.spec.n_classes == 1039
    assert loaded.spec.normalization.name == "kinetics"
    assert loaded.spec.class_names is None
    torch.testing.assert_close(outputs(loaded), outputs(model))


def test_2020_r2p1d(tmp_path):
    model = randomise_bn(build_model("resnet2p1d", 10, 700))
    path = tmp_path / "r2p1d10_K_200ep.pth"
    torch.save({"epoch": 200, "arch": "resnet2p1d-10", "state_dict": model.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.spec.family == "resnet2p1d"
    torch.testing.assert_close(outputs(loaded), outputs(model))


def test_original_training_checkpoint_with_optimizer_and_scheduler(tmp_path):
    model = build_model("resnet", 10, 5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [50, 100, 150])
    model(torch.randn(2, 3, 8, 32, 32)).sum().backward()
    optimizer.step()
    scheduler.step()
    assert isinstance(scheduler.state_dict()["milestones"], collections.Counter)
    path = tmp_path / "save_10.pth"
    torch.save(
        {
            "epoch": 10,
            "arch": "resnet-10",
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        },
        path,
    )
    loaded = load_model(path)
    torch.testing.assert_close(outputs(loaded), outputs(model))


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18"])
def test_torchvision_state_dicts(tmp_path, name):
    tv = randomise_bn(getattr(torchvision.models.video, name)(weights=None))
    path = tmp_path / f"{name}.pth"
    torch.save(tv.state_dict(), path)
    loaded = load_model(path)
    assert loaded.spec.normalization.name == "torchvision"
    assert loaded.spec.options["no_max_pool"] is True
    assert len(loaded.spec.class_names) == 400
    torch.testing.assert_close(outputs(loaded), outputs(tv), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_cnn3d_format_round_trip_and_convert(tmp_path, suffix):
    model = randomise_bn(build_model("resnet", 10, 3, conv1_t_stride=2, no_max_pool=True))
    names_file = tmp_path / "classes.txt"
    names_file.write_text("walk\nrun\njump\n")
    src = tmp_path / "save_3.pth"
    torch.save(
        {
            "epoch": 3,
            "arch": "resnet-10",
            "state_dict": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": []},
        },
        src,
    )
    dst = tmp_path / f"converted{suffix}"
    # the tensors cannot show the stride or the missing pool: they are given once, then stored
    loaded = load_model(src, conv1_t_stride=2, no_max_pool=True)
    save_model(dst, loaded)
    reloaded = load_model(dst)
    assert reloaded.spec.options["conv1_t_stride"] == 2
    torch.testing.assert_close(outputs(reloaded), outputs(model))
    convert(dst, tmp_path / f"named{suffix}", class_names_file=names_file)
    named = load_model(tmp_path / f"named{suffix}")
    assert named.spec.class_names == ["walk", "run", "jump"]
    assert named.spec.options["no_max_pool"] is True
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_pickles_that_run_code(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {}, "x": Evil()}, f)
    with pytest.raises(CheckpointError, match=r"evil.pth: refused.*weights_only"):
        load_model(path)
    path2 = tmp_path / "evil2.pth"
    torch.save({"state_dict": build_model("resnet", 10, 2).state_dict(), "opts": Evil()}, path2)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(path2)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing.pth: no such file"):
        load_model(tmp_path / "missing.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pth: the file is empty"):
        load_model(tmp_path / "empty.pth")
    (tmp_path / "notes.pth").write_text("hello, I am a text file\n")
    with pytest.raises(CheckpointError, match=r"notes.pth: a text file .*, not a checkpoint"):
        load_model(tmp_path / "notes.pth")
    good = tmp_path / "good.pth"
    torch.save(build_model("resnet", 10, 2).state_dict(), good)
    data = good.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated.pth: not a readable"):
        load_model(tmp_path / "truncated.pth")
    assert zipfile.is_zipfile(good)
    torch.save({"epoch": 1, "lr": 0.1}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match=r"nostate.pth: a dict with keys"):
        load_model(tmp_path / "nostate.pth")
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match=r"foreign.pth: does not look like .*encoder.weight"):
        load_model(tmp_path / "foreign.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(CheckpointError, match=r"bad.safetensors: not a readable safetensors"):
        load_model(tmp_path / "bad.safetensors")


def test_mismatch_names_first_key_and_both_shapes(tmp_path):
    state = build_model("resnet", 10, 4).state_dict()
    state["layer2.0.bn2.running_var"] = torch.ones(7)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(
        CheckpointError,
        match=r"odd.pth: looks like resnet-10 .*layer2.0.bn2.running_var has shape \(7,\) in the file and \(128,\)",
    ):
        load_model(tmp_path / "odd.pth")


def test_refusal_names_the_object_and_weights_only_is_asked_for(tmp_path, monkeypatch):
    import argparse

    path = tmp_path / "with_opts.pth"
    state = build_model("resnet", 10, 2).state_dict()
    torch.save({"state_dict": state, "opts": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match=r"refused: .*Python objects \(argparse.Namespace\)"):
        load_model(path)
    # weights_only=True is asked for explicitly, whatever torch.load's default is
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    torch.save(state, tmp_path / "plain.pth")
    load_model(tmp_path / "plain.pth")
    assert seen["weights_only"] is True


@pytest.mark.parametrize("key", ["state_dict", "model", "model_state"])
def test_weights_nested_under_the_usual_keys_load(tmp_path, key):
    model = randomise_bn(build_model("resnet", 10, 3))
    torch.save({"epoch": 5, key: model.state_dict()}, tmp_path / "m.pth")
    torch.testing.assert_close(outputs(load_model(tmp_path / "m.pth")), outputs(model))


def test_the_preset_follows_the_era_of_the_file(tmp_path):
    # 2018: no num_batches_tracked, no scheduler -> 0-255 minus the ActivityNet mean;
    # either sign of the 2020 code -> the kinetics preset on [0, 1]
    state = build_model("resnet", 10, 3).state_dict()
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    cases = {
        "old.pth": ({"state_dict": old}, "hara2018"),
        "scheduler.pth": ({"state_dict": old, "scheduler": {}}, "kinetics"),
        "tracked.pth": ({"state_dict": state}, "kinetics"),
    }
    for name, (obj, preset) in cases.items():
        torch.save(obj, tmp_path / name)
        assert load_model(tmp_path / name).spec.normalization.name == preset, name


def test_an_unexpected_extra_tensor_is_named(tmp_path):
    state = build_model("resnet", 10, 4).state_dict()
    state["head.extra.weight"] = torch.zeros(2, 3)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(
        CheckpointError, match=r"extra.pth: .*unexpected key head.extra.weight with shape \(2, 3\)"
    ):
        load_model(tmp_path / "extra.pth")


def test_a_wrapped_model_is_saved_without_its_wrapper(tmp_path):
    model = randomise_bn(build_model("resnet", 10, 3))
    wrapper = torch.nn.Module()
    wrapper.module = model  # what DataParallel / DDP hold
    save_model(tmp_path / "w.safetensors", wrapper)
    torch.testing.assert_close(outputs(load_model(tmp_path / "w.safetensors")), outputs(model))


def test_densenet_features_without_a_classifier_name_the_missing_head(tmp_path):
    model = build_model("densenet", 121, 400)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    torch.save(state, tmp_path / "features_only.pth")
    # the head is named as what is missing, with the shape of a 400-class head
    with pytest.raises(CheckpointError, match=r"no classifier.weight .*\(400, 1024\)"):
        load_model(tmp_path / "features_only.pth")
    resnet = build_model("resnet", 10, 400).state_dict()
    torch.save({k: v for k, v in resnet.items() if not k.startswith("fc.")}, tmp_path / "r.pth")
    with pytest.raises(CheckpointError, match=r"no fc.weight .*\(400, 512\)"):
        load_model(tmp_path / "r.pth")


@pytest.mark.parametrize(
    "family,depth,options",
    [
        ("resnet", 10, {"widen_factor": 0.5}),
        ("resnet", 50, {"widen_factor": 0.5}),
        ("resnet", 18, {"stem_width": 32}),
        ("resnext", 50, {"cardinality": 8}),
        ("resnext", 50, {"cardinality": 2}),  # the fewest groups that are still ResNeXt
        ("wideresnet", 50, {"widen_factor": 1}),
        ("resnet2p1d", 10, {"widen_factor": 0.5, "conv1_t_size": 3}),
        ("resnet2p1d", 18, {}),
    ],
)
def test_a_bare_state_dict_of_any_width_loads_as_the_same_network(tmp_path, family, depth, options):
    # what a user saves with torch.save(model.state_dict()): no spec, only tensors
    model = randomise_bn(build_model(family, depth, 5, **options))
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    loaded = load_model(tmp_path / "bare.pth")
    assert loaded.spec.family == family and loaded.spec.depth == depth
    for key, value in options.items():
        if (family, key, value) != ("wideresnet", "widen_factor", 1):  # the family's default
            assert loaded.spec.options.get(key) == value, key
    torch.testing.assert_close(outputs(loaded), outputs(model))


def test_load_options_fold_names_and_presets(tmp_path):
    from cnn3d.normalization import PRESETS

    # a 2018-era file fine-tuned to 101 classes gets no Kinetics names (only 400-class ones do)
    model = randomise_bn(build_model("resnet", 18, 101, shortcut="A"))
    as_2018_file(model.state_dict(), tmp_path / "ucf101.pth", "resnet-18")
    loaded = load_model(tmp_path / "ucf101.pth")
    assert loaded.spec.normalization.name == "hara2018" and loaded.spec.class_names is None
    # a preset given by name or as an object wins over the guess
    assert load_model(tmp_path / "ucf101.pth", normalization="0.5").spec.normalization.name == "0.5"
    custom = PRESETS["torchvision"]
    assert load_model(tmp_path / "ucf101.pth", normalization=custom).spec.normalization is custom
    # inference loading folds BatchNorm: fewer BatchNorm layers, the same outputs
    folded = load_model(tmp_path / "ucf101.pth", fold_bn=True)
    assert folded.folded_bn == sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    torch.testing.assert_close(outputs(folded), outputs(model), rtol=1e-4, atol=1e-5)
