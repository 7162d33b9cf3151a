"""`cnn3d prepare flow --method tvl1`: OpenCV's Dual TV-L1 recovers a known translation, the files
hold the hand-computed 8-bit quantisation of OpenCV's own TV-L1 flow (default parameters), which
the `i3d` preset turns into I3D's clip(flow, -20, 20) / 20; a flow I3D in piergiaj's layout reads
the prepared folders through `features` (`classify` runs the same windows); the layout is DIS's; without the contrib
wheel the command is one line naming the extra, before any work."""

import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from cnn3d.cli import main
from cnn3d.data.network_input import normalize
from cnn3d.data.optical_flow import to_8bit
from cnn3d.normalization import PRESETS
from helpers import write_jpeg_folder
from seeded import relative_error, seeded_state


def has_tvl1() -> bool:
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create")


needs_tvl1 = pytest.mark.skipif(
    not has_tvl1(),
    reason="OpenCV's contrib module is not installed (pip install -e '.[tvl1]'; the dev extra, "
    "which CI installs, has it)",
)
DX, DY = 2, 1  # the clip's motion, pixels per frame: right and down


def translating(n: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """[n, h, w, 3] uint8: a smooth grey texture moving DX px right and DY px down per frame."""
    rng = np.random.default_rng(seed)
    big_h, big_w = h + DY * n + 8, w + DX * n + 8
    coarse = rng.integers(0, 256, (big_h // 4 + 1, big_w // 4 + 1), dtype=np.uint8)
    size = (coarse.shape[1] * 4, coarse.shape[0] * 4)
    big = np.asarray(Image.fromarray(coarse).resize(size, Image.BICUBIC))
    y0, x0 = DY * n, DX * n
    frames = [big[y0 - DY * i : y0 - DY * i + h, x0 - DX * i : x0 - DX * i + w] for i in range(n)]
    return np.repeat(np.stack(frames)[..., None], 3, axis=-1)


def read_gray(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.int16)


def flow_files(folder, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The x and y images of a flow folder as [n, H, W] int arrays (PIL's decode)."""
    xs = [read_gray(folder / f"flow_x_{i:05d}.jpg") for i in range(1, n + 1)]
    ys = [read_gray(folder / f"flow_y_{i:05d}.jpg") for i in range(1, n + 1)]
    return np.stack(xs), np.stack(ys)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A 9-frame translating clip as an RGB frame folder, its TV-L1 flow (jpg, quality 100)."""
    root = tmp_path_factory.mktemp("tvl1")
    frames = translating(9)
    write_jpeg_folder(root / "in" / "pan" / "clip", frames)
    if has_tvl1():
        argv = ["prepare", "flow", str(root / "in"), str(root / "tvl1"), "--method", "tvl1"]
        assert main([*argv, "--short-side", "0", "--quality", "100", "--no-progress"]) == 0
    return root


@needs_tvl1
def test_tvl1_recovers_the_known_translation(prepared):
    xs, ys = flow_files(prepared / "tvl1" / "pan" / "clip", 8)
    inner = (slice(None), slice(8, -8), slice(8, -8))  # away from the borders
    # 8-bit level back to pixels: v / 255 * 40 - 20 (one level is 0.157 px)
    x_px, y_px = xs[inner] / 255 * 40 - 20, ys[inner] / 255 * 40 - 20
    assert abs(float(x_px.mean()) - DX) < 0.15 and abs(float(y_px.mean()) - DY) < 0.15
    assert np.median(xs[inner]) == 140 and np.median(ys[inner]) == 134  # 140.25, 133.875


@needs_tvl1
def test_the_files_hold_the_hand_quantised_opencv_tvl1_flow(prepared):
    import cv2

    folder = prepared / "in" / "pan" / "clip"
    gray = [read_gray(folder / f"image_{i:05d}.jpg").astype(np.uint8) for i in range(1, 10)]
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()  # OpenCV's defaults
    xs, ys = flow_files(prepared / "tvl1" / "pan" / "clip", 8)
    for i in range(8):
        flow = tvl1.calc(gray[i], gray[i + 1], None).astype(np.float64)
        # by hand: -20..20 px onto 0..255, clipped, rounded to the nearest level
        want = np.rint((np.clip(flow, -20, 20) + 20) * 255 / 40)
        for got, channel in ((xs[i], 0), (ys[i], 1)):
            diff = np.abs(got - want[..., channel])
            # JPEG at quality 100 is exact on the flat interior, a level off at a few pixels
            assert diff.max() <= 1 and (diff == 0).mean() > 0.97, (i, channel)


def test_the_8bit_encoding_and_the_i3d_preset_are_i3ds_flow_input():
    pixels = np.array([-25, -20, -10, 0, 1, 2, 7.3, 19.99, 20, 30], dtype=np.float32)
    # (v + 20) * 255 / 40 by hand: 0, 0, 63.75, 127.5 (half to even), 133.875, 140.25, 174.04...
    assert to_8bit(pixels).tolist() == [0, 0, 64, 128, 134, 140, 174, 255, 255, 255]
    sweep = np.linspace(-30, 30, 6001, dtype=np.float32)
    stored = torch.from_numpy(to_8bit(sweep)).reshape(1, 1, 1, -1)
    two = torch.cat([stored, 255 - stored])[:, None]  # [C=2, T=1, 1, W]: x, and y mirrored
    net_input = normalize(two, PRESETS["i3d"]).double()
    by_hand = stored.double() / 255 * 2 - 1
    torch.testing.assert_close(net_input[0], by_hand, rtol=0, atol=1e-6)
    i3d = np.clip(sweep, -20, 20) / 20  # DeepMind's: truncate to [-20, 20], rescale to [-1, 1]
    assert np.abs(net_input[0].flatten().numpy() - i3d).max() <= 1 / 255 + 1e-6
    assert np.abs(net_input[1].flatten().numpy() + i3d).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("cv2_module", ["plain", None], ids=["plain-wheel", "no-opencv"])
def test_tvl1_without_the_extra_is_one_line_before_any_work(
    tmp_path, capsys, monkeypatch, cv2_module
):
    write_jpeg_folder(tmp_path / "in" / "pan" / "clip", translating(3))
    # the plain wheel: a cv2 without `optflow`; None: no OpenCV at all (the import fails)
    plain = types.ModuleType("cv2") if cv2_module == "plain" else None
    monkeypatch.setitem(sys.modules, "cv2", plain)
    out = tmp_path / "out"
    argv = ["prepare", "flow", str(tmp_path / "in"), str(out), "--method", "tvl1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--method tvl1 needs OpenCV's contrib module" in err
    assert "pip install -e '.[tvl1]' (opencv-contrib-python-headless" in err
    assert not (out / "pan").exists() and not (out / ".cnn3d-sources.tsv").exists()


@needs_tvl1
def test_tvl1_writes_dis_layout_and_resumes(prepared, capsys):
    src, dis = prepared / "in", prepared / "dis"
    assert main(["prepare", "flow", str(src), str(dis), "--short-side", "0", "--no-progress"]) == 0

    def listing(root):
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    assert listing(dis) == listing(prepared / "tvl1")
    assert "pan/clip/flow_x_00008.jpg" in listing(dis) and len(listing(dis)) == 17  # + stamps
    hdf5 = prepared / "tvl1_h5"
    argv = ["prepare", "flow", str(src), str(hdf5), "--method", "tvl1", "--format", "hdf5"]
    assert main([*argv, "--short-side", "0", "--no-progress"]) == 0
    import h5py

    with h5py.File(hdf5 / "pan" / "clip.hdf5") as f:
        assert len(f["video_u"]) == len(f["video_v"]) == 8
    capsys.readouterr()
    assert main([*argv, "--short-side", "0", "--no-progress"]) == 0
    assert "0 videos converted, 1 already done" in capsys.readouterr().out


@needs_tvl1
def test_a_flow_i3d_reads_tvl1_flow_through_features(prepared, tmp_path):
    from cnn3d.models import build_model, input_channels, load_model
    from cnn3d.models.features import FeatureExtractor

    # piergiaj's flow_imagenet.pt layout (a plain state_dict, no BatchNorm step counters)
    shapes = build_model("i3d", "inception_v1", n_classes=400, n_input_channels=2).state_dict()
    state = seeded_state({k: v.shape for k, v in shapes.items() if "num_batches" not in k}, 3)
    torch.save(state, tmp_path / "flow_imagenet.pt")
    model = load_model(tmp_path / "flow_imagenet.pt")
    assert model.spec.normalization == PRESETS["i3d"] and input_channels(model) == 2
    folder = prepared / "tvl1" / "pan" / "clip"
    (tmp_path / "flow.txt").write_text(f"{folder}\n")
    common = ["--checkpoint", str(tmp_path / "flow_imagenet.pt"), "--clip-length", "8"]
    common += ["--sample-size", "48", "--workers", "0", "--no-progress", "--no-amp"]
    assert main(["features", str(tmp_path / "flow.txt"), *common, "-o", str(tmp_path / "f")]) == 0
    (got,) = [np.load(p) for p in (tmp_path / "f").rglob("clip.npy")]
    # by hand: x then y, v / 255 * 2 - 1, the centre 48 x 48 of 64 x 48 (columns 8-55)
    xs, ys = flow_files(folder, 8)
    clip = torch.from_numpy(np.stack([xs, ys])).float()[None, :, :, :, 8:56] / 255 * 2 - 1
    with torch.no_grad():
        want, _ = FeatureExtractor(model)(clip)
    assert got.shape == (1, 1024) and relative_error(torch.from_numpy(got), want) < 1e-4


def test_dis_without_opencv_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    write_jpeg_folder(tmp_path / "in" / "pan" / "clip", translating(3))
    monkeypatch.setitem(sys.modules, "cv2", None)
    assert main(["prepare", "flow", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -e '.[flow]'" in err, err
    assert not (tmp_path / "out" / "pan").exists()
