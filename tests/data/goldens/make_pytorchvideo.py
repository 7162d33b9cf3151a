"""Make the goldens of pytorchvideo's hub ResNets and SlowFast from pytorchvideo's own builders.

    python tests/data/goldens/make_pytorchvideo.py /path/to/pytorchvideo-checkout [name ...]

For each hub model (`slow_r50`, `c2d_r50`, `i3d_r50`, `r2plus1d_r50`, `csn_r101`,
`slowfast_r50`, `slowfast_r101`) it builds the network with the hub function itself
(`pytorchvideo/models/hub/*.py`, pretrained=False), fills it with `seeded_state` (seed 0),
runs `seeded_clip` (seed 1) at the hub's clip length (sizes in `MODELS`), and writes
`pytorchvideo_<name>/shapes.json` (the reference's state_dict keys and shapes, in its order)
and `golden.npz`: `output` (what the hub model returns: logits, or softmax probabilities for
r2plus1d_r50), `logits` (the head's linear layer averaged over the window positions, before
any activation) and `features` (the input of that linear layer averaged the same way).

pytorchvideo does not import on current installs (fvcore missing; its hub package imports
mobile-CPU modules that need more of fvcore), so this script stubs `fvcore.nn.weight_init`
(its init is overwritten by the seeded weights anyway) and loads the hub modules without
running `pytorchvideo/models/hub/__init__.py`. Nothing of the model code is changed.
"""

import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for seeded.py
from seeded import seeded_clip, seeded_state  # noqa: E402

# hub name -> (hub module, clip [N, C, T, H, W]): the hub's frame counts; 224 x 224 (the heads'
# 7 x 7 window at its one position) except slow_r50 at the hub's 256 x 256 test crop (2 x 2
# window positions, averaged after the linear layer)
MODELS = {
    "slow_r50": ("resnet", (1, 3, 8, 256, 256)),
    "c2d_r50": ("resnet", (1, 3, 8, 224, 224)),
    "i3d_r50": ("resnet", (1, 3, 8, 224, 224)),
    "r2plus1d_r50": ("r2plus1d", (1, 3, 16, 224, 224)),
    "csn_r101": ("csn", (1, 3, 32, 224, 224)),
    "slowfast_r50": ("slowfast", (1, 3, 32, 224, 224)),
    "slowfast_r101": ("slowfast", (1, 3, 32, 224, 224)),
}
WEIGHT_SEED, CLIP_SEED = 0, 1


def import_hub(checkout: Path):
    sys.path.insert(0, str(checkout))
    weight_init = types.ModuleType("fvcore.nn.weight_init")
    weight_init.c2_msra_fill = weight_init.c2_xavier_fill = lambda module: None
    sys.modules.setdefault("fvcore", types.ModuleType("fvcore"))
    sys.modules.setdefault("fvcore.nn", types.ModuleType("fvcore.nn"))
    sys.modules.setdefault("fvcore.nn.weight_init", weight_init)
    import pytorchvideo.models  # noqa: F401

    hub = types.ModuleType("pytorchvideo.models.hub")
    hub.__path__ = [str(checkout / "pytorchvideo" / "models" / "hub")]
    sys.modules["pytorchvideo.models.hub"] = hub
    import importlib

    return {m: importlib.import_module(f"pytorchvideo.models.hub.{m}") for m in
            ("resnet", "r2plus1d", "csn", "slowfast")}  # fmt: skip


def pack_pathway(clip: torch.Tensor, alpha: int = 4) -> list[torch.Tensor]:
    """The hub tutorial's PackPathway, on [N, C, T, H, W] (its frames are [C, T, H, W])."""
    t = clip.shape[2]
    slow = torch.index_select(clip, 2, torch.linspace(0, t - 1, t // alpha).long())
    return [slow, clip]


def make(name: str, hub: dict, out_root: Path) -> None:
    module, clip_shape = MODELS[name]
    model = getattr(hub[module], name)(pretrained=False).eval()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(seeded_state(shapes, WEIGHT_SEED))
    clip = seeded_clip(clip_shape, CLIP_SEED)
    seen = {}
    head = model.blocks[-1]
    head.proj.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    with torch.no_grad():
        output = model(pack_pathway(clip) if name.startswith("slowfast") else clip)
    positions = (1, 2, 3)  # the proj runs on [N, T', H', W', C]
    features = seen["inp"].mean(positions)
    logits = seen["out"].mean(positions)
    out = out_root / f"pytorchvideo_{name}"
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items()]
    (out / "shapes.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    np.savez_compressed(
        out / "golden.npz",
        output=output.numpy(),
        logits=logits.numpy(),
        features=features.numpy(),
        clip_shape=np.array(clip_shape),
        weight_seed=np.array(WEIGHT_SEED),
        clip_seed=np.array(CLIP_SEED),
    )
    print(f"{name}: output {tuple(output.shape)} features {tuple(features.shape)} "
          f"softmax head: {head.activation is not None}")  # fmt: skip


def main() -> None:
    checkout = Path(sys.argv[1]).resolve()
    names = sys.argv[2:] or list(MODELS)
    hub = import_hub(checkout)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    for name in names:
        make(name, hub, HERE)


if __name__ == "__main__":
    main()
