"""pytorchvideo's model-zoo `.pyth` files of its hub ResNets and SlowFast (`slow_r50`, `c2d_r50`,
`i3d_r50`, `r2plus1d_r50`, `csn_r101`, `slowfast_r50`, `slowfast_r101`), read without
pytorchvideo.

The weights sit under `model_state` (unwrapped before the layouts are tried) in pytorchvideo's
`Net` keys: `blocks.0` the stem, `blocks.k.res_blocks.i.*` the stages (C2D and I3D have a
parameter-free max-pool at `blocks.2`), `blocks.N.proj` the head; SlowFast's
`blocks.k.multipathway_blocks.{0,1}` (slow, fast) and `blocks.k.multipathway_fusion`. Which
network a file holds is read from its tensors (stem kernel, conv_b's kind, the pool's gap
in the block numbers), then every key and shape is checked against that network.
"""

from __future__ import annotations

import re

import torch

from ..pv_resnet import STAGE_BLOCKS, VARIANTS
from . import LAYOUTS, Layout, Release, State

# family -> (hub name without its depth, frames between a clip's frames in the hub's release)
HUB = {
    "slow": ("slow_r", 8),
    "c2d": ("c2d_r", 8),
    "i3d_r": ("i3d_r", 8),
    "r2plus1d_r": ("r2plus1d_r", 4),
    "csn": ("csn_r", 2),
    "slowfast": ("slowfast_r", 2),
}
HUB_FILES = {"slow_r50", "c2d_r50", "i3d_r50", "r2plus1d_r50", "csn_r101", "slowfast_r50",
             "slowfast_r101"}  # fmt: skip

_STAGE = re.compile(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(.+)$")
_PATH = re.compile(r"blocks\.(\d+)\.multipathway_blocks\.([01])\.(.+)$")
_FUSE = re.compile(r"blocks\.(\d+)\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(.+)$")
_HEAD = re.compile(r"blocks\.(\d+)\.proj\.(weight|bias)$")


def _single(state: State) -> dict | None:
    """pytorchvideo's single-pathway keys -> cnn3d's (`stem`, `layerN.i`, `fc`), or None."""
    stages = sorted({int(m.group(1)) for k in state if (m := _STAGE.match(k))})
    heads = {int(m.group(1)) for k in state if (m := _HEAD.match(k))}
    if len(stages) != 4 or len(heads) != 1 or stages[0] != 1:
        return None
    out = {}
    for key, value in state.items():
        if key.startswith("blocks.0.") and key.split(".")[2] in ("conv", "norm"):
            out["stem." + key[len("blocks.0.") :]] = value
        elif m := _STAGE.match(key):
            out[f"layer{stages.index(int(m.group(1))) + 1}.{m.group(2)}.{m.group(3)}"] = value
        elif m := _HEAD.match(key):
            out[f"fc.{m.group(2)}"] = value
        else:
            return None
    out["_pool_gap"] = stages == [1, 3, 4, 5]  # a max-pool at blocks.2 (C2D, I3D)
    return out if stages in ([1, 2, 3, 4], [1, 3, 4, 5]) and max(heads) == stages[-1] + 1 else None


def _two_pathway(state: State) -> dict | None:
    """pytorchvideo's SlowFast keys -> cnn3d's (`slow.*`, `fast.*`, `fuse.k`, `fc`), or None."""
    out = {}
    for key, value in state.items():
        if m := _PATH.match(key):
            k, path, rest = int(m.group(1)), ("slow", "fast")[int(m.group(2))], m.group(3)
            if k == 0:
                out[f"{path}.stem.{rest}"] = value
            elif 1 <= k <= 4 and rest.startswith("res_blocks."):
                out[f"{path}.layer{k}.{rest[len('res_blocks.') :]}"] = value
            else:
                return None
        elif (m := _FUSE.match(key)) and int(m.group(1)) <= 3:
            part = "conv" if m.group(2) == "conv_fast_to_slow" else "norm"
            out[f"fuse.{m.group(1)}.{part}.{m.group(3)}"] = value
        elif (m := _HEAD.match(key)) and m.group(1) == "6":
            out[f"fc.{m.group(2)}"] = value
        else:
            return None
    return out


def _depth(state: dict, prefix: str) -> int | None:
    counts = tuple(
        len({m.group(1) for k in state if (m := re.match(rf"{prefix}layer{s}\.(\d+)\.", k))})
        for s in range(1, 5)
    )
    return next((d for d, blocks in STAGE_BLOCKS.items() if blocks == counts), None)


def _family(mapped: dict) -> str | None:
    """Which single-pathway variant the tensors are, before the full check."""
    if "layer1.0.branch2.conv_b.conv_t.weight" in mapped:
        return "r2plus1d_r"
    conv_b = mapped.get("layer1.0.branch2.conv_b.weight")
    stem = mapped.get("stem.conv.weight")
    if conv_b is None or stem is None or stem.dim() != 5:
        return None
    if conv_b.shape[1] == 1 and conv_b.shape[0] > 1:
        return "csn"
    found = {(1, False): "slow", (1, True): "c2d", (5, True): "i3d_r"}
    return found.get((stem.shape[2], mapped["_pool_gap"]))


def _identify(state: State) -> tuple[str, int, dict, State] | None:
    """(family, depth, options, state in cnn3d's keys) where every key and shape agrees with
    that network, else None."""
    if "blocks.0.conv.weight" in state:
        mapped = _single(state)
        family = mapped and _family(mapped)
        if not family or mapped.pop("_pool_gap") != VARIANTS[family].stage1_pool:
            return None
        depth = _depth(mapped, "")
        stem = mapped["stem.conv.weight"]
        options = {"width": stem.shape[0], "n_input_channels": stem.shape[1]}
    elif "blocks.0.multipathway_blocks.0.conv.weight" in state:
        mapped = _two_pathway(state)
        if (
            not mapped
            or "fuse.0.conv.weight" not in mapped
            or "fast.stem.conv.weight" not in mapped
        ):
            return None
        family, depth = "slowfast", _depth(mapped, "slow.")
        slow, fast = mapped["slow.stem.conv.weight"], mapped["fast.stem.conv.weight"]
        options = {
            "width": slow.shape[0],
            "n_input_channels": slow.shape[1],
            "beta_inv": max(slow.shape[0] // max(fast.shape[0], 1), 1),
            "fusion_kernel": mapped["fuse.0.conv.weight"].shape[2],
        }
    else:
        return None
    if depth is None or "fc.weight" not in mapped:
        return None
    options = {k: int(v) for k, v in options.items()}
    return (family, depth, options, mapped) if _agrees(family, depth, options, mapped) else None


def _agrees(family: str, depth: int, options: dict, state: State) -> bool:
    from ..zoo import FAMILIES

    if depth not in FAMILIES[family].depths:
        return False
    n_classes = state["fc.weight"].shape[0]
    try:
        with torch.device("meta"):
            model = FAMILIES[family].builder(depth, n_classes=n_classes, **options)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return False
    expected = {k: v.shape for k, v in model.state_dict().items()}

    def weights(keys):
        return {k for k in keys if not k.endswith("num_batches_tracked")}

    if weights(state) != weights(expected) or not set(state) <= set(expected):
        return False
    return all(state[k].shape == expected[k] for k in state)


def _matches(state: State) -> bool:
    return _identify(state) is not None


def _read(state: State, filename: str) -> Release:
    family, depth, options, mapped = _identify(state)
    stem, t_stride = HUB[family]
    hub_name = f"{stem}{depth}"
    defaults = {"width": 64, "n_input_channels": 3, "beta_inv": 8}
    if family == "slowfast":
        defaults["fusion_kernel"] = 7 if depth == 50 else 5
    options = {k: v for k, v in options.items() if defaults.get(k) != v}
    hub = hub_name in HUB_FILES and not options
    n_classes = int(mapped["fc.weight"].shape[0])
    return Release(
        name=f"pytorchvideo hub {hub_name} (.pyth)" if hub else f"pytorchvideo {hub_name} (.pyth)",
        family=family,
        depth=depth,
        n_classes=n_classes,
        state=mapped,
        options=options,
        normalization="pytorchvideo",
        class_names="kinetics400" if n_classes == 400 else None,
        t_stride=t_stride,
    )


LAYOUTS.append(Layout("pytorchvideo", _matches, _read))
