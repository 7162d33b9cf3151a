"""Make the goldens of pytorchvideo's X3D and Tushar-N's I3D ResNet-50 by running the reference
code on seeded weights and clips (see each golden's MAKE.md for the commits).

    python tests/data/goldens/make_x3d.py PYTORCHVIDEO FVCORE PYTORCH_RESNET3D GOWTHAM_EXTRACTOR

Each argument is a checkout (or `git archive`) of facebookresearch/pytorchvideo,
facebookresearch/fvcore (only `fvcore/nn/` is used), Tushar-N/pytorch-resnet3d and
GowthamGottimukkala/I3D_Feature_Extraction_resnet. Of fvcore, pytorchvideo's models need only
`fvcore/nn/squeeze_excitation.py` and `fvcore/nn/weight_init.py` (without fvcore's `__init__.py`s,
which import more: Python reads the folder as a namespace package).
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from seeded import seeded_clip, seeded_state  # noqa: E402


def shapes_of(model, drop_counters=False) -> dict:
    return {
        k: list(v.shape)
        for k, v in model.state_dict().items()
        if not (drop_counters and k.endswith("num_batches_tracked"))
    }


def write(name: str, shapes: dict, arrays: dict) -> None:
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    (folder / "shapes.json").write_text(json.dumps(shapes, indent=0) + "\n")
    np.savez_compressed(folder / "golden.npz", **arrays)
    print(name, {k: v.shape for k, v in arrays.items()})


def x3d_run(model, clip):
    """(logits, features): features are the head's ProjectedPool output (lin5 after ReLU)
    averaged over its positions, the 2048 that `proj` maps to the logits."""
    seen = []
    hook = model.blocks[5].pool.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        logits = model(clip)
    hook.remove()
    return logits, seen[0].mean(dim=(2, 3, 4))


def make_x3d(pytorchvideo: Path, fvcore: Path) -> None:
    sys.path[:0] = [str(pytorchvideo), str(fvcore)]
    from pytorchvideo.models.x3d import create_x3d

    # the hub's arguments (pytorchvideo/models/hub/x3d.py)
    hub = {
        "xs": {"input_clip_length": 4, "input_crop_size": 160},
        "s": {"input_clip_length": 13, "input_crop_size": 160},
        "m": {"input_clip_length": 16, "input_crop_size": 224},
        "l": {"input_clip_length": 16, "input_crop_size": 312, "depth_factor": 5.0},
    }
    models = {v: create_x3d(**kw).eval() for v, kw in hub.items()}
    shapes = shapes_of(models["xs"])
    assert shapes_of(models["s"]) == shapes == shapes_of(models["m"])  # XS, S, M: same tensors
    state = seeded_state(shapes, seed=0)
    arrays = {}
    # XS at its training clip; S on the hub tutorial's larger crop (182: the head's fixed kernel
    # then leaves a 2x2 map whose logits are averaged). M differs from them only in its kernel.
    for variant, clip_shape, seed in (
        ("xs", (2, 3, 4, 160, 160), 1),
        ("s", (1, 3, 13, 182, 182), 2),
    ):
        models[variant].load_state_dict(state)
        clip = seeded_clip(clip_shape, seed)
        logits, features = x3d_run(models[variant], clip)
        arrays[f"{variant}_logits"], arrays[f"{variant}_features"] = (
            logits.numpy(),
            features.numpy(),
        )
        arrays[f"{variant}_clip"] = np.array([*clip_shape, seed])
    arrays["weights_seed"] = np.array(0)
    write("pytorchvideo-x3d", shapes, arrays)

    shapes = shapes_of(models["l"])
    models["l"].load_state_dict(seeded_state(shapes, seed=0))
    clip_shape, seed = (1, 3, 16, 312, 312), 1
    logits, features = x3d_run(models["l"], seeded_clip(clip_shape, seed))
    write(
        "pytorchvideo-x3d-l",
        shapes,
        {
            "logits": logits.numpy(),
            "features": features.numpy(),
            "clip": np.array([*clip_shape, seed]),
            "weights_seed": np.array(0),
        },
    )


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_i3d_resnet(resnet3d: Path, gowtham: Path) -> None:
    tushar = load_module("tushar_resnet", resnet3d / "models" / "resnet.py")
    extractor = load_module("gowtham_resnet", gowtham / "resnet.py")
    for name, use_nl, clip_shape in (
        ("tushar-n-i3d-resnet50", False, (1, 3, 16, 96, 96)),
        ("tushar-n-i3d-resnet50-nl", True, (1, 3, 16, 96, 96)),
    ):
        classifier = tushar.I3Res50(num_classes=400, use_nl=use_nl).eval()
        # utils/convert_weights.py saves the Caffe2 blobs in the model's keys, without
        # BatchNorm's num_batches_tracked
        shapes = shapes_of(classifier, drop_counters=True)
        state = seeded_state(shapes, seed=0)
        classifier.load_state_dict(state)
        clip = seeded_clip(clip_shape, 1)
        with torch.no_grad():
            logits, _ = classifier({"frames": clip})
        arrays = {"logits": logits.numpy(), "clip": np.array([*clip_shape, 1])}
        if not use_nl:  # the extractor builds only the baseline (i3_res50)
            features_net = extractor.I3Res50(num_classes=400, use_nl=False).eval()
            features_net.load_state_dict(state)
            with torch.no_grad():
                features = features_net({"frames": clip})  # N x 2048 x 1 x 1 x 1
            arrays["features"] = features[:, :, 0, 0, 0].numpy()
        arrays["weights_seed"] = np.array(0)
        write(name, shapes, arrays)


if __name__ == "__main__":
    torch.set_num_threads(2)
    pytorchvideo, fvcore, resnet3d, gowtham = map(Path, sys.argv[1:5])
    make_x3d(pytorchvideo, fvcore)
    make_i3d_resnet(resnet3d, gowtham)
