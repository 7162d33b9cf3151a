"""S3D releases: torchvision's `s3d` (Kinetics-400; `features.N...`, `classifier.1`) and
kylemin/S3D's `S3D_kinetics400.pt` (`base.N...`, `fc.0`), also what v-iashin/video_features
ships as `S3D_kinetics400_torchified.pt`. Both are the same network; torchvision pools 2x7x7
windows, kylemin 2 x the whole map (the same at 224 pixels)."""

from __future__ import annotations

import re

from ..s3d import MIXED
from . import LAYOUTS, Layout, Release, State

# index in the references' Sequential -> cnn3d's name (the rest are max-pools)
NAMES = {0: "conv1", 2: "conv2", 3: "conv3"} | dict(
    zip((5, 6, 8, 9, 10, 11, 12, 14, 15), MIXED, strict=True)
)
PARAM = r"(weight|bias|running_mean|running_var|num_batches_tracked)$"


def _rename(state: State, prefix: str, rules: list[tuple[str, str]], head: str) -> State:
    out = {}
    for key, value in state.items():
        if key.startswith(head + "."):
            out["classifier." + key.rsplit(".", 1)[1]] = (
                value.flatten(1) if value.dim() > 1 else value
            )
            continue
        index, rest = key[len(prefix) :].split(".", 1)
        key = f"{NAMES[int(index)]}.{rest}"
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _sep(match: re.Match) -> str:
    part = ("spatial", "temporal")[int(match.group(2))]
    return f"{match.group(1)}.{part}.{('conv', 'bn')[int(match.group(3))]}."


TORCHVISION_RULES = [
    (r"\.branch3\.1\.", ".branch3."),  # drop the max-pool's place
    (r"^(conv[13])\.([01])\.([01])\.", _sep),
    (r"(\.branch[12]\.1)\.([01])\.([01])\.", _sep),
    (r"\.0\." + PARAM, r".conv.\1"),
    (r"\.1\." + PARAM, r".bn.\1"),
]
KYLEMIN_RULES = [
    (r"\.branch0\.0\.", ".branch0."),
    (r"\.branch3\.1\.", ".branch3."),
    (r"\.conv_s\.", ".spatial.conv."),
    (r"\.bn_s\.", ".spatial.bn."),
    (r"\.conv_t\.", ".temporal.conv."),
    (r"\.bn_t\.", ".temporal.bn."),
]


def _is_torchvision(state: State) -> bool:
    stem, head = state.get("features.0.0.0.weight"), state.get("classifier.1.weight")
    return (
        stem is not None
        and tuple(stem.shape[2:]) == (1, 7, 7)
        and head is not None
        and tuple(head.shape[1:]) == (1024, 1, 1, 1)
        and "features.15.branch3.1.0.weight" in state
        and all(k.startswith(("features.", "classifier.1.")) for k in state)
    )


def _is_kylemin(state: State) -> bool:
    stem, head = state.get("base.0.conv_s.weight"), state.get("fc.0.weight")
    return (
        stem is not None
        and tuple(stem.shape[2:]) == (1, 7, 7)
        and head is not None
        and tuple(head.shape[1:]) == (1024, 1, 1, 1)
        and "base.15.branch3.1.conv.weight" in state
        and all(k.startswith(("base.", "fc.0.")) for k in state)
    )


def _release(name, state, n_classes, stem_key, **kwargs) -> Release:
    options = {"n_input_channels": int(state[stem_key].shape[1])}
    return Release(
        name=name,
        family="s3d",
        depth=22,
        n_classes=n_classes,
        state=state,
        options=options | kwargs.pop("options", {}),
        class_names="kinetics400" if n_classes == 400 else None,
        sample_size=224,
        **kwargs,
    )


def _read_torchvision(state: State, filename: str) -> Release:
    n_classes = int(state["classifier.1.weight"].shape[0])
    renamed = _rename(state, "features.", TORCHVISION_RULES, "classifier.1")
    return _release(
        "torchvision s3d (Kinetics-400)" if n_classes == 400 else "torchvision s3d layout",
        renamed,
        n_classes,
        "conv1.spatial.conv.weight",
        normalization="torchvision",
        clip_length=128,  # torchvision's evaluation clip
    )


def _read_kylemin(state: State, filename: str) -> Release:
    """kylemin trained on [-1, 1] input (kylemin/S3D #4); video_features feeds its copy of the
    weights [0, 1] pixels, so its file (by name) gets the preset that reproduces its features."""
    n_classes = int(state["fc.0.weight"].shape[0])
    renamed = _rename(state, "base.", KYLEMIN_RULES, "fc.0")
    video_features = "torchified" in filename
    name = (
        "v-iashin/video_features S3D (kylemin/S3D weights), input [0, 1] as video_features feeds it"
        if video_features
        else "kylemin/S3D (Kinetics-400), input [-1, 1]"
    )
    return _release(
        name,
        renamed,
        n_classes,
        "conv1.spatial.conv.weight",
        normalization="unit" if video_features else "i3d",
        clip_length=64,
        options={"pool_size": None},
    )


LAYOUTS.append(Layout("torchvision s3d", _is_torchvision, _read_torchvision))
LAYOUTS.append(Layout("kylemin S3D", _is_kylemin, _read_kylemin))
