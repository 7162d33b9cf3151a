"""Make the preset goldens: run video_features' own extractors (`ExtractI3D`, `ExtractR21D`,
`ExtractS3D`, their `extract(video_path)`) on small textured videos with seeded weights.

    PYTHONPATH=src python tests/data/goldens/make_presets.py VIDEO_FEATURES_CHECKOUT

Writes `presets_video_features-i3d-rgb/`: the videos they run on (`VIDEOS`, written by
`tests/helpers.textured_frames` + `write_mp4` when absent, committed since an encoder's bytes may
change with its version) and `golden.npz` (per video: the features the extractor returns, T x
1024, with the weights of `i3d_hassony2/`, video_features' key layout); `presets_video_features-
r21d/` and `presets_video_features-s3d/`: `shapes.json` (the reference's keys), `golden.npz`.
What is stubbed or skipped, and why: `stub_unused`, and each MAKE.md. RAFT is not loaded
(streams=rgb); the weights are seeded, not the releases'.
"""

import json
import shutil
import sys
import types
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for seeded.py and helpers.py
from helpers import textured_frames, write_mp4  # noqa: E402
from seeded import seeded_state  # noqa: E402

OUT = HERE / "presets_video_features-i3d-rgb"
R21D = HERE / "presets_video_features-r21d"  # the same videos, R(2+1)D-18 with seed R21D_SEED
R21D_SEED = 5
S3D = HERE / "presets_video_features-s3d"  # b.mp4 only, S3D with seed S3D_SEED
S3D_SEED = 6
# name -> (frames, height, width, seed): 25 fps, one 64-frame stack each (video_features needs
# the 65th frame to keep it), odd sizes, one narrower than the 256 short side
VIDEOS = {"a.mp4": (70, 240, 320, 1), "b.mp4": (67, 176, 240, 2)}


def stub_unused() -> None:
    """omegaconf (config parsing) and scipy (RAFT's utils): imported, unused by the RGB path;
    torchvision.io.read_video (gone from torchvision 0.29): PyAV's decode in its place."""
    for name in ("omegaconf", "omegaconf.dictconfig", "omegaconf.listconfig", "scipy"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.modules["omegaconf.dictconfig"].__dict__.setdefault("DictConfig", dict)
    sys.modules["omegaconf"].__dict__.setdefault("DictConfig", dict)
    sys.modules["omegaconf.listconfig"].__dict__.setdefault("ListConfig", list)
    sys.modules["scipy"].__dict__.setdefault("interpolate", types.ModuleType("interpolate"))
    import torchvision.io

    if not hasattr(torchvision.io, "read_video"):  # gone from torchvision 0.29
        stub = types.ModuleType("torchvision.io.video")  # before video_features imports it
        stub.read_video = read_video_with_pyav
        sys.modules["torchvision.io.video"] = stub


def main(video_features: Path) -> None:
    sys.path.insert(0, str(video_features))
    stub_unused()
    from models.i3d.extract_i3d import ExtractI3D
    from models.i3d.i3d_src.i3d_net import I3D

    torch.set_grad_enabled(False)
    shapes = json.loads((HERE / "i3d_hassony2" / "shapes.json").read_text())
    seed = int(np.load(HERE / "i3d_hassony2" / "golden.npz")["weight_seed"])
    model = I3D(num_classes=400, modality="rgb")
    model.load_state_dict(seeded_state(shapes, seed))
    model.eval()
    ExtractI3D.load_model = lambda self: {"model": {"rgb": model}}
    args = Namespace(
        feature_type="i3d", on_extraction="print", tmp_path="/tmp/vf_tmp", output_path="/tmp",
        keep_tmp_files=False, device="cpu", streams="rgb", flow_type="raft", extraction_fps=None,
        step_size=None, stack_size=None, show_pred=False,
    )  # fmt: skip
    extractor = ExtractI3D(args)
    OUT.mkdir(exist_ok=True)
    out = {"weight_seed": np.array(seed)}
    for name, (n, h, w, s) in VIDEOS.items():
        if not (OUT / name).exists():  # the committed videos (an encoder's bytes may change)
            write_mp4(OUT / name, textured_frames(n, h, w, s))
        feats = extractor.extract(str(OUT / name))["rgb"].astype(np.float32)
        print(name, feats.shape)
        out[name] = feats
    np.savez_compressed(OUT / "golden.npz", **out)
    shutil.rmtree("/tmp/vf_tmp", ignore_errors=True)
    r21d(args)
    s3d(args)


def read_video_with_pyav(path, pts_unit="sec"):
    """torchvision.io.read_video, gone from torchvision 0.29: every frame decoded by PyAV as
    rgb24, [T, H, W, 3] uint8 (what it returned; audio and info unused here)."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)), None, {}


def r21d(args) -> None:
    """video_features' ExtractR21D (default model r2plus1d_18_16_kinetics: torchvision's
    r2plus1d_18, here with seeded weights instead of the DEFAULT download)."""
    import torchvision
    from models.r21d import extract_r21d

    net = torchvision.models.video.r2plus1d_18()
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict(seeded_state(shapes, R21D_SEED))
    torchvision.models.get_model = lambda name, weights=None: net
    args = Namespace(**vars(args))
    args.feature_type, args.model_name = "r21d", "r2plus1d_18_16_kinetics"
    extractor = extract_r21d.ExtractR21D(args)
    R21D.mkdir(exist_ok=True)
    (R21D / "shapes.json").write_text(json.dumps(shapes, indent=0) + "\n")
    out = {"weight_seed": np.array(R21D_SEED)}
    for name in VIDEOS:
        out[name] = extractor.extract(str(OUT / name))["r21d"].astype(np.float32)
        print("r21d", name, out[name].shape)
    np.savez_compressed(R21D / "golden.npz", **out)


def s3d(args) -> None:
    """video_features' ExtractS3D with seeded weights in its S3D's keys (the torchified file's).
    Its default extraction_fps 25 re-encodes every video with ffmpeg first (even one already at
    25 fps); the videos here are 25 fps and the re-encode is skipped (`extraction_fps` None)."""
    from models.s3d import extract_s3d
    from models.s3d.s3d_src.s3d import S3D as VfS3D

    net = VfS3D(num_class=400)
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict(seeded_state(shapes, S3D_SEED))
    net.eval()
    extract_s3d.ExtractS3D.load_model = lambda self: {"model": net}
    args = Namespace(**vars(args))
    args.feature_type, args.extraction_fps = "s3d", None
    extractor = extract_s3d.ExtractS3D(args)
    extractor.extraction_fps = None  # its __init__ turns None into 25 (the ffmpeg re-encode)
    S3D.mkdir(exist_ok=True)
    (S3D / "shapes.json").write_text(json.dumps(shapes, indent=0) + "\n")
    out = {"weight_seed": np.array(S3D_SEED)}
    out["b.mp4"] = extractor.extract(str(OUT / "b.mp4"))["s3d"].astype(np.float32)
    print("s3d b.mp4", out["b.mp4"].shape)
    np.savez_compressed(S3D / "golden.npz", **out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
