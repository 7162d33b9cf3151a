"""Video-seconds classified per second: `cnn3d classify`'s path on a 10 s 320x240 mp4 against what
the original's sister tool (video-classification-3d-cnn-pytorch) does, in the same run and with
the same network (its default, a 3D ResNet-34 with shortcut A, 400 classes, random weights).

Baseline, as the sister tool: every frame of the video written to JPEG files in a temporary
folder at full resolution, then per 16-frame clip PIL loads each file, resizes the short side to
112, centre-crops 112, and normalises per frame; fp32; batches of clips; the folder is deleted.
cnn3d: the mp4 decoded directly (PyAV), windows sampled and transformed as whole-clip tensor ops,
BatchNorm folded, the model in cnn3d's default precision (bf16 + channels_last_3d on CPUs with
native bf16, else fp32 + channels_last_3d).

    python benchmarks/classify.py [--repeats 3] [--seconds 10] [--depth 34]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from cnn3d.data.prepare import write_video
from cnn3d.data.synthetic import synthesize_video
from cnn3d.inference.runner import InferenceConfig, run_model
from cnn3d.models import build_model, with_spec
from cnn3d.models.fold import fold_batchnorm
from cnn3d.normalization import PRESETS
from cnn3d.precision import default_amp
from cnn3d.runtime import RuntimeConfig

FPS = 25


def baseline(model, video: Path, batch_size: int, features: bool = False) -> torch.Tensor:
    """The sister tool's path; returns the per-clip logits (or pooled features)."""
    tmp = Path(tempfile.mkdtemp(prefix="vc_tmp_"))
    try:
        with av.open(str(video)) as container:  # `ffmpeg -i video tmp/image_%05d.jpg`
            for i, frame in enumerate(container.decode(video=0), start=1):
                frame.to_image().save(tmp / f"image_{i:05d}.jpg", quality=90)
        n_frames = len(list(tmp.iterdir()))
        mean = torch.tensor(PRESETS["hara2018"].mean).view(3, 1, 1) * 255
        clips = []
        for start in range(1, n_frames - 16 + 1, 16):
            frames = []
            for i in range(start, start + 16):
                with Image.open(tmp / f"image_{i:05d}.jpg") as img:
                    img = img.convert("RGB")
                    w, h = img.size
                    size = (112, int(112 * h / w)) if w < h else (int(112 * w / h), 112)
                    img = img.resize(size, Image.BILINEAR)
                    left = int(round((img.size[0] - 112) / 2))
                    top = int(round((img.size[1] - 112) / 2))
                    img = img.crop((left, top, left + 112, top + 112))
                    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()
                frames.append(x - mean)
            clips.append(torch.stack(frames, 1))
        model = model.eval()
        outputs = []
        with torch.no_grad():
            for b in range(0, len(clips), batch_size):
                batch = torch.stack(clips[b : b + batch_size]).to(next(model.parameters()).device)
                outputs.append((model.forward_features if features else model)(batch).cpu())
        return torch.cat(outputs)
    finally:
        shutil.rmtree(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--depth", type=int, default=34)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval (x264's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "video.mp4"
        rng = np.random.default_rng(0)
        frames = synthesize_video("MoveRight", rng, args.seconds * FPS, 240, 320)
        write_video(video, frames, fps=FPS, gop=args.gop)
        torch.manual_seed(0)
        model = build_model("resnet", args.depth, n_classes=400, shortcut="A").eval()
        model = with_spec(model, normalization=PRESETS["hara2018"])
        # what `cnn3d classify` runs: BatchNorm folded at load time
        folded, _ = fold_batchnorm(model, torch.randn(1, 3, 16, 32, 32))
        precision = "bf16+channels_last" if default_amp(device) else "fp32+channels_last"
        print(
            f"device {device}, {torch.get_num_threads()} threads; {args.seconds} s 320x240 "
            f"{FPS} fps mp4, keyframe every {args.gop}; 3D ResNet-{args.depth}; "
            f"batch {args.batch_size}"
        )
        times = {"baseline": [], "cnn3d": []}
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            t0 = time.perf_counter()
            baseline(model.to(device, memory_format=torch.contiguous_format), video, 32)
            times["baseline"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            config = InferenceConfig(RuntimeConfig(str(device)), batch_size=args.batch_size)
            results, failures = run_model(folded, [video], config)
            times["cnn3d"].append(time.perf_counter() - t0)
            assert not failures and len(results[0].logits) > 0
        rates = {k: args.seconds / statistics.median(v) for k, v in times.items()}
        for name, seconds in times.items():  # the spread shows how steady the machine was
            print(f"{name} runs: {', '.join(f'{t:.2f}' for t in seconds)} s")
        print(f"baseline (JPEG temp dir + PIL + fp32): {rates['baseline']:.2f} video-s/s")
        print(f"cnn3d ({precision}, direct decode):  {rates['cnn3d']:.2f} video-s/s")
        print(f"ratio: {rates['cnn3d'] / rates['baseline']:.2f}x")


if __name__ == "__main__":
    main()
