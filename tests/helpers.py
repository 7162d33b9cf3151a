"""What the test files share besides fixtures (those are in conftest.py): small synthetic media
the tests write themselves, the tiny training run's command line, small checkpoints, and the
preemption tests' runs."""

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cnn3d.data.prepare import write_video
from cnn3d.models import build_model, save_model
from cnn3d.models.checkpoint import read_file
from cnn3d.normalization import Normalization


def frames_with_index(n, h=48, w=64, seed=0):
    """Frames whose mean brightness encodes their index (robust to codec error)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 30, size=(h, w, 3))
    return np.stack([np.clip(base + 6 * i, 0, 255) for i in range(n)]).astype(np.uint8)


def write_jpeg_folder(folder: Path, frames):
    import simplejpeg

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames, start=1):
        (folder / f"image_{i:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(f, quality=95))


def write_hdf5(path: Path, frames):
    import h5py
    import simplejpeg

    with h5py.File(path, "w") as f:
        d = f.create_dataset("video", (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
        for i, frame in enumerate(frames):
            d[i] = np.frombuffer(simplejpeg.encode_jpeg(frame, quality=95), dtype=np.uint8)


def write_mp4(path: Path, frames, gop=16):
    write_video(path, frames, fps=25, gop=gop)


def frames_with_code(n, h=48, w=64, seed=0):
    """Frames that carry their index in 8 black/white blocks (bit k: the k-th eighth of the
    width, top third of the height) over a textured background: any codec and any resize keep
    the bits, so a frame decoded from any file can be named by `read_code`."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 190, size=(h, w, 3)).astype(np.uint8)
    out = []
    for i in range(n):
        frame = base.copy()
        for bit in range(8):
            block = frame[: h // 3, bit * w // 8 : (bit + 1) * w // 8]
            block[...] = 255 if (i >> bit) & 1 else 0
        out.append(frame)
    return np.stack(out)


def read_code(frame) -> int:
    """The index `frames_with_code` wrote into an [H, W, 3] frame (of any size)."""
    frame = np.asarray(frame)
    h, w = frame.shape[:2]
    rows = slice(h // 24, h * 7 // 24)  # the middle of the top third
    bits = [
        frame[rows, (8 * b + 2) * w // 64 : (8 * b + 6) * w // 64].mean() > 128 for b in range(8)
    ]
    return sum(1 << b for b, on in enumerate(bits) if on)


def _encode(path, codec, fmt, frames, options, rate=25, pix_fmt="yuv420p"):
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.options = options
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def _remux(src, dst, fmt, timestamps):
    """Copy `src`'s video packets into `dst`, each packet's (pts, dts) from
    `timestamps(k, pts, dts)` (k: the packet's place in decode order)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for k, packet in enumerate(p for p in inp.demux(video=0) if p.size):
            packet.pts, packet.dts = timestamps(k, packet.pts, packet.dts)
            packet.stream = stream
            out.mux(packet)


X264 = {"g": "30", "keyint_min": "30", "sc_threshold": "0", "bf": "3"}
MESSY_KINDS = (
    "h264-bframes.mp4",  # B-frames: decode order != presentation order
    "h264-open-gop.mp4",  # open GOPs: leading B-frames reference the previous GOP
    "h264.ts",  # MPEG-TS: starts at pts 1.4 s, seeks by bisection
    "h264.flv",
    "vp9.webm",
    "mpeg4-bframes.avi",
    "mpeg2.mpg",
    "h264-repeated-pairs.mkv",  # every timestamp twice
    "h264-some-repeats.mkv",  # frames 5..8 share timestamps in pairs (a rounding muxer)
    "h264-vfr.mkv",  # variable frame rate
    "h264-late-start.mkv",  # first timestamp far from 0
    "h264-backwards.mkv",  # timestamps jump back mid-file (no B-frames)
    "h264-no-timestamps.h264",  # a raw stream: no timestamps at all
)


def write_messy_video(folder: Path, kind: str, frames) -> Path:
    """One of MESSY_KINDS, written from `frames` [T, H, W, 3] (T >= 60) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / kind
    plain = folder / f".plain-{kind}.mkv"  # no B-frames, for the timestamp rewrites
    no_b = {"g": "20", "keyint_min": "20", "sc_threshold": "0", "bf": "0"}
    if kind == "h264-bframes.mp4":
        _encode(path, "libx264", "mp4", frames, X264)
    elif kind == "h264-open-gop.mp4":
        _encode(path, "libx264", "mp4", frames, {**X264, "x264-params": "open-gop=1"})
    elif kind == "h264.ts":
        _encode(path, "libx264", "mpegts", frames, X264)
    elif kind == "h264.flv":
        _encode(path, "libx264", "flv", frames, X264)
    elif kind == "vp9.webm":
        _encode(path, "libvpx-vp9", "webm", frames, {"g": "30"})
    elif kind == "mpeg4-bframes.avi":
        _encode(path, "mpeg4", "avi", frames, {"g": "30", "bf": "2"})
    elif kind == "mpeg2.mpg":
        _encode(path, "mpeg2video", "mpeg", frames, {"g": "15", "bf": "2"})
    elif kind == "h264-no-timestamps.h264":
        _encode(path, "libx264", "h264", frames, X264)
    else:
        _encode(plain, "libx264", "matroska", frames, no_b)  # pts in ms, 40 apart
        n = len(frames)
        if kind == "h264-repeated-pairs.mkv":
            stamps = [k // 2 * 80 for k in range(n)]
        elif kind == "h264-some-repeats.mkv":
            stamps = [k * 40 if not 5 <= k <= 8 else 200 + (k - 5) // 2 * 80 for k in range(n)]
        elif kind == "h264-vfr.mkv":
            steps = np.random.default_rng(1).choice([20, 40, 40, 80], size=n)
            stamps = np.concatenate([[0], np.cumsum(steps)[:-1]]).tolist()
        elif kind == "h264-late-start.mkv":
            stamps = [3_600_000 + 40 * k for k in range(n)]
        elif kind == "h264-backwards.mkv":
            half = n // 2
            stamps = [40 * k for k in range(half)] + [405 + 40 * k for k in range(n - half)]
        else:
            raise ValueError(kind)
        # dts: increasing and never above pts, so the muxer takes any presentation stamps
        _remux(plain, path, "matroska", lambda k, pts, dts: (int(stamps[k]), k - n))
        plain.unlink()
    return path


def decode_every_frame(path) -> list:
    """PyAV's own decode of the whole file, from the start: the reference for frame n."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def update_drift(trained: dict, other: dict, initial: dict) -> tuple[float, str]:
    """(worst, name): how far `other`'s weights are from `trained`'s, as a share of the
    update training made (|other - trained| / |trained - initial|, per tensor, in float64).

    Two trainings that should be the same one (DDP against one process, compiled against
    eager) differ by rounding, which training amplifies differently on each CPU kind; a share
    of the update is the measure that stays put, while a real difference (an unaveraged
    gradient, another batch) is a share near 1. A tensor training left alone must be equal."""
    worst, name = 0.0, ""
    for key, value in trained.items():
        if not value.is_floating_point():
            continue
        a, b, start = value.double(), other[key].double(), initial[key].double()
        update = (a - start).norm().item()
        drift = (b - a).norm().item() / update if update > 0 else float((b - a).abs().max() > 0)
        if drift > worst:
            worst, name = drift, key
    return worst, name


def train_args(tiny, result, *extra):
    """`cnn3d train` on the `tiny` data set: a quarter-width ResNet-10, 8x32x32 clips, batches of 4."""
    videos, ann = tiny
    return [
        "train",
        "--video_path",
        str(videos),
        "--annotation_path",
        str(ann),
        "--result_path",
        str(result),
        "--model",
        "resnet",
        "--model_depth",
        "10",
        "--widen-factor",
        "0.25",
        "--sample_size",
        "32",
        "--sample_duration",
        "8",
        "--batch_size",
        "4",
        "--n_val_samples",
        "2",
        "--workers",
        "0",
        "--lr",
        "0.01",
        "--lr-scheduler",
        "cosine",
        "--no-flip",
        "--train-crop",
        "center",
        "--no-tensorboard",
        "--no-progress",
        "--checkpoint",
        "2",
        *extra,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_2018_file(state, path, arch):
    """The 2018 release layout: DataParallel keys, no num_batches_tracked, {epoch, arch, ...}."""
    old = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 200, "arch": arch, "state_dict": old, "optimizer": {}}, path)


def float_path(clips_tchw: list[torch.Tensor], norm: Normalization, memory_format):
    """The old worker-side path, clip by clip, then the old device-side layout change."""
    out = []
    for clip in clips_tchw:
        channels = clip.shape[1]
        mean = torch.tensor(norm.mean[:channels]).view(-1, 1, 1, 1)
        std = torch.tensor(norm.std[:channels]).view(-1, 1, 1, 1)
        x = clip.permute(1, 0, 2, 3).float()
        if norm.channel_order == "bgr" and channels == 3:  # C3D's Caffe input: B, G, R
            x = x[[2, 1, 0]]
        out.append((x * (norm.value_range / 255.0) - mean) / std)
    return torch.stack(out).contiguous(memory_format=memory_format)


def family_checkpoint(tmp_path, family, depth, options, n_classes=5):
    """A small network of `family` with non-trivial BatchNorm statistics, saved with its card
    (8x32x32 clips, `n_classes` named classes)."""
    torch.manual_seed(0)
    model = build_model(family, depth, n_classes, **options)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    names = [f"action {i}" for i in range(n_classes)]
    model.spec = replace(model.spec, clip_length=8, sample_size=32, class_names=names)
    path = tmp_path / f"{family}{depth}.pth"
    save_model(path, model)
    return path


FPS = 25  # the live stream fixture's frame rate and length
N_FRAMES = 100


# a whole training run of the preemption tests: three epochs of three steps, two workers
COMMON = ("--n_epochs", "3", "--no-amp", "--workers", "2")


ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def run_training(tiny, result, *extra):
    """A whole run in a process of its own, one thread (every run of a comparison alike: the
    thread count changes the order of a convolution's sums)."""
    cmd = [sys.executable, "-m", "cnn3d", *train_args(tiny, result, *COMMON, *extra)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def ended_as(straight, result) -> None:
    """`result` holds exactly the weights and batch log of the uninterrupted run `straight`."""
    a, b = weights(straight / "last.pth"), weights(result / "last.pth")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert rows(result / "train_batch.log") == rows(straight / "train_batch.log")


def rows(path):
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def weights(path):
    return read_file(path)["state_dict"]


def textured_frames(n, h, w, seed=0):
    """n real-looking RGB frames [n, h, w, 3] uint8: smooth colour gradients with a sinusoidal
    texture and a bright disc moving across them (what the preset goldens are made from)."""
    rng = np.random.default_rng(seed)
    fy, fx, phase = rng.uniform(0.02, 0.09, 3)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        texture = 40 * np.sin(fx * x + fy * y + phase + 0.2 * t)
        disc = ((x - (0.1 + 0.8 * t / n) * w) ** 2 + (y - h / 2) ** 2) < (h / 6) ** 2
        r = 90 + 80 * x / w + texture + 90 * disc
        g = 60 + 100 * y / h - texture + 60 * disc
        b = 120 + 50 * np.cos(0.05 * t + x / w) + 0.5 * texture
        frames[t] = np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)
    return frames
