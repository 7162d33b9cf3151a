"""Read every checkpoint layout users bring, infer the network from its tensors, save cnn3d's own.

Supported layouts: the 2018 release (`module.` keys, no `num_batches_tracked`, old DenseNet names,
shortcut A for ResNet-18/34, 64-wide ResNeXt/WRN stems), the 2020 release (ResNet, R(2+1)D, any
class count), the original's `save_N.pth` training files, torchvision's r3d_18 / r2plus1d_18
state_dicts, and cnn3d's own `.pth` / `.safetensors`. Only `torch.load(weights_only=True)` is used.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from dataclasses import replace
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..files import (
    CHECKPOINT_SUFFIXES,
    PICKLE,
    ZIP_ARCHIVE,
    atomic_write,
    folder_given_for_file,
    what_file_is,
)
from ..normalization import PRESETS, Normalization, get_normalization
from . import releases
from .densenet import BLOCK_CONFIGS
from .resnet import DEPTHS
from .zoo import FAMILIES, ModelSpec, build_model, input_channels

FORMAT_NAME = "cnn3d"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------- reading


def read_file(path: str | os.PathLike, map_location="cpu") -> dict:
    """The raw object in a checkpoint file, read without running any pickled code."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(folder_given_for_file(path, "a checkpoint", CHECKPOINT_SUFFIXES))
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if path.suffix == ".safetensors":
        return _read_safetensors(path, map_location)
    other = what_file_is(path)
    if other not in (None, ZIP_ARCHIVE, PICKLE):
        raise CheckpointError(f"{path}: {other}, not a checkpoint")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Weights only load failed" in text or "Unsupported global" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"{path}: refused: the file pickles Python objects{what} that would run code "
                "when loaded; cnn3d loads weights only (torch.load(weights_only=True)). Re-save "
                "just the state_dict (torch.save(model.state_dict(), ...)) where you trust it."
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(text)})") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): "
            f"{_first_line(str(error))}"
        ) from None
    except Exception as error:  # the unpickler raises KeyError, ValueError... on foreign bytes
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint ({type(error).__name__}: {_first_line(str(error))})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a dict of weights")
    return obj


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"


def _read_safetensors(path: Path, map_location) -> dict:
    from safetensors import SafetensorError, safe_open

    device = str(map_location) if map_location is not None else "cpu"
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file: {error}") from None
    obj: dict = {"state_dict": state}
    if FORMAT_NAME in metadata:
        obj.update(json.loads(metadata[FORMAT_NAME]))
    return obj


def unwrap_state_dict(obj: dict, path: Path) -> dict[str, torch.Tensor]:
    """The state_dict inside a wrapper dict (`state_dict` / `model` key) or the dict itself."""
    for key in ("state_dict", "model", "model_state"):
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and _all_tensors(inner):
            return dict(inner)
    if obj and _all_tensors(obj):
        return dict(obj)
    raise CheckpointError(
        f"{path}: a dict with keys {sorted(obj)[:8]} but no state_dict of tensors in it"
    )


def _all_tensors(d: dict) -> bool:
    return all(isinstance(v, torch.Tensor) for v in d.values())


# ------------------------------------------------------------------------------- key normalising


_OLD_DENSE = re.compile(r"(denselayer\d+)\.(norm|conv)\.([12])")


def normalise_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Map any supported naming onto cnn3d's and say which layout it was.

    Layouts: 'cnn3d' (the original's 2020 names, used as is), 'old_densenet', 'torchvision'.
    """
    state = _without_module_prefix(state)
    if "features.conv0.weight" in state:
        renamed = {}
        for k, v in state.items():
            k = k.replace("features.conv0.", "features.conv1.").replace(
                "features.norm0.", "features.norm1."
            )
            renamed[_OLD_DENSE.sub(r"\1.\2\3", k)] = v
        return renamed, "old_densenet"
    if "stem.0.weight" in state:
        return _from_torchvision(state), "torchvision"
    return state, "cnn3d"


_TV_STEM_3D = {"stem.0.": "conv1.", "stem.1.": "bn1."}
_TV_STEM_2P1D = {
    "stem.0.": "conv1_s.",
    "stem.1.": "bn1_s.",
    "stem.3.": "conv1_t.",
    "stem.4.": "bn1_t.",
}


def _from_torchvision(state: dict) -> dict:
    two_plus_one = state["stem.0.weight"].shape[2] == 1
    stem = _TV_STEM_2P1D if two_plus_one else _TV_STEM_3D
    out = {}
    for key, value in state.items():
        new = key
        for old, repl in stem.items():
            if key.startswith(old):
                new = repl + key[len(old) :]
        if two_plus_one:
            # layerL.i.convK.0.0 -> convK_s, .0.1 -> bnK_s, .0.3 -> convK_t, .1 -> bnK_t
            new = re.sub(r"\.conv([12])\.0\.0\.", r".conv\1_s.", new)
            new = re.sub(r"\.conv([12])\.0\.1\.", r".bn\1_s.", new)
            new = re.sub(r"\.conv([12])\.0\.3\.", r".conv\1_t.", new)
            new = re.sub(r"\.conv([12])\.1\.", r".bn\1_t.", new)
        else:
            new = re.sub(r"\.conv([12])\.0\.", r".conv\1.", new)
            new = re.sub(r"\.conv([12])\.1\.", r".bn\1.", new)
        out[new] = value
    return out


# ------------------------------------------------------------------------------------ inference


def infer_architecture(state: dict[str, torch.Tensor], layout: str) -> tuple[str, int, int, dict]:
    """(family, depth, n_classes, options) read from the tensors' names and shapes alone."""
    if "features.conv1.weight" in state:
        return _infer_densenet(state)
    if "conv1_s.weight" in state:
        return _infer_resnet2p1d(state, layout)
    if "conv1.weight" in state and "layer1.0.conv1.weight" in state:
        return _infer_resnet(state, layout)
    raise CheckpointError(
        "does not look like any supported network (no conv1.weight, conv1_s.weight, "
        "features.conv0/conv1.weight or stem.0.weight)"
    )


def _blocks_per_stage(state) -> tuple[int, ...]:
    counts = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        counts.append(len(ids))
    return tuple(counts)


def _depth_for(layers: tuple[int, ...], kind: str) -> int:
    for depth, (k, ls) in DEPTHS.items():
        if k == kind and ls == layers:
            return depth
    raise CheckpointError(f"a {kind} ResNet with {layers} blocks per stage matches no known depth")


def _stem_options(conv: torch.Tensor, layout: str) -> dict:
    options = {"n_input_channels": int(conv.shape[1]), "conv1_t_size": int(conv.shape[2])}
    if layout == "torchvision":
        options["no_max_pool"] = True
    return options


def _infer_resnet(state, layout):
    conv1 = state["conv1.weight"]
    stem_width = int(conv1.shape[0])
    n_classes = int(state["fc.weight"].shape[0]) if "fc.weight" in state else 400
    layers = _blocks_per_stage(state)
    options = _stem_options(conv1, layout)
    options["shortcut"] = "B" if any(".downsample.0.weight" in k for k in state) else "A"
    bottleneck = "layer1.0.conv3.weight" in state
    l2_bn1, l2_conv1 = state["layer2.0.bn1.weight"], state["layer2.0.conv1.weight"]
    preact = l2_bn1.shape[0] == l2_conv1.shape[1] != l2_conv1.shape[0]
    depth = _depth_for(layers, "bottleneck" if bottleneck else "basic")
    if preact:
        return "preresnet", depth, n_classes, options
    if not bottleneck:
        planes = int(state["layer1.0.conv1.weight"].shape[0])
        _set_widen(options, planes / 64, stem_width, planes)
        return "resnet", depth, n_classes, options
    mid = int(state["layer1.0.conv1.weight"].shape[0])
    out = int(state["layer1.0.conv3.weight"].shape[0])
    groups = mid // int(state["layer1.0.conv2.weight"].shape[1])
    if groups > 1:
        planes = out // 2
        options["cardinality"] = groups
        options["stem_width"] = stem_width
        return "resnext", depth, n_classes, options
    if out == 2 * mid:
        options["widen_factor"] = mid / 64
        options["stem_width"] = stem_width
        _tidy_float(options, "widen_factor")
        return "wideresnet", depth, n_classes, options
    _set_widen(options, mid / 64, stem_width, mid)
    return "resnet", depth, n_classes, options


def _set_widen(options, widen, stem_width, first_planes):
    if widen != 1:
        options["widen_factor"] = widen
        _tidy_float(options, "widen_factor")
    if stem_width != first_planes:
        options["stem_width"] = stem_width


def _tidy_float(options, key):
    if float(options[key]).is_integer():
        options[key] = int(options[key])


def _infer_resnet2p1d(state, layout):
    conv1_s, conv1_t = state["conv1_s.weight"], state["conv1_t.weight"]
    layers = _blocks_per_stage(state)
    bottleneck = "layer1.0.conv3.weight" in state
    depth = _depth_for(layers, "bottleneck" if bottleneck else "basic")
    options = {"n_input_channels": int(conv1_s.shape[1]), "conv1_t_size": int(conv1_t.shape[2])}
    if layout == "torchvision":
        options["no_max_pool"] = True
    stem_width = int(conv1_t.shape[0])
    planes = int(
        state["layer1.0.conv1.weight" if bottleneck else "layer1.0.conv1_t.weight"].shape[0]
    )
    _set_widen(options, planes / 64, stem_width, planes)
    t = options["conv1_t_size"]
    if int(conv1_s.shape[0]) != (3 * stem_width * t * 49) // (3 * 49 + t * stem_width):
        options["stem_mid_width"] = int(conv1_s.shape[0])
    if not bottleneck and "layer2.0.conv2_s.weight" in state:
        if state["layer2.0.conv2_s.weight"].shape[0] == state["layer2.0.conv1_s.weight"].shape[0]:
            options["per_block_mid"] = True
    n_classes = int(state["fc.weight"].shape[0]) if "fc.weight" in state else 400
    return "resnet2p1d", depth, n_classes, options


def _infer_densenet(state):
    per_block = []
    for block in range(1, 5):
        ids = {
            int(m.group(1))
            for k in state
            if (m := re.match(rf"features\.denseblock{block}\.denselayer(\d+)\.", k))
        }
        per_block.append(len(ids))
    depths = [d for d, config in BLOCK_CONFIGS.items() if config == tuple(per_block)]
    if not depths:
        raise CheckpointError(
            f"a DenseNet with {per_block} layers per block matches no known depth"
        )
    depth = depths[0]
    conv = state["features.conv1.weight"]
    options = _stem_options(conv, "cnn3d")
    n_classes = int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else 400
    return "densenet", depth, n_classes, options


# -------------------------------------------------------------------------------------- loading


def kinetics400_class_names() -> list[str]:
    """The bundled Kinetics-400 class list, alphabetical, as the 2018 release expects."""
    text = resources.files("cnn3d.data").joinpath("kinetics400_classes.txt").read_text()
    return [line for line in text.splitlines() if line.strip()]


def _guess_normalization(obj: dict, state: dict, layout: str) -> Normalization:
    if layout == "torchvision":
        return PRESETS["torchvision"]
    if layout == "old_densenet":
        return PRESETS["hara2018"]
    new_era = "scheduler" in obj or any(k.endswith("num_batches_tracked") for k in state)
    return PRESETS["kinetics"] if new_era else PRESETS["hara2018"]


def _describe(obj: dict, state: dict, layout: str) -> str:
    arch = obj.get("arch")
    first = ", ".join(list(state)[:3])
    hint = f"arch {arch!r}, " if arch else ""
    return f"{hint}{len(state)} tensors in the {layout} layout (first keys: {first})"


def _check_match(model: nn.Module, state: dict, path: Path, description: str) -> None:
    expected = {k: v.shape for k, v in model.state_dict().items()}
    for key, shape in expected.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key not in state:
            raise CheckpointError(
                f"{path}: looks like {model.spec.arch} ({description}) but has no {key} "
                f"(the model expects shape {tuple(shape)})"
            )
        if state[key].shape != shape:
            raise CheckpointError(
                f"{path}: looks like {model.spec.arch} ({description}) but {key} has shape "
                f"{tuple(state[key].shape)} in the file and {tuple(shape)} in the model"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointError(
            f"{path}: looks like {model.spec.arch} ({description}) but has unexpected key "
            f"{extra[0]} with shape {tuple(state[extra[0]].shape)}"
        )


def load_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    normalization: str | Normalization | None = None,
    class_names: list[str] | None = None,
    clip_length: int | None = None,
    sample_size: int | None = None,
    fold_bn: bool = False,
    **options,
) -> nn.Module:
    """Load any supported checkpoint as a ready network in eval mode on `device`.

    The family, depth, shortcut, widths and class count come from the tensors; `options`
    override what tensors cannot show (`conv1_t_stride`, `no_max_pool`). `model.spec` carries the
    input normalisation, class names and clip geometry the weights expect. `fold_bn`: fold each
    BatchNorm that follows a convolution into it (inference only; `model.folded_bn` says how
    many).
    """
    path = Path(path)
    obj = read_file(path, map_location=device)
    raw = unwrap_state_dict(obj, path)
    stored = obj.get("spec") if obj.get("format") == FORMAT_NAME else None
    release = None if stored else releases.detect(_without_module_prefix(raw), path.name)
    if release is not None:
        state, layout = dict(release.state), release.name
    else:
        state, layout = normalise_keys(raw)
    description = _describe(obj, state, layout)
    if stored:
        spec = ModelSpec.from_dict(stored)
    elif release is not None:
        spec = _release_spec(release)
    else:
        try:
            family, depth, n_classes, inferred = infer_architecture(state, layout)
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}; it holds {description}") from None
        _warn_on_arch_hint(obj.get("arch"), family, depth, path)
        found = _guess_normalization(obj, state, layout)
        spec = ModelSpec(
            family,
            depth,
            n_classes,
            inferred,
            normalization=found,
            class_names=(
                kinetics400_class_names()
                if n_classes == 400 and found.name in ("hara2018", "torchvision")
                else None
            ),
            clip_length=64 if re.search(r"(?<![0-9])64f", path.name) else 16,
        )
    changes: dict = {"options": spec.options | options}
    if normalization is not None:
        changes["normalization"] = (
            normalization
            if isinstance(normalization, Normalization)
            else get_normalization(normalization)
        )
    if class_names is not None:
        changes["class_names"] = _checked_class_names(class_names, spec.n_classes, path)
    changes["clip_length"] = clip_length or spec.clip_length
    changes["sample_size"] = sample_size or spec.sample_size
    spec = replace(spec, **changes)
    model = build_model(spec.family, spec.depth, spec.n_classes, **spec.options)
    model.spec = spec
    _check_match(model, state, path, description)
    full = model.state_dict()
    for key in full:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    model.load_state_dict(state, strict=True)
    model.eval()
    if fold_bn and any(isinstance(m, nn.BatchNorm3d) for m in model.modules()):
        from .fold import fold_batchnorm  # (C3D has none, and takes 112-pixel clips only)

        clip = torch.randn(1, input_channels(model), spec.clip_length, 32, 32)
        model, model.folded_bn = fold_batchnorm(model, clip)
    return model.to(device)


def _without_module_prefix(state: dict) -> dict:
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _release_spec(release: releases.Release) -> ModelSpec:
    """The spec of a recognised release: its input, class names and clip, else the family's."""
    native = FAMILIES[release.family]
    return ModelSpec(
        release.family,
        release.depth,
        release.n_classes,
        dict(release.options),
        normalization=PRESETS[release.normalization or native.normalization],
        class_names=kinetics400_class_names() if release.class_names == "kinetics400" else None,
        clip_length=release.clip_length or native.clip_of(release.depth)[0],
        sample_size=release.sample_size or native.clip_of(release.depth)[1],
        t_stride=release.t_stride or 1,
        release=release.name,
    )


def _warn_on_arch_hint(arch, family, depth, path):
    if not isinstance(arch, str):
        return
    m = re.match(r"([a-z0-9]+)-(\d+)", arch)
    if m and (m.group(1) not in (family, "resnet2p1d") or int(m.group(2)) != depth):
        warnings.warn(
            f"{path}: its arch says {arch!r} but its tensors are {family}-{depth}; using the tensors",
            stacklevel=3,
        )


def _checked_class_names(names: list[str], n_classes: int, path) -> list[str]:
    if len(names) != n_classes:
        raise CheckpointError(
            f"{path}: {len(names)} class names given for a model with {n_classes} classes"
        )
    return list(names)


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read class names: {error.strerror}") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise CheckpointError(f"{path}: no class names in the file")
    return names


# --------------------------------------------------------------------------------------- saving


def save_model(path: str | os.PathLike, model: nn.Module, extra: dict | None = None) -> None:
    """Write cnn3d's format atomically: `.safetensors` (weights + JSON spec) or `.pth`.

    `.pth` files also keep `extra` (e.g. epoch, optimizer and scheduler state for resuming) and
    the original's `arch` and `state_dict` keys, so its tools can read them too.
    """
    model = getattr(model, "module", model)
    spec: ModelSpec = model.spec
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        meta = {FORMAT_NAME: json.dumps({"format": FORMAT_NAME, "spec": spec.to_dict()})}
        atomic_write(
            path, lambda tmp: save_file(state, tmp, metadata=meta), size_hint=tensor_bytes(state)
        )
        return
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "arch": spec.arch,
        "spec": spec.to_dict(),
        "state_dict": state,
        **(extra or {}),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp), size_hint=tensor_bytes(payload))


def tensor_bytes(obj) -> int:
    """The bytes of every tensor in `obj` (nested dicts, lists, tuples): about what
    `torch.save` writes."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def convert(src, dst, class_names_file=None) -> nn.Module:
    """Re-save any supported checkpoint in cnn3d's format, without optimizer state."""
    names = read_class_names(class_names_file) if class_names_file else None
    model = load_model(src, class_names=names)
    save_model(dst, model)
    return model
