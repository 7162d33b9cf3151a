"""Make the `hara2018-resnet` preset's golden: run the sister tool's own feature path
(kenshohara/video-classification-3d-cnn-pytorch: `model.generate_model`, `classify.
classify_video` with `--mode feature`, hence its `dataset.Video`, `spatial_transforms`,
`temporal_transforms.LoopPadding` and `mean.get_mean`) on small frame folders and a video, with
seeded weights of a 2018 ResNet-18 (shortcut A, its released resnet-18/34 layout).

    PYTHONPATH=src python tests/data/goldens/make_presets_hara.py VC_CHECKOUT

Writes `presets_hara2018-resnet/`: `FOLDERS` (image_%05d.jpg, written by PIL from
`tests/helpers.textured_frames` when absent, committed), `video.mp4` (the `frames` folder's
frames as H.264, committed), `shapes.json` (the reference model's keys) and `golden.npz`: per
input the features and 1-based inclusive segments the tool writes into its output JSON.

What is stubbed, and why: its `main.py` runs `ffmpeg -i VIDEO tmp/image_%05d.jpg`, then
`classify_video('tmp', ...)`; there is no ffmpeg binary here, so the frame folders are given to
`classify_video` directly (what ffmpeg would have written), and for the video the frames are
written as ffmpeg's command line writes them: decoded and encoded by libavcodec's mjpeg encoder
(PyAV, the same libraries) at ffmpeg's defaults (yuvj420p, 200 kb/s rate control at the video's
frame rate). The model runs on the CPU (`--no_cuda`: no DataParallel, so the checkpoint's keys
are loaded without `module.`); `n_threads` 0.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for seeded.py and helpers.py
from helpers import textured_frames, write_mp4  # noqa: E402
from seeded import seeded_state  # noqa: E402

OUT = HERE / "presets_hara2018-resnet"
SEED = 7
# folder -> (frames, height, width, seed). `frames`: short side 112, so the sister tool's
# Scale(112) leaves it as it is (and the centre crop starts at x 19); 32 frames: its
# range(1, n - 16 + 1, 16) gives one clip (a second would end on the last frame). `frames160`:
# 160 x 120, resized to 149 x 112 by PIL; 33 frames: two clips, the last frame left.
FOLDERS = {"frames": (32, 112, 150, 3), "frames160": (33, 120, 160, 4)}
VIDEO = "video.mp4"  # the `frames` folder's frames, 25 fps H.264


def write_folder(folder: Path, frames: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"image_{i:05d}.jpg", quality=75)


def ffmpeg_jpegs(video: Path, folder: Path) -> None:
    """What `ffmpeg -i VIDEO folder/image_%05d.jpg` writes, by the same libraries (libavcodec's
    mjpeg encoder at the command line's defaults: yuvj420p, bit rate 200k, the video's rate)."""
    import av

    folder.mkdir(parents=True)
    with av.open(str(video)) as src:
        stream = src.streams.video[0]
        enc = av.CodecContext.create("mjpeg", "w")
        enc.width, enc.height = stream.codec_context.width, stream.codec_context.height
        enc.pix_fmt = "yuvj420p"
        enc.time_base = 1 / stream.average_rate
        enc.framerate = stream.average_rate
        enc.bit_rate = 200_000
        i = 0
        for frame in src.decode(stream):
            frame = frame.reformat(format="yuvj420p")
            frame.pts, frame.time_base = i, enc.time_base
            for packet in enc.encode(frame):
                i += 1
                (folder / f"image_{i:05d}.jpg").write_bytes(bytes(packet))
        for packet in enc.encode(None):
            i += 1
            (folder / f"image_{i:05d}.jpg").write_bytes(bytes(packet))


def main(vc: Path) -> None:
    sys.path.insert(0, str(vc))
    from mean import get_mean
    from model import generate_model

    from classify import classify_video

    torch.manual_seed(0)
    opt = argparse.Namespace(
        mode="feature", model_name="resnet", model_depth=18, resnet_shortcut="A",
        wide_resnet_k=2, resnext_cardinality=32, no_cuda=True, batch_size=32, n_threads=0,
    )  # fmt: skip
    # main.py's settings
    opt.mean = get_mean()
    opt.arch = f"{opt.model_name}-{opt.model_depth}"
    opt.sample_size, opt.sample_duration, opt.n_classes = 112, 16, 400
    model = generate_model(opt)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(seeded_state(shapes, SEED))
    model.eval()
    OUT.mkdir(exist_ok=True)
    (OUT / "shapes.json").write_text(json.dumps(shapes, indent=0) + "\n")

    for name, (n, h, w, s) in FOLDERS.items():
        if not (OUT / name).exists():
            write_folder(OUT / name, textured_frames(n, h, w, s))
    if not (OUT / VIDEO).exists():
        frames = np.stack([
            np.asarray(__import__("PIL.Image").Image.open(p).convert("RGB"))
            for p in sorted((OUT / "frames").glob("image_*.jpg"))
        ])  # fmt: skip
        write_mp4(OUT / VIDEO, frames)
    tmp = Path("/tmp/hara_vc_tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ffmpeg_jpegs(OUT / VIDEO, tmp)

    out = {"weight_seed": np.array(SEED)}
    for name, folder in [*((n, OUT / n) for n in FOLDERS), (VIDEO, tmp)]:
        result = classify_video(str(folder), name, [], model, opt)
        feats = np.array([c["features"] for c in result["clips"]], np.float32)
        segments = np.array([c["segment"] for c in result["clips"]], np.int64)
        print(name, feats.shape, segments.tolist())
        out[name] = feats
        out[name + ".segments"] = segments
    np.savez_compressed(OUT / "golden.npz", **out)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
