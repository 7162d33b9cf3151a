"""The video index: paths found by listing each folder once, frame spans from the annotation
file, compact arrays; and the datasets built on it open no video when counts are recorded."""

import os
import pickle

import numpy as np
import pytest

from cnn3d.data import sources
from cnn3d.data.annotations import Annotations, Entry, read_annotations, write_annotations
from cnn3d.data.dataset import VideoDataset
from cnn3d.data.index import FolderListing, StringTable, find_entry, index_subset
from cnn3d.data.prepare import attach_videos
from cnn3d.data.transforms import EvalTransform
from helpers import frames_with_index, write_hdf5, write_jpeg_folder, write_mp4


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A small Kinetics/UCF-shaped tree with every kind of storage the layouts allow."""
    root = tmp_path_factory.mktemp("tree")
    frames = frames_with_index(12, 16, 16)
    write_mp4(root / "Run" / "r1.mp4", frames)
    write_mp4(root / "Run" / "r2.MKV", frames[:10])  # extension in upper case
    write_jpeg_folder(root / "Run" / "r3", frames[:7])  # a frame folder
    (root / "Jump").mkdir()
    write_hdf5(root / "Jump" / "j1.hdf5", frames[:9])
    write_mp4(root / "Jump" / "j1.mp4", frames)  # a frame folder / hdf5 wins over a file
    write_mp4(root / "Jump" / "j.2.mp4", frames[:11])  # a dot in the id
    (root / "Jump" / "j3.txt").write_text("not a video")
    write_mp4(root / "test" / "t1.mp4", frames[:8])  # unlabelled: <root>/test/<id>
    write_mp4(root / "elsewhere" / "custom.webm", frames[:6])
    write_mp4(root / "v_anet1.mp4", frames)  # ActivityNet: v_<id> at the root
    return root


def entries():
    return [
        Entry("r1", "training", "Run"),
        Entry("r2", "training", "Run"),
        Entry("r3", "training", "Run", segment=(1, 8)),  # 1-based frame folder: 7 frames
        Entry("j1", "training", "Jump", segment=(0, 9)),
        Entry("j.2", "validation", "Jump", extra={"n_frames": 11}),
        Entry("j3", "validation", "Jump"),  # only a .txt: missing
        Entry("gone", "validation", "Jump"),
        Entry("t1", "testing", None),
        Entry("c", "validation", "Run", video_path="elsewhere/custom.webm"),
        Entry("c2", "validation", "Run", video_path="elsewhere/nothere.webm"),
        Entry(
            "anet1",
            "validation",
            "Jump",
            extra={"annotations": [{"label": "Jump", "segment": [0.2, 0.4]}], "fps": 25},
        ),
    ]


def test_every_layout_resolves_and_missing_are_named(tree):
    ann = Annotations(["Jump", "Run"], entries())
    train, missing = index_subset(ann, "training", tree)
    assert missing == []
    assert [train.paths[i] for i in range(len(train))] == [
        "Run/r1.mp4",
        "Run/r2.MKV",
        "Run/r3",
        "Jump/j1.hdf5",
    ]
    assert train.labels.tolist() == [1, 1, 1, 0]
    assert train.first_frames.tolist() == [0, 0, 0, 0]  # [1, 8] of a frame folder is 0..6
    assert train.n_frames.tolist() == [-1, -1, 7, 9]
    val, missing = index_subset(ann, "validation", tree)
    assert missing == ["j3", "gone", "c2"]
    assert [v.video_id for v in val] == ["j.2", "c", "anet1"]
    assert val[0].n_frames == 11 and val[0].path == os.path.join(str(tree), "Jump/j.2.mp4")
    assert val[1].path.endswith("elsewhere/custom.webm")
    anet = val[2]  # seconds x fps: frames 5..9
    assert (anet.path.endswith("v_anet1.mp4"), anet.first_frame, anet.n_frames) == (True, 5, 5)
    first = train[0]  # a Video built from the arrays
    assert (first.video_id, first.label, first.first_frame, first.n_frames) == ("r1", 1, 0, None)
    assert train[-1].video_id == "j1" and train[3].n_frames == 9
    with pytest.raises(IndexError):
        train[4]
    with pytest.raises(IndexError):
        train[-5]
    test, missing = index_subset(ann, "testing", tree)
    assert (len(test), test.labels.tolist(), missing) == (1, [-1], [])


def test_each_folder_is_listed_once_and_no_video_is_stat_ed(tree, monkeypatch):
    n = 300
    ann = Annotations(["Run"], [Entry(f"x{i}", "training", "Run") for i in range(n)])
    ann.entries += entries()[:3]
    listed, stats = [], []
    real_scandir, real_stat = os.scandir, os.stat
    monkeypatch.setattr(os, "scandir", lambda p: listed.append(str(p)) or real_scandir(p))
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    index, missing = index_subset(ann, "training", tree)
    assert len(index) == 3 and len(missing) == n
    assert sorted(listed) == sorted({os.path.join(str(tree), "Run"), str(tree)})
    assert sorted(map(str, stats)) == sorted(listed)  # each folder's mtime, no video's


def test_the_index_is_a_few_arrays(tree):
    ann = Annotations(["Run"], [Entry("r1", "training", "Run")] * 5000)
    index, _ = index_subset(ann, "training", tree)
    arrays = [index.labels, index.first_frames, index.n_frames, index.ids.data, index.paths.data]
    assert all(isinstance(a, np.ndarray) for a in arrays)
    assert index.nbytes < 5000 * 60  # ~20 bytes of numbers and ~14 of strings per video
    assert len(pickle.dumps(index)) < 5000 * 80  # workers under spawn get it cheaply too
    table = StringTable(["a", "", "Ünïcode/ä.mp4"])
    assert list(table) == ["a", "", "Ünïcode/ä.mp4"]


def test_recorded_counts_mean_no_video_is_opened(tree, monkeypatch, tmp_path):
    ann = Annotations(["Jump", "Run"], [e for e in entries() if e.subset == "training"])
    recorded = attach_videos(ann, tree, jobs=2)
    assert [e.extra["n_frames"] for e in recorded.entries] == [12, 10, 7, 9]
    assert recorded.entries[0].extra["fps"] == 25 and "fps" not in recorded.entries[2].extra
    assert [e.segment for e in recorded.entries] == [(0, 12), (0, 10), (1, 8), (0, 9)]
    write_annotations(tmp_path / "a.json", recorded)
    index, _ = index_subset(read_annotations(tmp_path / "a.json"), "training", tree)

    def refuse(*args, **kwargs):
        raise AssertionError("a video was opened")

    monkeypatch.setattr("cnn3d.data.dataset.open_source", refuse)
    dataset = VideoDataset(index, EvalTransform(16), "val", clip_length=4, n_clips=2)
    assert len(dataset) == 8
    assert dataset.items[:, 1].tolist() == [0, 8, 0, 6, 0, 3, 0, 5]


def test_a_stale_count_is_named_not_read_past(tree, tmp_path):
    ann = Annotations(["Run"], [Entry("r1", "training", "Run", segment=(0, 40))])
    index, _ = index_subset(ann, "training", tree)
    dataset = VideoDataset(index, EvalTransform(16), "test", clip_length=8)
    assert len(dataset) == 5  # windows from the recorded count
    with pytest.raises(
        sources.VideoReadError, match=r"r1.mp4: has 12 frames, but the annotation file records 40"
    ):
        dataset[4]
    skipping = VideoDataset(index, EvalTransform(16), "test", clip_length=8, skip_bad=True)
    assert "stale count" in skipping[4]["error"] and "clip" in skipping[0]


def test_an_annotation_naming_the_avi_finds_the_frame_folder_or_hdf5(tree, tmp_path):
    # written before `prepare frames`: the entry names Run/r3.avi, the disk has Run/r3/ (frames)
    ann = Annotations(
        ["Jump", "Run"],
        [
            Entry("r3", "training", "Run", segment=(0, 7), video_path="Run/r3.avi"),
            Entry("j1", "training", "Jump", video_path="Jump/j1.avi"),  # j1.hdf5 beats j1.mp4
            Entry("r9", "training", "Run", video_path="Run/r9.avi"),
        ],
    )
    index, missing = index_subset(ann, "training", tree)
    assert [index.paths[i] for i in range(len(index))] == ["Run/r3", "Jump/j1.hdf5"]
    assert missing == ["r9"]
    assert index.notes == [
        "1 training video(s) the annotation file names in another form were found as frame folders",
        "1 training video(s) the annotation file names in another form were found as .hdf5 files",
    ]
    assert (index.first_frames[0], index.n_frames[0]) == (0, 7)


def test_subsets_spelled_short_and_the_single_video_lookup(tree):
    ann = Annotations(["Run"], [Entry("r1", "train", "Run"), Entry("r2", "val", "Run")])
    assert len(index_subset(ann, "training", tree)[0]) == 1
    assert len(index_subset(ann, "validation", tree)[0]) == 1
    listing = FolderListing()
    assert find_entry(listing, str(tree), "r2", "Run") == ("Run/r2.MKV", False)
    assert find_entry(listing, str(tree), "t1", None) == ("test/t1.mp4", False)
    assert find_entry(listing, str(tree), "nope", "Run") is None


def test_segments_not_starting_at_the_first_frame(tree):
    ann = Annotations(
        ["Jump", "Run"],
        [
            Entry("r3", "training", "Run", segment=(3, 8)),  # frame folder, 1-based: 2..6
            Entry("j1", "training", "Jump", segment=(2, 9)),  # HDF5, 0-based: 2..8
            Entry("r1", "training", "Run", segment=(5, 5)),  # empty: listed as missing
            Entry("r2", "training", "Run", extra={"n_frames": 10}),
            Entry(  # ActivityNet without fps: 30 assumed; a tiny segment still has a frame
                "anet1", "training", "Jump",
                extra={"annotations": [{"label": "Jump", "segment": [1.0, 1.001]}]},
            ),
            Entry("j.2", "training", "Jump", video_path="Jump/j.2.avi"),  # dotted stem
        ],
    )  # fmt: skip
    index, missing = index_subset(ann, "training", tree)
    assert missing == ["r1"]
    assert [index.paths[i] for i in range(len(index))] == [
        "Run/r3", "Jump/j1.hdf5", "Run/r2.MKV", "v_anet1.mp4", "Jump/j.2.mp4",
    ]  # fmt: skip
    assert index.first_frames.tolist() == [2, 2, 0, 30, 0]
    assert index.n_frames.tolist() == [5, 7, 10, 1, -1]
