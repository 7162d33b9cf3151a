"""C3D's Sports-1M weights as DavideA/c3d-pytorch ships them (`c3d.pickle`, a plain state_dict
saved with torch.save): `conv1 ... conv5b`, `fc6`, `fc7`, `fc8`, which are cnn3d's names too.
Input: 0-255 BGR minus the Sports-1M mean (c3d-pytorch #1), 16 x 112 x 112."""

from __future__ import annotations

from ..c3d import CONVS
from . import LAYOUTS, Layout, Release, State

SHAPES = {f"{name}.weight": (c_out, c_in, 3, 3, 3) for name, c_in, c_out, _ in CONVS[1:]}
SHAPES |= {"fc6.weight": (4096, 8192), "fc7.weight": (4096, 4096)}


def _matches(state: State) -> bool:
    names = [name for name, *_ in CONVS] + ["fc6", "fc7", "fc8"]
    expected = {f"{n}.{p}" for n in names for p in ("weight", "bias")}
    if set(state) != expected:
        return False
    conv1, fc8 = state["conv1.weight"], state["fc8.weight"]
    return (
        all(tuple(state[k].shape) == shape for k, shape in SHAPES.items())
        and tuple(conv1.shape) == (64, conv1.shape[1], 3, 3, 3)
        and tuple(fc8.shape) == (fc8.shape[0], 4096)
    )


def _read(state: State, filename: str) -> Release:
    n_classes = int(state["fc8.weight"].shape[0])
    channels = int(state["conv1.weight"].shape[1])
    return Release(
        name="DavideA/c3d-pytorch C3D (Sports-1M, Caffe weights), input 0-255 BGR minus the "
        "Sports-1M mean",
        family="c3d",
        depth=8,
        n_classes=n_classes,
        state=dict(state),
        options={} if channels == 3 else {"n_input_channels": channels},
        normalization="c3d",
        clip_length=16,
        sample_size=112,
    )


LAYOUTS.append(Layout("c3d-pytorch", _matches, _read))
