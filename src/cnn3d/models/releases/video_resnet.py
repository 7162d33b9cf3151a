"""Releases in torchvision's `VideoResNet` keys that the generic torchvision reading cannot
take: MC3 (torchvision `mc3_18`), R(2+1)D-34 from IG-65M (moabitcoin/ig65m-pytorch, Caffe2
weights: BatchNorm eps 1e-3, the second (2+1)D pair of each stage's first block sized from its
own widths) and the backbones HumamAlwassel/TSP trains (its checkpoint's `model` dict, the
backbone under `features.`, heads `fc1`/`fc2` (TSP) or `fc` (TAC)).
"""

from __future__ import annotations

import re

from ..mc3 import MC3_DEPTHS
from ..resnet import DEPTHS
from ..resnet2p1d import mid_width
from . import LAYOUTS, Layout, Release, State

CAFFE2_BN_EPS = 1e-3  # ig65m-pytorch and TSP set it on every BatchNorm of R(2+1)D-34


def to_cnn3d_keys(state: State) -> State:
    """torchvision VideoResNet keys -> cnn3d's ResNet / ResNet2p1D keys (same tensors)."""
    two_plus_one = state["stem.0.weight"].shape[2] == 1
    stem = (
        {"stem.0.": "conv1_s.", "stem.1.": "bn1_s.", "stem.3.": "conv1_t.", "stem.4.": "bn1_t."}
        if two_plus_one
        else {"stem.0.": "conv1.", "stem.1.": "bn1."}
    )
    if two_plus_one:  # convK.0.0 / .0.1 / .0.3 / .1: spatial conv, its BN, temporal conv, BN
        rules = [(r"\.conv(\d)\.0\.0\.", r".conv\1_s."), (r"\.conv(\d)\.0\.1\.", r".bn\1_s.")]
        rules += [(r"\.conv(\d)\.0\.3\.", r".conv\1_t."), (r"\.conv(\d)\.1\.", r".bn\1_t.")]
    else:
        rules = [(r"\.conv(\d)\.0\.", r".conv\1."), (r"\.conv(\d)\.1\.", r".bn\1.")]
    out = {}
    for key, value in state.items():
        for old, new in stem.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _blocks_per_stage(state: State) -> tuple[int, ...]:
    return tuple(
        len({m.group(1) for k in state if (m := re.match(rf"layer{s}\.(\d+)\.conv1\.", k))})
        for s in range(1, 5)
    )


def _basic_depth(state: State) -> int | None:
    if "stem.0.weight" not in state or "layer1.0.conv3.0.weight" in state:
        return None  # not torchvision's VideoResNet of basic blocks
    layers = _blocks_per_stage(state)
    return next((d for d, (k, ls) in DEPTHS.items() if k == "basic" and ls == layers), None)


def _three_d_stages(state: State) -> int | None:
    """How many stages (from the first) have 3x3x3 block convs, the rest 1x3x3 (MC3); None
    where the kernels follow no such pattern or a block is (2+1)D."""
    kinds = []
    for s in range(1, 5):
        conv = state.get(f"layer{s}.0.conv1.0.weight")
        if conv is None or conv.dim() != 5:
            return None
        kinds.append(int(conv.shape[2]))
    n = kinds.count(3)
    return n if kinds == [3] * n + [1] * (4 - n) else None


def _head(state: State) -> int:
    return int(state["fc.weight"].shape[0]) if "fc.weight" in state else 400


# -------------------------------------------------------------------------------------- MC3


def _is_mc3(state: State) -> bool:
    stem = state.get("stem.0.weight")
    if stem is None or stem.dim() != 5 or tuple(stem.shape[2:]) != (3, 7, 7):
        return False
    n = _three_d_stages(state)
    return n is not None and n < 4 and _basic_depth(state) in MC3_DEPTHS


def _read_mc3(state: State, filename: str) -> Release:
    depth, n_3d, n_classes = _basic_depth(state), _three_d_stages(state), _head(state)
    options = {"n_input_channels": int(state["stem.0.weight"].shape[1])}
    if n_3d != 1:
        options["n_3d_stages"] = n_3d
    name = f"torchvision mc{n_3d + 2}_{depth} layout"
    if (depth, n_3d, n_classes) == (18, 1, 400):
        name = "torchvision mc3_18 (Kinetics-400)"
    return Release(
        name=name,
        family="mc3",
        depth=depth,
        n_classes=n_classes,
        state=to_cnn3d_keys(state),
        options=options,
        normalization="torchvision",
        class_names="kinetics400" if n_classes == 400 else None,
    )


# ------------------------------------------------------------------------------ R(2+1)D-34


def _is_caffe2_r2plus1d_34(state: State) -> bool:
    """torchvision keys, (2+1)D, depth 34, 45-wide stem, and layer2's first block's second
    pair sized from (128, 128) (288 wide) as Caffe2's VMZ models are, not from the block's
    input width as torchvision's Conv2Plus1D would (230)."""
    stem_s, stem_t = state.get("stem.0.weight"), state.get("stem.3.weight")
    if stem_s is None or stem_t is None or stem_s.dim() != 5 or stem_s.shape[2] != 1:
        return False
    if tuple(stem_s.shape[:1]) != (45,) or tuple(stem_t.shape[:3]) != (64, 45, 3):
        return False
    second = state.get("layer2.0.conv2.0.0.weight")
    return (
        _basic_depth(state) == 34 and second is not None and second.shape[0] == mid_width(128, 128)
    )


def _r2plus1d_34_options(state: State) -> dict:
    return {
        "n_input_channels": int(state["stem.0.weight"].shape[1]),
        "conv1_t_size": 3,
        "no_max_pool": True,
        "stem_mid_width": 45,
        "bn_eps": CAFFE2_BN_EPS,
    }


def _ig65m_clip(filename: str, n_classes: int) -> int | None:
    found = re.search(r"clip(\d+)", filename)
    if found:
        return int(found.group(1))
    return {487: 8, 359: 32}.get(n_classes)  # the README's IG-65M pretraining heads


def _read_ig65m(state: State, filename: str) -> Release:
    n_classes = _head(state)
    clip = _ig65m_clip(filename, n_classes)
    data = "IG-65M -> Kinetics-400" if n_classes == 400 else f"IG-65M ({n_classes} classes)"
    frames = f"{clip}-frame clips" if clip else "clip length not in the file name"
    return Release(
        name=f"moabitcoin/ig65m-pytorch R(2+1)D-34, {data}, {frames}",
        family="resnet2p1d",
        depth=34,
        n_classes=n_classes,
        state=to_cnn3d_keys(state),
        options=_r2plus1d_34_options(state),
        normalization="torchvision",
        class_names="kinetics400" if n_classes == 400 else None,
        clip_length=clip,
    )


# -------------------------------------------------------------------------------------- TSP


def _tsp_parts(state: State) -> tuple[State, str] | None:
    """(the backbone's weights in torchvision keys, the head's name) of a TSP `model` dict."""
    heads = {k.split(".")[0] for k in state if not k.startswith("features.")}
    if heads not in ({"fc1", "fc2"}, {"fc"}):
        return None
    head = "fc1" if "fc1" in heads else "fc"
    backbone = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    backbone["fc.weight"], backbone["fc.bias"] = state[f"{head}.weight"], state[f"{head}.bias"]
    return backbone, head


def _is_tsp(state: State) -> bool:
    parts = _tsp_parts(state)
    return parts is not None and _is_caffe2_r2plus1d_34(parts[0])


def _read_tsp(state: State, filename: str) -> Release:
    backbone, head = _tsp_parts(state)
    n_classes = _head(backbone)
    kind = "TSP (heads fc1: action, fc2: temporal region, not loaded)" if head == "fc1" else "TAC"
    return Release(
        name=f"HumamAlwassel/TSP R(2+1)D-34, {kind}; head {head}, {n_classes} classes",
        family="resnet2p1d",
        depth=34,
        n_classes=n_classes,
        state=to_cnn3d_keys(backbone),
        options=_r2plus1d_34_options(backbone),
        normalization="torchvision",
        clip_length=16,
    )


LAYOUTS.append(Layout("torchvision mc3", _is_mc3, _read_mc3))
LAYOUTS.append(Layout("ig65m r2plus1d_34", _is_caffe2_r2plus1d_34, _read_ig65m))
LAYOUTS.append(Layout("TSP r2plus1d_34", _is_tsp, _read_tsp))
