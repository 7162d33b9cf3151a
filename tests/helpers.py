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
