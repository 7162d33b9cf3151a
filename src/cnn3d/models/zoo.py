"""The model zoo: family name -> builder and depths, `build_model`, and what each model needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..errors import UsageError
from ..normalization import PRESETS, Normalization
from .c3d import build_c3d
from .densenet import BLOCK_CONFIGS, build_densenet
from .i3d import build_i3d
from .i3d_nl import build_i3d_nl
from .mc3 import MC3_DEPTHS, build_mc3
from .preact import build_preresnet
from .pv_resnet import build_c2d, build_csn, build_i3d_r, build_r2plus1d_r, build_slow
from .resnet import BOTTLENECK_DEPTHS, DEPTHS, build_resnet
from .resnet2p1d import build_resnet2p1d
from .resnext import build_resnext
from .s3d import build_s3d
from .slowfast import build_slowfast
from .wide import build_wideresnet
from .x3d import VARIANTS as X3D_VARIANTS
from .x3d import build_x3d


@dataclass(frozen=True)
class Family:
    """One network family of the zoo: how to build it, its depths (ints, or variant names such
    as X3D's "s" and "m"), and the input its released weights expect (clip size, normalisation
    preset, channels), which `cnn3d models` and a fresh `build_model` use."""

    builder: Callable[..., nn.Module]
    depths: tuple
    default_depth: int | str = 18
    clip_length: int = 16
    sample_size: int = 112
    normalization: str = "kinetics"
    inputs: dict = field(default_factory=dict)  # depth -> (frames, size) where a depth differs

    def clip_of(self, depth) -> tuple[int, int]:
        """(frames, size) of the clip `depth`'s weights are trained on."""
        return self.inputs.get(depth, (self.clip_length, self.sample_size))


FAMILIES: dict[str, Family] = {
    "resnet": Family(build_resnet, tuple(DEPTHS)),
    "preresnet": Family(build_preresnet, tuple(DEPTHS)),
    "wideresnet": Family(build_wideresnet, BOTTLENECK_DEPTHS, 50),
    "resnext": Family(build_resnext, BOTTLENECK_DEPTHS, 101),
    "densenet": Family(build_densenet, tuple(BLOCK_CONFIGS), 121),
    "resnet2p1d": Family(build_resnet2p1d, tuple(DEPTHS)),
    "i3d": Family(build_i3d, ("inception_v1",), "inception_v1", 64, 224, "i3d"),
    "x3d": Family(
        build_x3d,
        tuple(X3D_VARIANTS),
        "m",
        16,
        224,
        "pytorchvideo",
        inputs={v: (frames, size) for v, (frames, size, _) in X3D_VARIANTS.items()},
    ),  # fmt: skip
    "i3d_nl": Family(build_i3d_nl, (50,), 50, 16, 224, "pytorchvideo"),
    # pytorchvideo's hub ResNets and SlowFast (docs/backbones.md): 256 x 256 test crops
    "slow": Family(build_slow, (50,), 50, 8, 256, "pytorchvideo"),
    "c2d": Family(build_c2d, (50,), 50, 8, 256, "pytorchvideo"),
    "i3d_r": Family(build_i3d_r, (50,), 50, 8, 256, "pytorchvideo"),
    "csn": Family(build_csn, (50, 101), 101, 32, 256, "pytorchvideo"),
    "r2plus1d_r": Family(build_r2plus1d_r, (50,), 50, 16, 256, "pytorchvideo"),
    "slowfast": Family(build_slowfast, (50, 101), 50, 32, 256, "pytorchvideo"),
    "c3d": Family(build_c3d, (8,), 8, 16, 112, "c3d"),
    "mc3": Family(build_mc3, MC3_DEPTHS, 18, 16, 112, "torchvision"),
    "s3d": Family(build_s3d, (22,), 22, 64, 224, "torchvision"),
}
ALIASES = {
    "r3d": "resnet",
    "preact": "preresnet",
    "preact_resnet": "preresnet",
    "wide_resnet": "wideresnet",
    "wrn": "wideresnet",
    "r2plus1d": "resnet2p1d",
    "r2p1d": "resnet2p1d",
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network and feed it: stored in cnn3d checkpoints.
    Frozen: change it through `load_model`'s arguments or `with_spec` (`dataclasses.replace`)."""

    family: str
    depth: int | str  # an int, or a variant name (X3D's "s", "m"...)
    n_classes: int
    options: dict = field(default_factory=dict)
    normalization: Normalization = PRESETS["kinetics"]
    class_names: list[str] | None = None
    clip_length: int = 16
    sample_size: int = 112
    t_stride: int = 1  # temporal subsampling the clips were trained with
    release: str | None = None  # the public release a foreign checkpoint was recognised as

    @property
    def arch(self) -> str:
        """The original's `arch` string, e.g. `resnet-50`."""
        return f"{self.family}-{self.depth}"

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "depth": self.depth,
            "n_classes": self.n_classes,
            "options": dict(self.options),
            "normalization": self.normalization.to_dict(),
            "class_names": self.class_names,
            "clip_length": self.clip_length,
            "sample_size": self.sample_size,
            "t_stride": self.t_stride,
            "release": self.release,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        return cls(
            family=d["family"],
            depth=depth_of(d["depth"]),
            n_classes=int(d["n_classes"]),
            options=dict(d.get("options") or {}),
            normalization=Normalization.from_dict(d["normalization"]),
            class_names=list(d["class_names"]) if d.get("class_names") else None,
            clip_length=int(d.get("clip_length", 16)),
            sample_size=int(d.get("sample_size", 112)),
            t_stride=int(d.get("t_stride", 1)),
            release=d.get("release"),
        )


def depth_of(value) -> int | str:
    """A depth as stored or typed: "50" -> 50, "m" -> "m"."""
    text = str(value).strip().lower()
    return int(text) if text.isdigit() else text


def canonical_family(family: str) -> str:
    name = family.lower().replace("-", "_")
    name = ALIASES.get(name, name)
    if name not in FAMILIES:
        known = ", ".join(list(FAMILIES) + list(ALIASES))
        raise UsageError(f"unknown model family {family!r}; known: {known}")
    return name


def list_models() -> list[tuple[str, int]]:
    """Every (family, depth) the zoo builds."""
    return [(name, d) for name, family in FAMILIES.items() for d in family.depths]


def build_model(family: str, depth: int, n_classes: int = 400, **options) -> nn.Module:
    """Build a randomly initialised network; `model.spec` records how.

    Options: n_input_channels, conv1_t_size, conv1_t_stride, no_max_pool, shortcut ('A'/'B'),
    widen_factor, cardinality (resnext), stem_width, stem_mid_width and per_block_mid (resnet2p1d).
    """
    name = canonical_family(family)
    depth = depth_of(depth)
    if depth not in FAMILIES[name].depths:
        choices = ", ".join(map(str, FAMILIES[name].depths))
        raise UsageError(f"{name} has no depth {depth}; choose one of {choices}")
    try:
        model = FAMILIES[name].builder(depth, n_classes=int(n_classes), **options)
    except TypeError as error:
        if "unexpected keyword argument" in str(error):
            raise UsageError(f"{name}: {error}".replace("__init__()", "option")) from None
        raise
    native = FAMILIES[name]
    model.spec = ModelSpec(
        name,
        depth,
        int(n_classes),
        dict(options),
        normalization=PRESETS[native.normalization],
        clip_length=native.clip_of(depth)[0],
        sample_size=native.clip_of(depth)[1],
    )
    return model


def with_spec(model: nn.Module, **changes) -> nn.Module:
    """`model` with `model.spec` replaced by a copy carrying `changes` (the one way to change
    what a loaded network expects: class names, clip geometry, normalisation)."""
    model.spec = replace(model.spec, **changes)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(
    family: str, depth, clip_length: int | None = None, size: int | None = None, **options
) -> float:
    """Forward FLOPs (2 x multiply-adds) of one clip, counted on the meta device (no compute);
    the clip is the family's native size unless given."""
    from torch.utils.flop_counter import FlopCounterMode

    native = FAMILIES[canonical_family(family)]
    clip_length = clip_length or native.clip_of(depth_of(depth))[0]
    size = size or native.clip_of(depth_of(depth))[1]
    with torch.device("meta"):
        model = build_model(family, depth, **options).eval()
        x = torch.empty(1, options.get("n_input_channels", 3), clip_length, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


CHANNEL_KINDS = {2: "flow (x, y)", 3: "RGB"}


def input_channels(model: nn.Module) -> int:
    """Channels the network's first convolution takes (3: RGB, 2: flow); an exported model
    (`export.Exported`) says it itself."""
    if not isinstance(model, nn.Module):
        return model.channels
    return next(m for m in model.modules() if isinstance(m, nn.Conv3d)).in_channels


def check_input_channels(model: nn.Module, channels: int, where) -> None:
    """A named error, before any work, where data and model disagree on RGB (3 channels)
    against flow (2); `where` names the data."""
    expected = input_channels(model)
    if channels != expected:
        raise UsageError(
            f"{where}: {CHANNEL_KINDS.get(channels, channels)} input, but the model takes "
            f"{CHANNEL_KINDS.get(expected, expected)} ({expected} channels): flow needs a flow "
            "model (--input flow) and flow_x_/x_ folders or video_u/video_v HDF5 files"
        )
