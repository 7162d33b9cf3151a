import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from cnn3d.data.dataset import Video, VideoDataset, collate_clips
from cnn3d.data.sources import VideoReadError
from cnn3d.data.synthetic import CLASSES, write_synthetic_dataset
from cnn3d.data.transforms import EvalTransform, TrainTransform
from helpers import frames_with_index, write_jpeg_folder, write_mp4


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    out = []
    for i in range(10):
        n = 20 + i
        if i % 2:
            write_mp4(root / f"v{i}.mp4", frames_with_index(n, 32, 40, seed=i))
            out.append(Video(f"v{i}", str(root / f"v{i}.mp4"), i % 3, 0, n))
        else:
            write_jpeg_folder(root / f"v{i}", frames_with_index(n, 32, 40, seed=i))
            out.append(Video(f"v{i}", str(root / f"v{i}"), i % 3, 0, None))
    return out


TRAIN = TrainTransform(size=24, crop="corner")
EVAL = EvalTransform(size=24)


def test_train_items_and_determinism(videos):
    ds = VideoDataset(videos, TRAIN, "train", clip_length=8, stride=2)
    item = ds[3]
    assert item["clip"].shape == (3, 8, 24, 24) and item["label"] == 0
    assert torch.equal(ds[3]["clip"], item["clip"])  # same epoch, same draw
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["clip"], item["clip"]) or ds[3]["start"] != item["start"]


def test_val_and_test_items(videos):
    val = VideoDataset(videos, EVAL, "val", clip_length=8, n_clips=3)
    assert len(val) == 30
    assert [val.items[i][1] for i in range(3)] == [0, 6, 12]  # 20 frames: last clip ends on 19
    test = VideoDataset(videos, EVAL, "test", clip_length=8)
    assert [s for v, s, _ in test.items if v == 0] == [0, 8, 16]  # 20 frames: 3 windows
    views = VideoDataset(videos, EvalTransform(24, "three"), "val", 8, n_clips=1, n_views=3)
    assert len(views) == 30 and views[1]["view"] == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_every_video_once_per_epoch_with_workers(videos, workers):
    ds = VideoDataset(videos, TRAIN, "train", clip_length=8)
    loader = DataLoader(
        ds,
        batch_size=3,
        num_workers=workers,
        collate_fn=collate_clips,
        multiprocessing_context="spawn" if workers else None,
    )
    seen = [int(v) for batch in loader for v in batch["video"]]
    assert sorted(seen) == list(range(len(videos)))


def test_distributed_sampler_two_ranks(videos):
    ds = VideoDataset(videos, TRAIN, "train", clip_length=8)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(3)
        seen += list(sampler)
    assert sorted(seen) == list(range(len(videos)))


def test_unreadable_video_named_or_counted(tmp_path, videos):
    (tmp_path / "bad.mp4").write_text("not a video")
    bad = videos[:2] + [Video("bad", str(tmp_path / "bad.mp4"), 1, 0, 20)]
    ds = VideoDataset(bad, TRAIN, "train", clip_length=8)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        ds[2]
    skipping = VideoDataset(bad, TRAIN, "train", clip_length=8, skip_bad=True)
    batch = collate_clips([skipping[i] for i in range(3)])
    assert (
        batch["clip"].shape[0] == 2
        and len(batch["failed"]) == 1
        and "bad.mp4" in batch["failed"][0]
    )
    val = VideoDataset(
        bad[:2] + [Video("bad", str(tmp_path / "bad.mp4"), 1, 0, None)],
        EVAL,
        "val",
        clip_length=8,
        skip_bad=True,
    )
    assert len(val.failed) == 1 and len(val) == 6


def test_synthetic_dataset_balanced_and_decodes(tmp_path):
    layout = write_synthetic_dataset(
        tmp_path,
        classes=CLASSES,
        groups=2,
        clips_per_group=1,
        test_groups=1,
        n_frames=12,
        height=48,
        width=64,
    )
    files = sorted(layout.video_dir.rglob("*.avi"))
    assert len(files) == len(CLASSES) * 2
    per_class = {c: len(list((layout.video_dir / c).iterdir())) for c in CLASSES}
    assert set(per_class.values()) == {2}
    train = (layout.split_dir / "trainlist01.txt").read_text().split("\n")
    test = (layout.split_dir / "testlist01.txt").read_text().split("\n")
    assert len([t for t in train if t]) == len(CLASSES) == len([t for t in test if t])
    from cnn3d.data.sources import open_source

    clip = open_source(files[0]).read(np.arange(12))
    assert clip.shape == (12, 3, 48, 64)
    assert (clip[0].float() - clip[-1].float()).abs().mean() > 1  # it moves
