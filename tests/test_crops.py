"""Five- and ten-crop features and scores (`--crops`, `--crop-order`, `--resize`, `--format`).

References: torchvision's own `five_crop`/`ten_crop` (functional, v1) for the torchvision order;
boxes indexed by hand (numpy slices, as the VAD extractors write them) for the others; PyAV's
decode, torchvision's resize and crops, and the network run on them for the features and scores."""

import argparse
import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F1
import torchvision.transforms.v2.functional as F2

from cnn3d.cli import main
from cnn3d.cli.common import CROP_ORDERS as CLI_ORDERS
from cnn3d.data.transforms import CROP_ORDERS, EvalTransform
from cnn3d.errors import UsageError
from cnn3d.models import build_model, load_model, save_model
from cnn3d.models.features import FeatureExtractor
from helpers import decode_every_frame, family_checkpoint, float_path, frames_with_index, write_mp4

H, W, SIZE = (
    37,
    51,
    24,
)  # `resize=H` keeps the frame as it is; odd margins: the centre's offsets round (13 / 2 -> 6, 27 / 2 -> 14)
HAND = {"c": (6, 14), "tl": (0, 0), "tr": (0, 27), "bl": (13, 0), "br": (13, 27)}


def coordinate_clip(t=2, h=H, w=W):
    """[T, 3, H, W] uint8 whose pixel (y, x) of frame i holds (y, x, i)."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([torch.stack([y, x, torch.full_like(y, i)]) for i in range(t)]).to(
        torch.uint8
    )


def test_the_cli_names_every_crop_order():
    assert CLI_ORDERS == tuple(CROP_ORDERS)


def test_torchvision_order_is_torchvisions_ten_crop_and_five_crop():
    clip = coordinate_clip()
    ten = EvalTransform(SIZE, resize=H, crops=10, crop_order="torchvision")(clip)
    assert ten.shape == (10, 3, 2, SIZE, SIZE) and ten.dtype == torch.uint8
    for got, want in zip(ten, F1.ten_crop(clip, [SIZE, SIZE]), strict=True):
        assert torch.equal(got, want.permute(1, 0, 2, 3))
    five = EvalTransform(SIZE, resize=H, crops=5, crop_order="torchvision")(clip)
    for got, want in zip(five, F1.five_crop(clip, [SIZE, SIZE]), strict=True):
        assert torch.equal(got, want.permute(1, 0, 2, 3))


@pytest.mark.parametrize(
    "order, positions",
    [
        ("center_first", ("c", "tl", "tr", "bl", "br")),
        ("torchvision", ("tl", "tr", "bl", "br", "c")),
        ("oversample", ("tl", "tr", "c", "bl", "br")),
    ],
)
def test_every_crop_is_its_hand_computed_box_and_the_last_five_are_mirrored(order, positions):
    clip = coordinate_clip()
    crops = EvalTransform(SIZE, resize=H, crops=10, crop_order=order)(clip).permute(0, 2, 1, 3, 4)
    frame = clip.numpy()
    mirrored = frame[..., ::-1]  # the whole frame flipped left-right, then cropped
    for k, position in enumerate(positions):
        top, left = HAND[position]
        want = frame[..., top : top + SIZE, left : left + SIZE]
        assert np.array_equal(crops[k].numpy(), want), (order, k, position)
        assert crops[k][0, 0, 0, 0] == top and crops[k][0, 1, 0, 0] == left
        want = mirrored[..., top : top + SIZE, left : left + SIZE]
        assert np.array_equal(crops[5 + k].numpy(), want), (order, 5 + k, position)
        # x decreases along each row of a mirrored crop: flipped horizontally, not vertically
        assert crops[5 + k][0, 1, 0, 1] == crops[5 + k][0, 1, 0, 0] - 1
        assert crops[5 + k][0, 0, 1, 0] == crops[5 + k][0, 0, 0, 0] + 1


def test_oversample_order_is_the_i3d_resnet_extractors_slices():
    """The ten-crop I3D-ResNet-50 extractor: frames of 256 x 340, crops of 224, indexed as
    [:224, :224], [:224, -224:], [16:240, 58:282], [-224:, :224], [-224:, -224:], then the same
    of the frame flipped left-right."""
    clip = coordinate_clip(1, 256, 340)
    crops = EvalTransform(224, resize=256, crops=10, crop_order="oversample")(clip)[:, :, 0].numpy()
    f = clip[0].numpy().astype(np.uint8)
    g = f[:, :, ::-1]
    for k, img in enumerate((f, g)):
        want = [
            img[:, :224, :224],
            img[:, :224, -224:],
            img[:, 16:240, 58:282],
            img[:, -224:, :224],
            img[:, -224:, -224:],
        ]
        for j in range(5):
            assert np.array_equal(crops[5 * k + j], want[j]), 5 * k + j


def test_three_crops_are_the_originals_views_and_resize_sets_the_short_side():
    clip = coordinate_clip()
    three = EvalTransform(SIZE, crops=3, resize=30)(clip)
    resized = F1.resize(clip, 30, antialias=True)  # torchvision: short side 30, 30 x 41
    assert resized.shape[-2:] == (30, 41)
    top = (30 - SIZE) // 2
    for k, left in enumerate((0, (41 - SIZE) // 2, 41 - SIZE)):
        want = resized[..., top : top + SIZE, left : left + SIZE]
        assert torch.equal(three[k], want.permute(1, 0, 2, 3)), k
    ten = EvalTransform(SIZE, crops=10, resize=30, crop_order="torchvision")(clip)
    for got, want in zip(ten, F1.ten_crop(resized, [SIZE, SIZE]), strict=True):
        assert torch.equal(got, want.permute(1, 0, 2, 3))


def test_a_flow_clips_mirrored_crops_negate_the_x_displacement():
    clip = torch.randint(0, 256, (2, 2, H, W), dtype=torch.uint8)
    crops = EvalTransform(SIZE, resize=H, crops=10, crop_order="center_first")(clip)
    top, left = HAND["c"]
    centre = clip[..., top : top + SIZE, left : left + SIZE]
    mirrored = clip.flip(-1)[..., top : top + SIZE, left : left + SIZE]
    assert torch.equal(crops[0], centre.permute(1, 0, 2, 3))
    assert torch.equal(crops[5][0], 255 - mirrored[:, 0])  # x: mirrored and negated
    assert torch.equal(crops[5][1], mirrored[:, 1])


def test_resize_wxh_stretches_every_frame_to_that_size(capsys):
    """`--resize WxH` (width x height): the frame stretched whatever its aspect, then cropped;
    by hand: 37 x 51 -> 30 high, 40 wide; the centre 24 at (3, 8)."""
    from cnn3d.cli import build_parser
    from cnn3d.data.transforms import resize_frames
    from cnn3d.values import resize_size

    assert (resize_size("256"), resize_size("340x256"), resize_size("340X256")) == (
        256, (340, 256), (340, 256)
    )  # fmt: skip
    for bad in ("34x", "0x5", "x5", "3x4x5", "-2", "axb"):
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            resize_size(bad)
    clip = coordinate_clip()
    assert resize_frames(clip, (40, 30)).shape[-2:] == (30, 40)
    assert resize_frames(clip, (W, H)) is clip  # already that size: untouched
    assert resize_frames(clip, 30).shape[-2:] == (30, 41)  # an int is still the short side
    out = EvalTransform(SIZE, resize=(40, 30))(clip)
    assert out.shape == (3, 2, SIZE, SIZE)
    assert torch.equal(out, resize_frames(clip, (40, 30))[..., 3:27, 8:32].permute(1, 0, 2, 3))
    with pytest.raises(UsageError, match="--resize 30x20 is smaller than the crop"):
        EvalTransform(SIZE, resize=(30, 20))
    parser = build_parser()
    args = parser.parse_args(["features", "v.mp4", "--resize", "340x256"])
    assert args.resize == (340, 256)
    with pytest.raises(SystemExit):
        parser.parse_args(["features", "v.mp4", "--resize", "34x"])
    assert "argument --resize: '34x' is not a size" in capsys.readouterr().err


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"crops": 4}, "--crops must be 1, 3, 5 or 10"),
        ({"crops": 10, "crop_order": "tencrop"}, "--crop-order must be one of"),
        ({"resize": 20}, "--resize 20 is smaller than the crop"),
    ],
)
def test_bad_crop_settings_are_named(settings, message):
    with pytest.raises(UsageError, match=message):
        EvalTransform(SIZE, **settings)


def reference_features(model, video, clip_length, size, resize, order="torchvision"):
    """[windows, 10, D] features and [windows, classes] mean logits: PyAV's frames,
    torchvision's resize (v2: its uint8 kernel, which cnn3d's eval resize is; v1 rounds through
    float, one grey level apart) and ten_crop, the network on one crop at a time."""
    frames = torch.from_numpy(np.stack(decode_every_frame(video))).permute(0, 3, 1, 2)
    extractor = FeatureExtractor(model.eval())
    feats, logits = [], []
    for start in range(0, len(frames), clip_length):
        h, w = frames.shape[-2:]  # short side `resize`, long side truncated (PIL's Scale)
        shape = [resize, int(resize * w / h)] if h <= w else [int(resize * h / w), resize]
        clip = F2.resize(frames[start : start + clip_length], shape, antialias=True)
        crops = F1.ten_crop(clip, [size, size])
        if order == "center_first":
            crops = [crops[i] for i in (4, 0, 1, 2, 3, 9, 5, 6, 7, 8)]
        with torch.no_grad():
            x = float_path(list(crops), model.spec.normalization, torch.contiguous_format)
            f, z = extractor(x)
            feats.append(f)
            logits.append(z.mean(0))
    extractor.remove_hooks()
    return torch.stack(feats).numpy(), torch.stack(logits)


def write_videos(folder, n_frames):
    (folder / "a").mkdir(parents=True)
    write_mp4(folder / "a" / "one.mp4", frames_with_index(n_frames, seed=3))
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """a/one.mp4: 16 frames of 48 x 64, two windows of 8."""
    return write_videos(tmp_path_factory.mktemp("crops") / "videos", 16)


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    """a/one.mp4: 8 frames, one window."""
    return write_videos(tmp_path_factory.mktemp("crops") / "videos", 8)


RUN = ["--no-amp", "--device", "cpu", "--workers", "0", "--no-progress"]


def close(got, want):
    spread = np.abs(want).max()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * spread


def test_features_crops_10_as_npy_and_h5_hold_each_crops_own_features(video, tmp_path):
    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})
    model = load_model(ck, fold_bn=True)
    want, _ = reference_features(model, video / "a" / "one.mp4", 8, 32, 40)
    argv = ["features", str(video), "--checkpoint", str(ck), *RUN, "--crops", "10"]
    argv += ["--crop-order", "torchvision", "--resize", "40"]
    assert main([*argv, "-o", str(tmp_path / "npy"), "--format", "npy"]) == 0
    got = np.load(tmp_path / "npy" / "a" / "one.npy")
    assert got.shape == (2, 10, model.num_features)  # [T, 10, D], keyed by the relative name
    close(got, want)
    close(np.load(tmp_path / "npy" / "a" / "one.mean.npy"), want.mean(0))
    info = json.loads((tmp_path / "npy" / "a" / "one.segments.json").read_text())
    assert (info["crops"], info["crop_order"], info["resize"]) == (10, "torchvision", 40)
    assert "a/one.npy" in (tmp_path / "npy" / "manifest.csv").read_text()
    assert main([*argv, "-o", str(tmp_path / "f.h5")]) == 0  # h5 implied by the name
    with h5py.File(tmp_path / "f.h5") as f:
        close(f["a/one/clips"][()], want)
        assert f["a/one"].attrs["crop_order"] == "torchvision" and f["a/one"].attrs["crops"] == 10
        assert f["a/one"].attrs["resize"] == 40


def test_format_must_agree_with_the_output_name(video, tmp_path, capsys):
    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})
    argv = ["features", str(video), "--checkpoint", str(ck), *RUN]
    assert main([*argv, "-o", str(tmp_path / "x"), "--format", "h5"]) == 2
    assert "--format h5 writes one file" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "x.h5"), "--format", "npy"]) == 2
    assert "--format npy writes a folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.h5").exists()


def c3d_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("c3d", 8, 5)
    path = tmp_path / "c3d.pth"
    save_model(path, model)
    return path


FAMILIES = [  # one small network of each class: ResNet, I3D, X3D, SlowFast, C3D (16 x 112)
    ("resnet2p1d", 10, {"widen_factor": 0.25}),
    ("i3d", "inception_v1", {}),
    ("x3d", "xs", {}),
    ("slowfast", 50, {"width": 16}),
]


@pytest.mark.parametrize("family, depth, options", FAMILIES, ids=lambda v: str(v))
def test_crops_10_works_for_every_network_class(short_video, tmp_path, family, depth, options):
    video = short_video
    ck = family_checkpoint(tmp_path, family, depth, options)
    model = load_model(ck, fold_bn=True)
    argv = ["features", str(video), "--checkpoint", str(ck), *RUN, "--crops", "10"]
    assert main([*argv, "-o", str(tmp_path / "f")]) == 0
    got = np.load(tmp_path / "f" / "a" / "one.npy")
    want, _ = reference_features(model, video / "a" / "one.mp4", 8, 32, 32, "center_first")
    close(got, want)


@pytest.mark.slow
def test_crops_5_works_for_c3d_at_16_x_112(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    write_mp4(folder / "c.mp4", frames_with_index(16, h=120, w=160, seed=4))
    ck = c3d_checkpoint(tmp_path)
    argv = ["features", str(folder), "--checkpoint", str(ck), *RUN, "--crops", "5"]
    assert main([*argv, "-o", str(tmp_path / "f.h5"), "--batch-size", "1"]) == 0
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["c/clips"].shape == (1, 5, 4096)
        assert f["c"].attrs["crop_order"] == "center_first"


def test_test_crops_scores_each_window_by_the_mean_of_its_crops_logits(tiny, tmp_path):
    videos, ann = tiny
    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25}, n_classes=2)
    model = load_model(ck, fold_bn=True)
    model.spec = replace(model.spec, class_names=None)
    out = tmp_path / "t"
    argv = ["test", "--checkpoint", str(ck), "--video-path", str(videos), *RUN]
    assert (
        main([*argv, "--annotation-path", str(ann), "--result-path", str(out), "--crops", "10"])
        == 0
    )
    scores = np.load(out / "scores.npz")
    for vid, got in zip(scores["ids"], scores["scores"], strict=True):
        path = next(videos.rglob(f"{vid.split('/')[-1]}.*"))
        _, logits = reference_features(model, path, 8, 32, 32)
        want = logits.softmax(1).mean(0).numpy()  # windows' scores averaged, as without crops
        np.testing.assert_allclose(got, want, atol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["crops_per_window"] == 10 and metrics["n_clips"] == 2 * len(scores["ids"])
    assert (
        main(
            [
                *argv,
                "--annotation-path",
                str(ann),
                "--result-path",
                str(out),
                "--crops",
                "3",
                "--three-crop",
            ]
        )
        == 2
    )


def test_classify_crops_scores_each_window_by_the_mean_of_its_hand_cut_crops_logits(
    video, tmp_path, capsys
):
    ck = family_checkpoint(tmp_path, "resnet", 10, {"widen_factor": 0.25})
    model = load_model(ck, fold_bn=False).double().eval()
    norm = model.spec.normalization
    mean = torch.tensor(norm.mean, dtype=torch.float64).view(3, 1, 1, 1)
    std = torch.tensor(norm.std, dtype=torch.float64).view(3, 1, 1, 1)
    frames = torch.from_numpy(np.stack(decode_every_frame(video / "a" / "one.mp4")))
    frames = F2.resize(frames.permute(0, 3, 1, 2), [32, 42], antialias=True)  # 48x64: short 32
    want = []
    for start in (0, 8):  # two windows of 8; per window the five crops, by numpy slices
        clip = frames[start : start + 8].permute(1, 0, 2, 3).numpy()  # [C, T, 32, 42]
        boxes = [(0, 5), (0, 0), (0, 10), (0, 0), (0, 10)]  # c (10 / 2), tl, tr, bl, br
        crops = [clip[..., t : t + 32, x : x + 32] for t, x in boxes]
        x = torch.stack([torch.from_numpy(np.ascontiguousarray(c)).double() for c in crops])
        with torch.no_grad():
            logits = model((x * (norm.value_range / 255.0) - mean) / std)
        want.append(logits.mean(0).softmax(0).numpy())
    argv = ["classify", str(video), "--checkpoint", str(ck), *RUN, "--crops", "5"]
    assert main([*argv, "-o", str(tmp_path / "c.json")]) == 0
    (entry,) = json.loads((tmp_path / "c.json").read_text())
    got = np.array([clip["scores"] for clip in entry["clips"]])
    np.testing.assert_allclose(got, np.stack(want), atol=1e-5)
    live = ["classify", "--live", str(video / "a" / "one.mp4"), "--checkpoint", str(ck)]
    capsys.readouterr()
    assert main([*live, "--crops", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cnn3d classify: error: --crops 10: --live scores one centre crop per window"]
