"""pytorchvideo's hub X3D files (`X3D_XS.pyth`, `X3D_S.pyth`, `X3D_M.pyth`, `X3D_L.pyth`: the
weights under `model_state`, which `load_model` unwraps): pytorchvideo's `blocks.N...` keys read
into cnn3d's `X3D`.

XS, S and M have the same tensors; only the clip they were trained on differs (4x160, 13x160,
16x224), and with it the head's averaging kernel (`models/x3d.py`). The file name tells them
apart (the hub's names, any case); a file named otherwise is read as M, and its release name says
so. L has more blocks (25 in stage 3, not 11).
"""

from __future__ import annotations

import re

from ..x3d import VARIANTS
from . import LAYOUTS, Layout, Release, State

# pytorchvideo key (after `blocks.`) -> cnn3d key. pytorchvideo's stem module holds its spatial
# conv in the slot named `conv_t` and the temporal one in `conv_xy`: swapped here.
_RENAMES = [
    (r"^0\.conv\.conv_t\.", "stem.conv_xy."),
    (r"^0\.conv\.conv_xy\.", "stem.conv_t."),
    (r"^0\.norm\.", "stem.bn."),
    (r"^([1-4])\.res_blocks\.(\d+)\.branch1_conv\.", r"layer\1.\2.downsample.0."),
    (r"^([1-4])\.res_blocks\.(\d+)\.branch1_norm\.", r"layer\1.\2.downsample.1."),
    (r"^([1-4])\.res_blocks\.(\d+)\.branch2\.conv_([abc])\.", r"layer\1.\2.conv_\3."),
    (r"^([1-4])\.res_blocks\.(\d+)\.branch2\.norm_([ac])\.", r"layer\1.\2.bn_\3."),
    (r"^([1-4])\.res_blocks\.(\d+)\.branch2\.norm_b\.0\.", r"layer\1.\2.bn_b."),
    (r"^([1-4])\.res_blocks\.(\d+)\.branch2\.norm_b\.1\.block\.0\.", r"layer\1.\2.se.fc1."),
    (r"^([1-4])\.res_blocks\.(\d+)\.branch2\.norm_b\.1\.block\.2\.", r"layer\1.\2.se.fc2."),
    (r"^5\.pool\.pre_conv\.", "conv5."),
    (r"^5\.pool\.pre_norm\.", "bn5."),
    (r"^5\.pool\.post_conv\.", "lin5."),
    (r"^5\.proj\.", "fc."),
]
_NAMED = re.compile(r"x3d[_-]?(xs|s|m|l)(?![a-z])", re.IGNORECASE)
# variant -> (frames, every n-th frame, crop): the input pytorchvideo's torch.hub page feeds XS, S
# and M (short side scaled to the crop, centre crop, 30 fps); the hub README's sample rates. L is
# not on that page: its training crop.
HUB_INPUT = {"xs": (4, 12, 182), "s": (13, 6, 182), "m": (16, 5, 256), "l": (16, 5, 312)}


def _shape(state: State, key: str):
    value = state.get(key)
    return tuple(value.shape) if value is not None else None


def matches(state: State) -> bool:
    return (
        _shape(state, "blocks.0.conv.conv_t.weight") == (24, 3, 1, 3, 3)
        and _shape(state, "blocks.0.conv.conv_xy.weight") == (24, 1, 5, 1, 1)
        and _shape(state, "blocks.5.pool.post_conv.weight") == (2048, 432, 1, 1, 1)
        and "blocks.5.proj.weight" in state
    )


def _rename(key: str) -> str:
    tail = key[len("blocks.") :]
    for pattern, replacement in _RENAMES:
        renamed, n = re.subn(pattern, replacement, tail)
        if n:
            return renamed
    return key  # left as is: `load_model` then names it as an unexpected key


def read(state: State, filename: str) -> Release:
    stage3 = {m.group(1) for k in state if (m := re.match(r"blocks\.3\.res_blocks\.(\d+)\.", k))}
    named = _NAMED.search(filename)
    how = ""
    if len(stage3) == VARIANTS["l"][2][2]:
        variant = "l"
    elif named and named.group(1).lower() != "l":
        variant = named.group(1).lower()
    else:
        variant = "m"
        how = " (XS, S and M have the same tensors and the file name names none: read as M)"
    clip_length, t_stride, crop_size = HUB_INPUT[variant]
    return Release(
        name=f"pytorchvideo hub X3D-{variant.upper()} ({clip_length}x{t_stride}, {crop_size}){how}",
        family="x3d",
        depth=variant,
        n_classes=int(state["blocks.5.proj.weight"].shape[0]),
        state={_rename(k): v for k, v in state.items()},
        normalization="pytorchvideo",
        class_names="kinetics400" if state["blocks.5.proj.weight"].shape[0] == 400 else None,
        clip_length=clip_length,
        sample_size=crop_size,
        t_stride=t_stride,
    )


LAYOUTS.append(Layout("pytorchvideo-x3d", matches, read))
