"""Small synthetic media the tests write themselves."""

from pathlib import Path

import numpy as np

from cnn3d.data.prepare import write_video


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
