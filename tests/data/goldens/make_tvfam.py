"""Make the goldens of C3D, MC3-18, R(2+1)D-34 (IG-65M, TSP) and S3D (torchvision, kylemin via
video_features) from the reference code: each reference network gets `seeded_state` weights in
its own keys, runs `seeded_clip` in fp32, and its logits and features are written with its
state_dict's shapes. See each layout's MAKE.md for the command."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/, for seeded.py
from seeded import seeded_clip, seeded_state  # noqa: E402

SEED = 0
CLIP_SEED = 1


def write(layout: str, model, clip_shape, run) -> None:
    """`run(model, clip) -> (logits, features)`, with `model` holding seeded weights."""
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(seeded_state(shapes, SEED))
    model.eval()
    clip = seeded_clip(clip_shape, CLIP_SEED)
    with torch.no_grad():
        logits, features = run(model, clip)
    out = HERE / layout
    out.mkdir(exist_ok=True)
    (out / "shapes.json").write_text(json.dumps(shapes) + "\n")
    np.savez_compressed(
        out / "golden.npz",
        logits=logits.float().numpy(),
        features=features.float().numpy(),
        clip_shape=np.array(clip_shape),
        seed=SEED,
        clip_seed=CLIP_SEED,
    )
    print(layout, tuple(logits.shape), tuple(features.shape))


def c3d(root: Path) -> None:
    sys.path.insert(0, str(root))
    from C3D_model import C3D

    model = C3D()
    model.softmax = torch.nn.Identity()  # its forward ends in a softmax: keep the logits

    def run(model, clip):
        seen = []  # the dropout's inputs: post-ReLU fc6, then fc7 (identity in eval)
        hook = model.dropout.register_forward_pre_hook(lambda _m, i: seen.append(i[0]))
        logits = model(clip)
        hook.remove()
        return logits, torch.cat([seen[0], seen[1]], 1)  # fc6 | fc7

    write("c3d-pytorch", model, (1, 3, 16, 112, 112), run)


def pooled_by_avgpool(model, clip):
    seen = []
    hook = model.avgpool.register_forward_hook(lambda _m, _i, o: seen.append(o))
    logits = model(clip)
    hook.remove()
    return logits, seen[0].flatten(1)


def mc3() -> None:
    from torchvision.models.video import mc3_18

    write("torchvision-mc3_18", mc3_18(), (2, 3, 8, 32, 32), pooled_by_avgpool)


def ig65m(root: Path) -> None:
    sys.path.insert(0, str(root))
    from ig65m.models import r2plus1d_34_8_kinetics

    model = r2plus1d_34_8_kinetics(num_classes=400, pretrained=False)
    write("ig65m-r2plus1d_34", model, (1, 3, 8, 32, 32), pooled_by_avgpool)


def tsp(root: Path) -> None:
    sys.path.insert(0, str(root))
    import models.backbone as backbone
    from models.model import Model

    # Model() always asks for the IG-65M weights: answer with the network's own (no download)
    backbone.torch.hub.load_state_dict_from_url = lambda *a, **k: backbone.r2plus1d_34(
        pretrained=False
    ).state_dict()
    model = Model("r2plus1d_34", num_classes=[200, 2], num_heads=2, concat_gvf=True)

    def run(model, clip):
        gvf = torch.zeros(clip.shape[0], 512)
        logits, features = model(clip, gvf=gvf, return_features=True)
        return logits[0], features  # the action head fc1

    write("tsp-r2plus1d_34", model, (1, 3, 8, 32, 32), run)


def torchvision_s3d() -> None:
    from torchvision.models.video import s3d

    def run(model, clip):
        seen = []
        hook = model.avgpool.register_forward_hook(lambda _m, _i, o: seen.append(o))
        logits = model(clip)
        hook.remove()
        return logits, seen[0].mean(dim=(2, 3, 4))  # the classifier is linear: its input's mean

    write("torchvision-s3d", s3d(), (1, 3, 16, 224, 224), run)


def kylemin_s3d(root: Path) -> None:
    sys.path.insert(0, str(root / "models" / "s3d" / "s3d_src"))
    from s3d import S3D  # video_features' copy of kylemin/S3D, with its `features=True` path

    def run(model, clip):
        return model(clip), model(clip, features=True)

    write("kylemin-s3d", S3D(num_class=400), (1, 3, 32, 64, 64), run)  # 4 frames left: 3 windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--c3d", type=Path, help="a checkout of DavideA/c3d-pytorch")
    parser.add_argument("--ig65m", type=Path, help="a checkout of moabitcoin/ig65m-pytorch")
    parser.add_argument("--tsp", type=Path, help="a checkout of HumamAlwassel/TSP")
    parser.add_argument("--video-features", type=Path, help="a checkout of v-iashin/video_features")
    args = parser.parse_args()
    torch.manual_seed(0)
    mc3()
    torchvision_s3d()
    if args.c3d:
        c3d(args.c3d)
    if args.ig65m:
        ig65m(args.ig65m)
    if args.tsp:
        tsp(args.tsp)  # imports its own `models` package: last
    if args.video_features:
        kylemin_s3d(args.video_features)


if __name__ == "__main__":
    main()
