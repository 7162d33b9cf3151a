"""The model's input against the original's preprocessing, computed here with PIL.

For each frame size users bring (UCF-101's 320x240, a 640x272 film crop, 1280x720, a portrait
phone video) and each kind of source (video file, JPEG frame folder, HDF5), `cnn3d test` runs on
a real-looking video and the batches the model receives are compared, pixel for pixel and window
for window, with the original's arithmetic: frames decoded by PyAV (video) or PIL (JPEG), PIL
`resize` BILINEAR to short side 112 with the long side `int(112 * long / short)`, the centre crop
at `int(round((w - 112) / 2))`, loop padding of the last window, then the preset's range, mean
and std. Tolerance: one grey level.
"""

import io

import av
import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import cnn3d.models
from cnn3d.cli import main
from cnn3d.data.annotations import Annotations, Entry, write_annotations
from cnn3d.models import build_model, save_model, with_spec
from cnn3d.normalization import PRESETS
from helpers import write_hdf5, write_jpeg_folder, write_mp4

# The original's constants (../shared/reference/original-system.md §3.5, peers.md §2c), typed in:
# (mean, std, value range).
ORIGINAL = {
    "hara2018": ((114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0), 255.0),
    "kinetics": ((0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737), 1.0),
    "torchvision": ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989), 1.0),
}
SIZES = [(320, 240), (640, 272), (1280, 720), (272, 480)]  # (width, height); the last portrait
SOURCES = ["mp4", "jpg", "hdf5"]
N_FRAMES = 21  # windows [1-16] and [17-21] looped to 16 frames


def natural_frames(n: int, w: int, h: int, seed: int = 0) -> np.ndarray:
    """Frames that resemble camera footage: smooth colour regions, fine texture, hard edges of
    a moving object, and a slow pan."""
    rng = np.random.default_rng(seed)
    field = rng.integers(20, 235, (6, 8, 3), dtype=np.uint8)
    wide = np.asarray(Image.fromarray(field).resize((w + 2 * n, h), Image.BICUBIC), dtype=np.int16)
    texture = rng.integers(-18, 19, (h, w + 2 * n, 3), dtype=np.int16)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        frame = wide[:, 2 * i : 2 * i + w] + texture[:, 2 * i : 2 * i + w]
        disc = (yy - h / 2) ** 2 + (xx - w * (0.3 + 0.02 * i)) ** 2 < (min(h, w) / 5) ** 2
        frame[disc] = (250, 240, 30)
        frame[h // 7 : h // 7 + 3, w // 9 : w * 8 // 9] = 0  # a thin dark line
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(out)


def original_input(frames: list[np.ndarray], preset: str) -> torch.Tensor:
    """The original's test-time input for every 16-frame window, as float64 [n, C, 16, 112, 112]:
    windows from the first frame every 16 frames, the last one loop-padded; Scale(112) +
    CenterCrop(112) in PIL; then (x * range / 255 - mean) / std."""
    mean, std, value_range = ORIGINAL[preset]
    windows = []
    for start in range(0, len(frames), 16):
        indices = list(range(start, min(start + 16, len(frames))))
        for i in indices:  # LoopPadding: repeat the window's own frames
            if len(indices) >= 16:
                break
            indices.append(i)
        clip = []
        for i in indices:
            image = Image.fromarray(frames[i])
            w, h = image.size
            size = (112, int(112 * h / w)) if w < h else (int(112 * w / h), 112)
            image = image.resize(size, Image.BILINEAR)
            x1, y1 = int(round((size[0] - 112) / 2.0)), int(round((size[1] - 112) / 2.0))
            clip.append(np.asarray(image.crop((x1, y1, x1 + 112, y1 + 112)), dtype=np.float64))
        x = np.stack(clip).transpose(3, 0, 1, 2) * value_range / 255  # C, T, H, W
        x = (x - np.array(mean).reshape(3, 1, 1, 1)) / np.array(std).reshape(3, 1, 1, 1)
        windows.append(x)
    return torch.from_numpy(np.stack(windows))


def decoded_by_pyav(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def decoded_by_pil(paths) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def model_inputs(tmp_path, root, preset, monkeypatch) -> torch.Tensor:
    """What the model receives from `cnn3d test` on the one video under `root`."""
    model = build_model("resnet", 10, 2, widen_factor=0.25)
    with_spec(model, class_names=["pan", "other"])
    with_spec(model, normalization=PRESETS[preset])
    save_model(tmp_path / "m.safetensors", model)
    write_annotations(
        root / "ann.json", Annotations(["pan", "other"], [Entry("v", "validation", "pan")])
    )
    seen = []
    load = cnn3d.models.load_model

    def recording_load(*args, **kwargs):
        m = load(*args, **kwargs)
        first = next(c for c in m.modules() if isinstance(c, torch.nn.Conv3d))  # sees the input
        first.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach().double()))
        return m

    monkeypatch.setattr(cnn3d.models, "load_model", recording_load)
    argv = [
        "test", "--checkpoint", str(tmp_path / "m.safetensors"), "--video-path", str(root),
        "--annotation-path", str(root / "ann.json"), "--result-path", str(tmp_path / "out"),
        "--workers", "0", "--no-amp",
    ]  # fmt: skip
    assert main(argv) == 0
    return torch.cat(seen)


CASES = [
    (size, source, list(ORIGINAL)[(i + j) % 3])  # every preset meets every size and every source
    for i, size in enumerate(SIZES)
    for j, source in enumerate(SOURCES)
]


@pytest.mark.parametrize(
    "size,source,preset", CASES, ids=[f"{w}x{h}-{s}-{p}" for (w, h), s, p in CASES]
)
def test_model_input_is_the_originals_within_one_grey_level(
    tmp_path, monkeypatch, size, source, preset
):
    w, h = size
    frames = natural_frames(N_FRAMES, w, h, seed=w + h)
    root = tmp_path / "videos"
    if source == "mp4":
        write_mp4(root / "pan" / "v.mp4", frames)
        reference_frames = decoded_by_pyav(root / "pan" / "v.mp4")
    elif source == "jpg":
        write_jpeg_folder(root / "pan" / "v", frames)
        reference_frames = decoded_by_pil(sorted((root / "pan" / "v").glob("image_*.jpg")))
    else:
        (root / "pan").mkdir(parents=True)
        write_hdf5(root / "pan" / "v.hdf5", frames)

        with h5py.File(root / "pan" / "v.hdf5", "r") as f:
            reference_frames = [
                np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB"))
                for b in f["video"][:]
            ]
    assert len(reference_frames) == N_FRAMES
    want = original_input(reference_frames, preset)
    got = model_inputs(tmp_path, root, preset, monkeypatch)
    assert got.shape == want.shape == (2, 3, 16, 112, 112)
    mean, std, value_range = ORIGINAL[preset]
    grey_level = torch.tensor([value_range / 255 / s for s in std]).view(1, 3, 1, 1, 1)
    error = ((got - want).abs() / grey_level).amax(dim=(0, 2, 3, 4))
    assert (error <= 1.0 + 1e-3).all(), f"worst error per channel, in grey levels: {error.tolist()}"
