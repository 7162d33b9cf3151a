import numpy as np
import pytest
import torch

from cnn3d.data import transforms as T
from cnn3d.data.network_input import normalize
from cnn3d.normalization import PRESETS


def ramp_clip(t=4, h=60, w=80):
    # every frame identical: a transform applying one draw to all frames keeps them identical
    frame = torch.arange(h * w * 3, dtype=torch.int64).reshape(3, h, w) % 251
    return frame.to(torch.uint8).unsqueeze(0).repeat(t, 1, 1, 1)


def test_train_transforms_one_draw_per_clip():
    for crop in T.TRAIN_CROPS:
        transform = T.TrainTransform(size=32, crop=crop)
        for seed in range(5):
            out = transform(ramp_clip(), np.random.default_rng(seed))
            assert out.shape == (3, 4, 32, 32) and out.dtype == torch.uint8
            for t in range(1, 4):
                assert torch.equal(out[:, t], out[:, 0])


def test_multiscale_corner_crop_boxes():
    clip = ramp_clip(h=60, w=80)
    seen = set()
    for seed in range(200):
        out = T.multiscale_corner_crop(clip, 60, np.random.default_rng(seed))
        seen.add(out[0, 0, 0, 0].item())
    assert len(seen) > 5  # different scales/corners were drawn
    # the original's MultiScaleCornerCrop boxes (top, left, side), worked out by hand
    assert T.corner_box(60, 80, 60, "tl") == (0, 0, 60)
    assert T.corner_box(60, 80, 30, "br") == (30, 50, 30)
    assert T.corner_box(60, 80, 30, "c") == (15, 25, 30)
    # centre of an odd side: side // 2 either side of (h // 2, w // 2), one pixel lost
    assert T.corner_box(240, 320, 201, "c") == (20, 60, 200)
    with pytest.raises(ValueError, match="crop position"):
        T.corner_box(60, 80, 30, "middle")


def test_flip_applies_to_all_frames():
    clip = torch.randint(0, 255, (3, 3, 20, 20), dtype=torch.uint8)
    transform = T.TrainTransform(size=20, crop="center")
    flipped = [transform(clip, np.random.default_rng(s)) for s in range(20)]
    plain = clip.permute(1, 0, 2, 3)
    assert any(torch.equal(f, plain) for f in flipped)
    assert any(torch.equal(f, plain.flip(-1)) for f in flipped)


def test_eval_resize_center_and_three_crop():
    clip = ramp_clip(h=60, w=90)
    out = T.EvalTransform(size=30)(clip)
    assert out.shape == (3, 4, 30, 30)
    views = [T.EvalTransform(30, "three")(clip, None, view=v) for v in range(3)]
    assert not torch.equal(views[0], views[2])
    assert torch.equal(views[1], T.EvalTransform(30, "center")(clip))
    assert T.EvalTransform(30, "none")(clip).shape == (3, 4, 30, 45)


def test_normalisation_presets():
    clip = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    hara = normalize(clip.permute(1, 0, 2, 3), PRESETS["hara2018"])
    assert torch.allclose(hara[0], torch.tensor(255 - 114.7748))
    kin = normalize(clip.permute(1, 0, 2, 3), PRESETS["kinetics"])
    assert torch.allclose(kin[1], torch.tensor((1 - 0.4051) / 0.2713))
    flow = normalize(clip[:, :2].permute(1, 0, 2, 3), PRESETS["0.5"])
    assert flow.shape == (2, 2, 4, 4) and torch.allclose(flow, torch.ones(()))


def test_normalization_keeps_its_name_when_cut_to_flow_channels():
    from cnn3d.normalization import Normalization

    preset = PRESETS["kinetics"]
    flow = preset.for_channels(2)
    assert (flow.name, flow.mean, flow.std) == ("kinetics", preset.mean[:2], preset.std[:2])
    assert flow.value_range == preset.value_range
    assert Normalization.from_dict(PRESETS["hara2018"].to_dict()) == PRESETS["hara2018"]


def test_pixels_compute_what_torchvisions_v2_functions_compute():
    """cnn3d's resize and crops (data/pixels.py, torchvision not imported) against torchvision's
    own functions: bit-identical on uint8 clips, shrinking and enlarging, RGB and 2-channel flow,
    boxes inside and outside the frame, centre boxes larger than the frame."""
    import torchvision.transforms.v2.functional as TF

    from cnn3d.data import pixels

    g = torch.Generator().manual_seed(3)
    for shape in [(4, 3, 37, 51), (2, 2, 48, 64), (3, 3, 20, 9), (1, 3, 8, 8)]:
        clip = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        for size in [(16, 16), (30, 23), (41, 77), (8, 5)]:
            assert torch.equal(pixels.resize(clip, size), TF.resize(clip, list(size))), size
            assert torch.equal(pixels.center_crop(clip, size), TF.center_crop(clip, list(size))), (
                size
            )
        for box in [(0, 0, 5, 7), (3, 2, 6, 6), (-2, 1, 9, 4), (5, -3, 4, 30), (10, 10, 40, 40)]:
            assert torch.equal(pixels.crop(clip, *box), TF.crop(clip, *box)), box
            assert torch.equal(
                pixels.resized_crop(clip, *box, [12, 10]),
                TF.resized_crop(clip, *box, [12, 10], antialias=True),
            ), box
        assert torch.equal(pixels.horizontal_flip(clip), TF.horizontal_flip(clip))
    floats = torch.rand(2, 3, 33, 47, generator=g)
    assert torch.equal(pixels.resize(floats, (20, 21)), TF.resize(floats, [20, 21]))
