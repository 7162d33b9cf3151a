"""Make the I3D goldens: run each port's own reference module on seeded weights and clips.

    python tests/data/goldens/make_i3d.py PIERGIAJ_CHECKOUT VIDEO_FEATURES_CHECKOUT

PIERGIAJ_CHECKOUT: github.com/piergiaj/pytorch-i3d (its `pytorch_i3d.py`);
VIDEO_FEATURES_CHECKOUT: github.com/v-iashin/video_features (its
`models/i3d/i3d_src/i3d_net.py`, hassony2's port). Writes `i3d_<port>[_flow]/` beside this
file: `shapes.json` (the reference's state_dict keys and shapes, in its order) and `golden.npz`
(per case: the clip's shape and seed, the logits and features the reference computed, fp32).

What is stored, per port:
- piergiaj: `forward` returns logits per position, [N, classes, T'] (or [N, classes, T', H', W']
  where the map after the (2, 7, 7) average pool is wider than 1); `extract_features` the pooled
  map [N, 1024, T', H', W']. The golden is their mean over every position (DeepMind's
  `reduce_mean` over time; over space too, where the map is larger than 7 x 7).
- hassony2 (video_features): `forward(x)` returns (softmax, logits [N, classes]) and
  `forward(x, features=True)` the features [N, 1024] video_features saves: stored as returned.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for seeded.py
from seeded import seeded_clip, seeded_state  # noqa: E402

# golden folder -> (port, input channels, classes, weight seed, {case: (clip shape, clip seed)})
GOLDENS = {
    "i3d_piergiaj": (
        "piergiaj", 3, 400, 0,
        {"even": ((1, 3, 12, 224, 224), 1), "odd": ((1, 3, 11, 225, 225), 2)},
    ),
    "i3d_piergiaj_flow": ("piergiaj", 2, 157, 3, {"odd": ((1, 2, 9, 193, 193), 4)}),
    "i3d_hassony2": (
        "hassony2", 3, 400, 0,
        {"even": ((1, 3, 12, 224, 224), 1), "odd": ((1, 3, 11, 225, 225), 2)},
    ),
    "i3d_hassony2_flow": ("hassony2", 2, 400, 3, {"even": ((1, 2, 10, 224, 224), 4)}),
}  # fmt: skip


def reference(port: str, channels: int, n_classes: int, piergiaj: Path, video_features: Path):
    if port == "piergiaj":
        sys.path.insert(0, str(piergiaj))
        from pytorch_i3d import InceptionI3d

        return InceptionI3d(n_classes, in_channels=channels)
    sys.path.insert(0, str(video_features / "models" / "i3d" / "i3d_src"))
    from i3d_net import I3D

    return I3D(n_classes, modality={3: "rgb", 2: "flow"}[channels])


def run(port: str, model, clip: torch.Tensor):
    """(logits [N, classes], features [N, 1024]) and the raw output shapes."""
    if port == "piergiaj":
        per_position, pooled = model(clip), model.extract_features(clip)
        shapes = f"forward {tuple(per_position.shape)}, extract_features {tuple(pooled.shape)}"
        return per_position.flatten(2).mean(2), pooled.flatten(2).mean(2), shapes
    logits, features = model(clip)[1], model(clip, features=True)
    return logits, features, f"logits {tuple(logits.shape)}, features {tuple(features.shape)}"


def one_key_a_line(shapes: dict) -> str:
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(piergiaj: Path, video_features: Path) -> None:
    torch.set_grad_enabled(False)
    for folder, (port, channels, n_classes, seed, cases) in GOLDENS.items():
        model = reference(port, channels, n_classes, piergiaj, video_features).eval()
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        model.load_state_dict(seeded_state(shapes, seed))
        out = {"weight_seed": np.array(seed)}
        for case, (shape, clip_seed) in cases.items():
            logits, features, raw = run(port, model, seeded_clip(shape, clip_seed))
            print(f"{folder} {case} {shape}: {raw}; |logits| {float(logits.norm()):.4f}")
            out[f"{case}_clip_shape"] = np.array(shape)
            out[f"{case}_clip_seed"] = np.array(clip_seed)
            out[f"{case}_logits"] = logits.numpy().astype(np.float32)
            out[f"{case}_features"] = features.numpy().astype(np.float32)
        target = HERE / folder
        target.mkdir(exist_ok=True)
        (target / "shapes.json").write_text(one_key_a_line(shapes))
        np.savez_compressed(target / "golden.npz", **out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
