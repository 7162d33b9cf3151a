"""Make the goldens of the two video-anomaly presets by running the references' own code on small
textured videos with seeded weights.

    PYTHONPATH=src python tests/data/goldens/make_presets_vad.py RESNET3D C3D_PYTORCH \
        [--at-224] [--gowtham GOWTHAM]

RESNET3D: a checkout of Tushar-N/pytorch-resnet3d; C3D_PYTORCH: one of DavideA/c3d-pytorch (its
`predict.py` needs scikit-image). Both stay outside this repository.

`presets_rtfm-i3d-10crop/`: RTFM's extraction setup as its author posted it (tianyu0207/RTFM #21,
#49: `GroupResize(256)`, torchvision `TenCrop(224)`, to 0-255 tensors, `GroupNormalize` with
mean 114.75 / std 57.375, `LoopPad(16)`), built from resnet3d's `utils/gtransforms.py`,
`utils/util.py` and torchvision's `TenCrop`, run on the video's frames in non-overlapping chunks
of 16 (the last partial chunk loop-padded, #21 and #53), through resnet3d's `I3Res50` (the
`avgpool` output, 2048 per crop). The two ten-crop glue steps the author named but did not post
(`ten_crop_ToTensor`, `GroupNormalize_ten_crop`) are written here as the names and #49 say: each
crop to 0-255, each crop normalised. Sizes: resize 64, crop 32 (test-sized); `--at-224` also
runs resize 256 / crop 224 on `c.mp4` (slow on CPU: about 2 minutes). `--gowtham`: a checkout
of GowthamGottimukkala/I3D_Feature_Extraction_resnet, the extractor users are sent to; its
`extract_features.run` (oversample, frequency 16) on `g.mp4`'s frames written as PNGs (its
main.py has ffmpeg write JPEGs first: lossy, skipped), 256 x 340 already, so its resize to
340 x 256 changes nothing; it needs CUDA and Pillow's old ANTIALIAS name: both stubbed.

`presets_sultani-c3d-fc6/`: c3d-pytorch's `predict.get_sport_clip` (skimage reads each PNG frame,
resizes it to 112 x 200, crops columns 44-155) on each non-overlapping 16-frame clip of the
video, then Caffe C3D's input as c3d-pytorch #4 prescribes (BGR, minus the Sports-1M mean per
channel: B 90.25, G 97.66, R 101.41), through `C3D_model.C3D` (post-ReLU fc6: the input of its
first dropout); then the 32 segments of Save_C3DFeatures_32Segments.m (WaqasSultani/
AnomalyDetectionCVPR2018), its arithmetic written out here in numpy (MATLAB does not run here).

What is stored (the goldens stay a few tens of kB): every 16th feature channel (`*_ch`, channel
0, 16, ...) and each full vector's L2 norm (`*_norm`); the segments every 32nd channel.
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for seeded.py and helpers.py
from helpers import textured_frames, write_mp4  # noqa: E402
from seeded import seeded_state  # noqa: E402

RTFM = HERE / "presets_rtfm-i3d-10crop"
SULTANI = HERE / "presets_sultani-c3d-fc6"
CHUNK = 16
# name -> (frames, height, width, seed). RTFM: a.mp4 has a partial last chunk (24 = 16 + 8,
# loop-padded) and is resized (72 -> 64); b.mp4 has exactly two (32) and a short side of 64 already
# (no resize: the rest of the pipeline alone); c.mp4 is UCF-Crime's 320 x 240, for the 224 run.
RTFM_VIDEOS = {"a.mp4": (24, 72, 96, 11), "b.mp4": (32, 64, 88, 12)}
RTFM_224 = {"c.mp4": (20, 240, 320, 13)}
GOWTHAM = {"g.mp4": (17, 256, 340, 14)}  # one complete chunk and one frame it drops
SMALL = (64, 32)  # resize, crop
# Sultani: 200 x 112 frames, so that c3d-pytorch's resize to 112 x 200 is the identity and
# cnn3d's `--resize 112` too; 40 frames: two complete clips (the 8 left over dropped)
SULTANI_VIDEOS = {"v.mp4": (40, 112, 200, 21)}
CH_STEP, SEG_STEP = 16, 32


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decode(path: Path) -> list[np.ndarray]:
    """Every frame of the video as RGB uint8 (PyAV, the decoder cnn3d reads with)."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def videos(folder: Path, table: dict) -> None:
    folder.mkdir(exist_ok=True)
    for name, (n, h, w, seed) in table.items():
        if not (folder / name).exists():  # committed: an encoder's bytes may change
            write_mp4(folder / name, textured_frames(n, h, w, seed))


def chunks(n_frames: int) -> list[list[int]]:
    """RTFM's windows: 0-15, 16-31, ...; the last one may be partial (loop-padded later)."""
    return [list(range(s, min(s + CHUNK, n_frames))) for s in range(0, n_frames, CHUNK)]


def rtfm_features(resnet3d: Path, frames, resize: int, crop: int, net) -> np.ndarray:
    """T x 10 x 2048: the author's transform (#21) on each chunk, then I3Res50's avgpool."""
    import torchvision
    import torchvision.transforms.functional as TF
    from PIL import Image

    sys.path.insert(0, str(resnet3d))
    from utils import gtransforms, util

    mean, std = util.kinetics_mean_std()  # 114.75 / 57.375, the author's (#21, #53)
    ten_crop = torchvision.transforms.TenCrop(crop)
    normalize = gtransforms.GroupNormalize(mean, std)
    loop_pad = gtransforms.LoopPad(CHUNK)
    pooled = {}
    net.avgpool.register_forward_hook(lambda m, i, o: pooled.__setitem__("x", o))
    out = []
    for chunk in chunks(len(frames)):
        images = gtransforms.GroupResize(resize)([Image.fromarray(frames[i]) for i in chunk])
        # GroupTenCrop + ten_crop_ToTensor: per frame the 10 crops, 0-255 ([10, 3, h, w])
        per_frame = [torch.stack([TF.to_tensor(c) * 255 for c in ten_crop(im)]) for im in images]
        crops = torch.stack(per_frame, 1)  # [10, T, 3, h, w]
        # GroupNormalize_ten_crop, then LoopPad(16) along time, per crop
        crops = torch.stack([loop_pad(normalize(c)) for c in crops])
        with torch.no_grad():
            net.forward_single(crops.permute(0, 2, 1, 3, 4).contiguous())  # [10, 3, 16, h, w]
        out.append(pooled["x"].flatten(1).numpy())
    return np.stack(out).astype(np.float32)


def make_rtfm(resnet3d: Path, at_224: bool) -> None:
    shapes = json.loads((HERE / "tushar-n-i3d-resnet50" / "shapes.json").read_text())
    seed = int(np.load(HERE / "tushar-n-i3d-resnet50" / "golden.npz")["weights_seed"])
    tushar = load_module("tushar_resnet", resnet3d / "models" / "resnet.py")
    net = tushar.I3Res50(num_classes=400, use_nl=False).eval()
    net.load_state_dict(seeded_state(shapes, seed))
    videos(RTFM, RTFM_VIDEOS | (RTFM_224 if at_224 else {}))
    out = {"weights_seed": np.array(seed), "small": np.array(SMALL)}
    runs = [(name, *SMALL) for name in RTFM_VIDEOS]
    runs += [(name, 256, 224) for name in RTFM_224] if at_224 else []
    for name, resize, crop in runs:
        feats = rtfm_features(resnet3d, decode(RTFM / name), resize, crop, net)
        print("rtfm", name, resize, crop, feats.shape)
        store(out, name, feats)
    old = RTFM / "golden.npz"  # keep what earlier --at-224 and --gowtham runs stored
    kept = ("g.mp4",) if at_224 else ("c.mp4", "g.mp4")
    if old.exists():
        out = {k: v for k, v in np.load(old).items() if k.startswith(kept)} | out
    np.savez_compressed(RTFM / "golden.npz", **out)


def make_gowtham(gowtham: Path) -> None:
    """Gowtham's extract_features.run on g.mp4's frames (T x 10 x 2048, [-1, 1] input)."""
    import natsort  # noqa: F401  (its import, checked before the stubs)
    from PIL import Image

    shapes = json.loads((HERE / "tushar-n-i3d-resnet50" / "shapes.json").read_text())
    seed = int(np.load(HERE / "tushar-n-i3d-resnet50" / "golden.npz")["weights_seed"])
    net = load_module("gowtham_resnet", gowtham / "resnet.py").I3Res50(
        num_classes=400, use_nl=False
    )
    net.load_state_dict(seeded_state(shapes, seed))
    net.train(False)
    Image.ANTIALIAS = Image.LANCZOS  # gone from Pillow 10
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU here
    run = load_module("gowtham_extract", gowtham / "extract_features.py").run
    import imageio.v3 as iio

    videos(RTFM, GOWTHAM)
    old = RTFM / "golden.npz"
    out = dict(np.load(old)) if old.exists() else {}
    for name in GOWTHAM:
        with tempfile.TemporaryDirectory() as frames_dir:
            for i, frame in enumerate(decode(RTFM / name)):
                iio.imwrite(Path(frames_dir) / f"{i}.png", frame)
            feats = run(net, 16, frames_dir, 20, "oversample").astype(np.float32)
        print("gowtham", name, feats.shape)
        store(out, name, feats)
    np.savez_compressed(old, **out)


def store(out: dict, name: str, feats: np.ndarray) -> None:
    out[f"{name}_shape"] = np.array(feats.shape)
    out[f"{name}_ch"] = feats[..., ::CH_STEP]
    out[f"{name}_norm"] = np.linalg.norm(feats.astype(np.float64), axis=-1).astype(np.float32)


def c3d_clip(c3d_pytorch: Path, frames: list[np.ndarray]) -> torch.Tensor:
    """c3d-pytorch's get_sport_clip on 16 frames written as PNGs, then the Caffe input."""
    import imageio.v3 as iio

    sys.path.insert(0, str(c3d_pytorch))  # predict.py imports C3D_model
    predict = load_module("c3d_predict", c3d_pytorch / "predict.py")
    with tempfile.TemporaryDirectory() as scratch:
        clip_dir = Path(scratch) / "data" / "clip"
        clip_dir.mkdir(parents=True)
        for i, frame in enumerate(frames):
            iio.imwrite(clip_dir / f"frame_{i:05d}.png", frame)
        cwd = os.getcwd()
        os.chdir(scratch)  # it globs data/<clip_name>/*.png
        try:
            x = predict.get_sport_clip("clip", verbose=False)  # [1, 3, 16, 112, 112] RGB 0-255
        finally:
            os.chdir(cwd)
    # c3d-pytorch #4: Caffe's C3D took BGR 0-255 minus the mean; the Sports-1M mean per channel
    mean_rgb = torch.tensor([101.41, 97.66, 90.25]).view(1, 3, 1, 1, 1)
    return (x - mean_rgb)[:, [2, 1, 0]]


def segments_32(clips: np.ndarray) -> np.ndarray:
    """Save_C3DFeatures_32Segments.m's loop, in numpy (1-based bounds as in MATLAB)."""
    t = len(clips)
    # MATLAB: linspace(1, t, 33), round (halves away from zero)
    raw = 1 + np.arange(33) * (t - 1) / 32.0
    raw[-1] = t
    shots = np.sign(raw) * np.floor(np.abs(raw) + 0.5)
    seg = np.zeros((32, clips.shape[1]))
    for k in range(32):
        ss, ee = int(shots[k]), int(shots[k + 1]) - 1
        if ss == ee or ee < ss:
            v = clips[ss - 1].astype(np.float64)
        else:
            v = clips[ss - 1 : ee].astype(np.float64).mean(0)
        seg[k] = v / np.linalg.norm(v)
    return seg.astype(np.float32)


def make_sultani(c3d_pytorch: Path) -> None:
    shapes = json.loads((HERE / "c3d-pytorch" / "shapes.json").read_text())
    seed = 0  # c3d-pytorch/MAKE.md: seeded_state(shapes, seed=0)
    model = load_module("c3d_model", c3d_pytorch / "C3D_model.py").C3D().eval()
    model.load_state_dict(seeded_state(shapes, seed))
    fc6 = {}
    model.dropout.register_forward_hook(lambda m, i, o: fc6.setdefault("x", i[0]))
    videos(SULTANI, SULTANI_VIDEOS)
    out = {"weights_seed": np.array(seed)}
    for name in SULTANI_VIDEOS:
        frames = decode(SULTANI / name)
        clips = []
        for start in range(0, len(frames) - CHUNK + 1, CHUNK):  # complete clips only
            fc6.clear()
            with torch.no_grad():
                model(c3d_clip(c3d_pytorch, frames[start : start + CHUNK]))
            clips.append(fc6["x"][0].numpy())
        feats = np.stack(clips).astype(np.float32)
        print("sultani", name, feats.shape)
        store(out, name, feats)
        out[f"{name}_segments"] = segments_32(feats)[:, ::SEG_STEP]
    np.savez_compressed(SULTANI / "golden.npz", **out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("resnet3d", type=Path)
    p.add_argument("c3d_pytorch", type=Path)
    p.add_argument("--at-224", action="store_true")
    p.add_argument("--gowtham", type=Path)
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    make_rtfm(args.resnet3d, args.at_224)
    make_sultani(args.c3d_pytorch)
    if args.gowtham:
        make_gowtham(args.gowtham)
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
