"""Values against independent references: the original's constants, hand-computed metrics and
schedules, exact crop boxes, and what each command actually feeds the model."""

import json
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

import cnn3d.models
from cnn3d.cli import main
from cnn3d.data import transforms as T
from cnn3d.data.annotations import Annotations, Entry, write_annotations
from cnn3d.data.network_input import normalize
from cnn3d.evaluation.metrics import Accumulator, compute_metrics
from cnn3d.models import build_model, save_model, with_spec
from cnn3d.models.blocks import BasicBlock, ShortcutA
from cnn3d.normalization import PRESETS, Normalization
from cnn3d.training.config import TrainConfig
from cnn3d.training.setup import make_scheduler
from helpers import write_mp4

# ../shared/reference/original-system.md §3.5 (OLD ActivityNet mean; NEW kinetics, activitynet,
# 0.5) and peers.md §2c (torchvision's video models), typed in from those tables.
REFERENCE = {
    "hara2018": ((114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0), 255.0),
    "kinetics": ((0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737), 1.0),
    "activitynet": ((0.4477, 0.4209, 0.3906), (0.2767, 0.2695, 0.2714), 1.0),
    "0.5": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1.0),
    "torchvision": ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989), 1.0),
    # field-backbones.md: DeepMind's I3D input x / 255 * 2 - 1; C3D's Sports-1M mean on 0-255
    # (B, G, R order); pytorchvideo's hub 0.45 / 0.225; [0, 1] as is.
    "i3d": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1.0),
    "c3d": ((90.25, 97.66, 101.41), (1.0, 1.0, 1.0), 255.0),
    "pytorchvideo": ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), 1.0),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0),
}
BGR = {"c3d"}  # presets whose network takes the channels in B, G, R order


def test_every_preset_constant_is_the_originals():
    assert set(PRESETS) == set(REFERENCE)
    for name, (mean, std, value_range) in REFERENCE.items():
        preset = PRESETS[name]
        assert preset.mean == mean and preset.std == std and preset.value_range == value_range
        # and the arithmetic: pixels R 200, G 100, B 50
        rgb = (200, 100, 50)
        clip = torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1)  # [T, C, H, W]
        got = normalize(clip.permute(1, 0, 2, 3), preset).flatten().tolist()
        fed = rgb[::-1] if name in BGR else rgb
        want = [(p * value_range / 255 - m) / s for p, m, s in zip(fed, mean, std, strict=True)]
        assert got == pytest.approx(want, rel=1e-6, abs=1e-5), name


def test_video_metrics_on_twelve_classes_by_hand():
    n = 12
    low = -10.0

    def logits(**values):
        row = torch.full((n,), low)
        for k, v in values.items():
            row[int(k[1:])] = v
        return row

    clips = [
        # video 0, label 0: two clips say class 0 (p ~ 0.88), one says class 1 with an extreme
        # logit. Softmax averaging gives class 0 (right); logit averaging would give class 1.
        (0, 0, logits(c0=2.0, c1=0.0)),
        (0, 0, logits(c0=2.0, c1=0.0)),
        (0, 0, logits(c0=-30.0, c1=0.0)),
        # video 1, label 3: class 5 first, class 3 second: top-1 wrong, top-5 right
        (1, 3, logits(c5=3.0, c3=2.0, c6=1.5, c7=1.4, c8=1.3)),
        # video 2, label 7: class 7 ranks 6th: top-1 and top-5 wrong
        (2, 7, logits(c0=6.0, c1=5.0, c2=4.0, c3=3.0, c4=2.0, c7=0.5)),
        # video 3, label 3: both clips right
        (3, 3, logits(c3=4.0, c2=1.0)),
        (3, 3, logits(c3=3.0, c9=2.0)),
        # video 4, label 0: right (a second (0, 0) cell of the confusion matrix)
        (4, 0, logits(c0=1.0)),
        # video 6: unlabelled (a test-subset video): scored, but in no metric
        (6, -1, logits(c2=5.0)),
    ]
    # video 5 (label 4) has no clip at all (unreadable): it is left out, not counted wrong
    acc = Accumulator(n_videos=7, n_classes=n)
    acc.add(  # two clips in one batch: the loss sums over clips, it does not average batches
        torch.stack([clips[0][2], clips[1][2]]), torch.tensor([0, 0]), torch.tensor([0, 0])
    )
    for video, label, row in clips[2:]:
        acc.add(row[None], torch.tensor([label]), torch.tensor([video]))
    names = [f"class{i}" for i in range(n)]
    m = compute_metrics(acc, torch.tensor([0, 3, 7, 3, 0, 4, -1]), names)
    assert m.n_videos == 5 and m.n_clips == 8
    assert m.video_top1 == pytest.approx(3 / 5)
    assert m.video_top5 == pytest.approx(4 / 5)
    assert m.clip_top1 == pytest.approx(5 / 8)  # videos 0 (2 of 3), 3 (2), 4 (1)
    assert m.mean_class_accuracy == pytest.approx((1 + 0.5 + 0) / 3)  # classes 0, 3, 7
    assert m.confusion[0][0] == 2 and m.confusion[3][5] == 1 and m.confusion[3][3] == 1
    assert m.confusion[7][0] == 1 and sum(map(sum, m.confusion)) == 5
    assert m.per_class[4] == {
        "class": "class4",
        "videos": 0,
        "correct": 0,
        "accuracy": m.per_class[4]["accuracy"],
    }
    assert math.isnan(m.per_class[4]["accuracy"])
    logit_mean = torch.stack([row for video, _, row in clips if video == 0]).mean(0)
    assert int(logit_mean.argmax()) == 1 and int(acc.video_scores[0].argmax()) == 0
    # the loss is the mean cross-entropy of the labelled clips, in float64 here
    want = np.mean(
        [float(-torch.log_softmax(r.double(), 0)[label]) for _, label, r in clips if label >= 0]
    )
    assert m.loss == pytest.approx(want, rel=1e-5)
    empty = compute_metrics(Accumulator(2, n), torch.tensor([0, 1]), names)
    assert empty.n_videos == 0 and empty.n_clips == 0
    assert all(math.isnan(x) for x in (empty.video_top1, empty.video_top5, empty.loss))
    assert math.isnan(empty.clip_top1) and math.isnan(empty.mean_class_accuracy)


def coordinate_clip(t=2, h=32, w=48):
    """Channel 0 holds 4*y, channel 1 holds 4*x, channel 2 the frame index."""
    y = torch.arange(h).view(h, 1).expand(h, w) * 4
    x = torch.arange(w).view(1, w).expand(h, w) * 4
    frames = [torch.stack([y, x, torch.full_like(y, i)]) for i in range(t)]
    return torch.stack(frames).to(torch.uint8)


IDENTITY = Normalization("identity", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 255.0)


def box_of(out: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a crop of `coordinate_clip`, from its pixels ([C,T,H,W])."""
    ys, xs = out[0, 0] / 4, out[1, 0] / 4
    return int(ys[0, 0]), int(xs[0, 0]), out.shape[-2], out.shape[-1]


def test_three_crop_views_and_centre_crop_are_exact_boxes():
    clip = coordinate_clip(h=32, w=48)  # short side already 32: no resize
    views = [T.EvalTransform(32, "three")(clip, None, view=v) for v in range(3)]
    assert [box_of(v) for v in views] == [(0, 0, 32, 32), (0, 8, 32, 32), (0, 16, 32, 32)]
    for view in views:  # every pixel, not only the corner: a plain crop
        top, left, _, _ = box_of(view)
        want = clip[:, :, top : top + 32, left : left + 32].permute(1, 0, 2, 3)
        assert torch.equal(view, want)
    tall = coordinate_clip(h=48, w=32)
    views = [T.EvalTransform(32, "three")(tall, None, view=v) for v in range(3)]
    assert [box_of(v)[:2] for v in views] == [(0, 0), (8, 0), (16, 0)]  # top, centre, bottom


def test_corner_crop_boxes_and_the_flip_mirror():
    h, w, s = 32, 48, 20
    assert {p: T.corner_box(h, w, s, p) for p in ("c", "tl", "tr", "bl", "br")} == {
        "c": (6, 14, 20),
        "tl": (0, 0, 20),
        "tr": (0, 28, 20),
        "bl": (12, 0, 20),
        "br": (12, 28, 20),
    }
    assert T.corner_box(h, w, 21, "c") == (6, 14, 20)  # 16 - 10, 24 - 10: the odd pixel lost
    # at scale 1 the square is the short side and the resize keeps it: every draw is one of
    # the five exact boxes, and all five are drawn
    clip = coordinate_clip(h=h, w=w)
    seen = set()
    for seed in range(60):
        out = T.multiscale_corner_crop(clip, 32, np.random.default_rng(seed), scales=(1.0,))
        box = box_of(out.permute(1, 0, 2, 3).float())
        assert box in {(0, 0, 32, 32), (0, 8, 32, 32), (0, 16, 32, 32)}
        top, left = box[:2]
        assert torch.equal(out, clip[:, :, top : top + 32, left : left + 32])
        seen.add(box)
    assert len(seen) == 3  # tl/bl share a box here, as do tr/br: left, centre, right
    # scale 0.5: a square of half the short side (16 px), here left as it is by size 16
    for seed in range(20):
        out = T.multiscale_corner_crop(clip, 16, np.random.default_rng(seed), scales=(0.5,))
        top, left, side_h, side_w = box_of(out.permute(1, 0, 2, 3).float())
        assert (side_h, side_w) == (16, 16)
        assert (top, left) in {(0, 0), (0, 32), (16, 0), (16, 32), (8, 16)}
        assert torch.equal(out, clip[:, :, top : top + 16, left : left + 16])
    transform = T.TrainTransform(32, "center", True)
    outs = [transform(clip, np.random.default_rng(seed)) for seed in range(20)]
    centre = clip[:, :, :, 8:40].permute(1, 0, 2, 3)
    flipped = [o for o in outs if not torch.equal(o, centre)]
    assert flipped and len(flipped) < 20
    for o in flipped:  # column j of a flipped clip is column 31 - j of the centre crop
        assert torch.equal(o, centre.flip(-1))
        assert o[1, 0, 0, 0] == 4 * 39 and o[1, 0, 0, 31] == 4 * 8


def test_each_train_crop_mode_crops_as_named():
    clip = coordinate_clip(h=32, w=48)

    def boxes(crop, **options):
        transform = T.TrainTransform(32, crop, False, **options)
        outs = [transform(clip, np.random.default_rng(seed)) for seed in range(24)]
        # the crop's extent in source pixels, read from the coordinates it holds
        return [
            (round(float(o[1, 0].max() - o[1, 0].min()) / 4), int(o[1, 0, 0, 0]) // 4) for o in outs
        ]

    assert set(boxes("center")) == {(31, 8)}  # always the central 32x32 square
    corner = boxes("corner")  # squares of 32, 26, 22, 19, 16 px at 5 positions
    assert {extent for extent, _ in corner} >= {31, 15} and len(set(corner)) > 4
    random = boxes("random", crop_scale=(0.25, 0.25), crop_ratio=(1.0, 1.0))
    # a quarter of the area at aspect 1: a square of sqrt(32 * 48 / 4) = 19.6 px, anywhere
    assert {extent for extent, _ in random} <= {18, 19, 20} and len(set(random)) > 4
    multiscale = boxes("multiscale_random")
    assert len({extent for extent, _ in multiscale}) > 2


def test_shortcut_a_passes_gradient_to_its_input():
    # Zero the residual branch: the block's output is relu(shortcut(x)), so any gradient that
    # reaches x came through the shortcut (the original detached it: zero gradient).
    torch.manual_seed(0)
    block = BasicBlock(4, 8, stride=2, downsample=ShortcutA(8, 2))
    torch.nn.init.zeros_(block.bn2.weight)
    torch.nn.init.zeros_(block.bn2.bias)
    x = (torch.rand(1, 4, 4, 6, 6) + 0.5).requires_grad_()
    block(x).sum().backward()
    want = torch.zeros_like(x)
    want[:, :, ::2, ::2, ::2] = 1.0
    assert torch.equal(x.grad, want)


def lrs(schedule: str, losses=None, **options) -> list[float]:
    """The learning rate each epoch starts with, stepping as the training loop does."""
    cfg = TrainConfig("", "", "", lr=0.1, lr_scheduler=schedule, **options)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make_scheduler(cfg, optimizer)
    out = []
    for epoch in range(cfg.n_epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(losses[epoch]) if losses else scheduler.step()
    return out


def test_lr_schedules_epoch_by_epoch():
    assert lrs("multistep", milestones=(2, 4), n_epochs=6) == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    cosine = [0.1 / 3, 0.2 / 3, 0.1, 0.05 * (1 + math.cos(math.pi / 4)), 0.05]
    cosine.append(0.05 * (1 + math.cos(3 * math.pi / 4)))
    assert lrs("cosine", warmup_epochs=2, n_epochs=6) == pytest.approx(cosine)
    # plateau, patience 1: the 2nd epoch in a row without improvement cuts the rate
    losses = [1.0, 0.9, 0.95, 0.96, 0.5, 0.6]
    assert lrs("plateau", losses, plateau_patience=1, n_epochs=6) == pytest.approx(
        [0.1, 0.1, 0.1, 0.1, 0.01, 0.01]
    )


def test_gamma_on_the_command_line_is_the_schedules_factor():
    """`--gamma 0.5` (declared once, in TrainConfig) reaches the schedule: x0.5 per milestone."""
    from cnn3d.cli import build_parser
    from cnn3d.cli.train import train_config_from_args

    argv = ["train", "--video-path", "v", "--annotation-path", "a", "--result-path", "r"]
    args = build_parser().parse_args([*argv, "--gamma", "0.5", "--milestones", "1", "2"])
    cfg = train_config_from_args(args)
    assert cfg.gamma == 0.5
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make_scheduler(cfg, optimizer)
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.1, 0.05, 0.025])


# ------------------------------------------------------------- what each command feeds the model

COLOUR = (200, 100, 50)  # one flat colour: any crop or resize leaves it as it is


@pytest.fixture(scope="module")
def flat_video(tmp_path_factory):
    root = tmp_path_factory.mktemp("flat")
    frames = np.empty((20, 48, 64, 3), dtype=np.uint8)
    frames[...] = COLOUR
    write_mp4(root / "Paint" / "flat.mp4", frames)
    ann = Annotations(["Paint"], [Entry("flat", "validation", "Paint")])
    write_annotations(root / "ann.json", ann)
    return root


def record_inputs(monkeypatch):
    """Make `load_model` return models that record their input batches."""
    seen = []
    real = cnn3d.models.load_model

    def load(*args, **kwargs):
        model = real(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].detach()))
        model.forward_features = _recording(model.forward_features, seen)
        return model

    monkeypatch.setattr(cnn3d.models, "load_model", load)
    return seen


def _recording(fn, seen):
    def wrapper(x, *args, **kwargs):
        seen.append(x.detach())
        return fn(x, *args, **kwargs)

    return wrapper


@pytest.mark.parametrize("preset", ["hara2018", "kinetics", "torchvision"])
def test_every_command_feeds_the_checkpoints_preset(flat_video, tmp_path, monkeypatch, preset):
    model = build_model("resnet", 10, 1, widen_factor=0.25)
    with_spec(model, class_names=["Paint"], sample_size=32)
    with_spec(model, normalization=PRESETS[preset])
    checkpoint = tmp_path / "m.safetensors"
    save_model(checkpoint, model)
    mean, std, value_range = REFERENCE[preset]
    want = [(c * value_range / 255 - m) / s for c, m, s in zip(COLOUR, mean, std, strict=True)]
    tolerance = 2.5 * value_range / 255 / min(std)  # 2.5 grey levels of codec error
    video = str(flat_video / "Paint" / "flat.mp4")
    runs = {
        "classify": ["classify", video, "--checkpoint", str(checkpoint), "--no-amp"],
        "features": [
            "features", video, "--checkpoint", str(checkpoint), "-o", str(tmp_path / "f"),
            "--no-amp",
        ],
        "test": [
            "test", "--checkpoint", str(checkpoint), "--video-path", str(flat_video),
            "--annotation-path", str(flat_video / "ann.json"), "--result-path",
            str(tmp_path / "t"), "--workers", "0", "--no-amp",
        ],
    }  # fmt: skip
    for command, argv in runs.items():
        seen = record_inputs(monkeypatch)
        assert main(argv) == 0, command
        assert seen, command
        for batch in seen:
            assert batch.shape[1:] == (3, 16, 32, 32)
            per_channel = batch.float().permute(1, 0, 2, 3, 4).reshape(3, -1)
            for c in range(3):
                values = per_channel[c]
                assert (values - want[c]).abs().max() < tolerance, (command, preset, c)


def test_classify_and_features_report_the_models_own_values(tmp_path):
    from cnn3d.data.dataset import Video, VideoDataset
    from cnn3d.data.transforms import EvalTransform
    from helpers import frames_with_index

    torch.manual_seed(3)
    model = build_model("resnet", 10, 4, widen_factor=0.25).eval()
    with_spec(model, class_names=["a", "b", "c", "d"], sample_size=32)
    checkpoint = tmp_path / "m.safetensors"
    save_model(checkpoint, model)
    video = tmp_path / "v.mp4"
    write_mp4(video, frames_with_index(40, 48, 64))
    out = tmp_path / "out.json"
    args = ["--checkpoint", str(checkpoint), "--no-amp"]
    assert main(["classify", str(video), "-o", str(out), "--topk", "4", *args]) == 0
    assert main(["features", str(video), "-o", str(tmp_path / "f"), *args]) == 0
    entry = json.loads(out.read_text())[0]
    # the same windows through the model directly, in float64
    dataset = VideoDataset(
        [Video("v", str(video), -1)], EvalTransform(32, "center"),
        "test", 16,
    )  # fmt: skip
    clips = torch.stack([dataset[i]["clip"] for i in range(len(dataset))])
    clips = normalize(clips, model.spec.normalization)
    reference = model.double()
    with torch.no_grad():
        features = reference.forward_features(clips.double())
        probs = reference.fc(features).softmax(1)
    assert [c["segment"] for c in entry["clips"]] == [[1, 16], [17, 32], [33, 40]]
    for k, clip in enumerate(entry["clips"]):
        assert sum(clip["scores"]) == pytest.approx(1.0, abs=1e-5)
        assert clip["scores"] == pytest.approx(probs[k].tolist(), abs=1e-4)
        assert clip["label"] == "abcd"[int(probs[k].argmax())]
    video_probs = probs.mean(0)
    assert [t["label"] for t in entry["top_k"]] == [
        "abcd"[i] for i in video_probs.argsort(descending=True)
    ]
    assert [t["score"] for t in entry["top_k"]] == pytest.approx(
        sorted(video_probs.tolist(), reverse=True), abs=1e-4
    )
    # `test` on the same video: the original's result JSON holds the video-level top-k
    root = tmp_path / "videos"
    (root / "a").mkdir(parents=True)
    (root / "a" / "v.mp4").write_bytes(video.read_bytes())
    write_annotations(
        tmp_path / "ann.json", Annotations(["a", "b", "c", "d"], [Entry("v", "validation", "a")])
    )
    argv = ["test", "--video-path", str(root), "--annotation-path", str(tmp_path / "ann.json")]
    argv += ["--result-path", str(tmp_path / "t"), "--topk", "3", "--workers", "0", *args]
    assert main(argv) == 0
    results = json.loads((tmp_path / "t" / "validation.json").read_text())["results"]
    order = video_probs.argsort(descending=True)[:3].tolist()
    assert [r["label"] for r in results["v"]] == ["abcd"[i] for i in order]
    assert [r["score"] for r in results["v"]] == pytest.approx(
        video_probs[order].tolist(), abs=1e-4
    )
    saved = np.load(tmp_path / "f" / "v.npy")
    np.testing.assert_allclose(saved, features.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(
        np.load(tmp_path / "f" / "v.mean.npy"), features.mean(0).numpy(), rtol=1e-3, atol=1e-4
    )
    # --tail drop: the sister tool's windows, [1, 16] and [17, 32]; the padded [33, 40] is
    # neither reported nor averaged, by classify, features or test
    dropped = tmp_path / "drop.json"
    assert main(["classify", str(video), "-o", str(dropped), "--tail", "drop", *args]) == 0
    entry = json.loads(dropped.read_text())[0]
    assert [c["segment"] for c in entry["clips"]] == [[1, 16], [17, 32]]
    assert entry["top_k"][0]["score"] == pytest.approx(float(probs[:2].mean(0).max()), abs=1e-4)
    assert main(["features", str(video), "-o", str(tmp_path / "g"), "--tail", "drop", *args]) == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "g" / "v.npy"), features[:2].numpy(), rtol=1e-3, atol=1e-4
    )
    argv[argv.index(str(tmp_path / "t"))] = str(tmp_path / "t2")
    assert main([*argv, "--tail", "drop"]) == 0
    results = json.loads((tmp_path / "t2" / "validation.json").read_text())["results"]
    assert results["v"][0]["score"] == pytest.approx(float(probs[:2].mean(0).max()), abs=1e-4)


def test_top_k_and_clip_accuracy_of_a_mixed_batch():
    from cnn3d.evaluation.metrics import top_k

    scores = torch.tensor([0.1, 0.5, 0.3, 0.1])
    names = ["a", "b", "c", "d"]
    assert [t["label"] for t in top_k(scores, names, 1)] == ["b"]
    assert [t["label"] for t in top_k(scores, names, 2)] == ["b", "c"]
    assert len(top_k(scores, names, 0)) == 4 and len(top_k(scores, names, 9)) == 4
    acc = Accumulator(n_videos=2, n_classes=4)
    logits = torch.tensor([[0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0], [5.0, 0.0, 0.0, 0.0]])
    acc.add(logits, torch.tensor([1, 3, 2]), torch.tensor([0, 0, 1]))  # right, right, wrong
    assert acc.clip_correct == 2 and acc.n_clips == 3


def test_random_resized_crop_reaches_every_edge_and_falls_back_to_the_centre():
    clip = coordinate_clip(h=32, w=48)
    lefts, tops = set(), set()
    for seed in range(300):
        out = T.random_resized_crop(clip, 16, np.random.default_rng(seed), (1 / 6, 1 / 6), (1, 1))
        top, left, _, _ = box_of(out.permute(1, 0, 2, 3).float())  # a 16 x 16 square: no resize
        assert torch.equal(out, clip[:, :, top : top + 16, left : left + 16])
        lefts.add(left), tops.add(top)
    assert lefts == set(range(0, 33)) and tops == set(range(0, 17))  # 48-16 and 32-16 included
    # no square of the whole area fits a 32 x 48 clip: torchvision's fallback, the whole frame
    # narrowed to the largest ratio (1): the central 32 x 32 square
    out = T.random_resized_crop(clip, 32, np.random.default_rng(0), (1.0, 1.0), (1.0, 1.0))
    assert torch.equal(out, clip[:, :, :, 8:40])
    # ... the whole frame when its own ratio (1.5) is in range
    out = T.random_resized_crop(clip, 16, np.random.default_rng(0), (1.0, 1.0), (0.75, 1.6))
    assert torch.equal(out, TF.resize(clip, [16, 16], antialias=True))
    # ... and a box of the frame's full width at the smallest ratio when the frame is taller
    tall = coordinate_clip(h=48, w=24)  # ratio 0.5 < 0.75: 24 wide, round(24 / 0.75) = 32 high
    out = T.random_resized_crop(tall, 32, np.random.default_rng(0), (1.0, 1.0), (0.75, 1.0))
    assert torch.equal(out, TF.resize(tall[:, :, 8:40, :], [32, 32], antialias=True))


def test_resize_truncates_the_long_side_and_matches_pil_bilinear():
    from PIL import Image

    rng = np.random.default_rng(0)
    for (w, h), want in {(640, 272): (263, 112), (320, 240): (149, 112), (1280, 720): (199, 112),
                         (240, 320): (112, 149)}.items():  # fmt: skip
        coarse = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))
        clip = torch.from_numpy(image).permute(2, 0, 1)[None]
        out = T.resize_short_side(clip, 112)[0].permute(1, 2, 0).numpy().astype(int)
        reference = np.asarray(Image.fromarray(image).resize(want, Image.BILINEAR)).astype(int)
        assert out.shape[:2] == reference.shape[:2] == (want[1], want[0])
        assert np.abs(out - reference).max() <= 1, (w, h)
