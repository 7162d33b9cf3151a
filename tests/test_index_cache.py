"""The video index cache: what a restart or another rank maps is what indexing gives, the
mapping is file-backed (shared pages, no copy), and every change that could make it wrong (the
annotation file, a video added, removed or renamed, another root, another format, a damaged
file) rebuilds it, saying why."""

import json
import os
import shutil
import time

import numpy as np
import pytest

from cnn3d.cli import main
from cnn3d.data import index_cache
from cnn3d.data.index_cache import build_index, open_index, write_index
from cnn3d.runtime import Torchrun
from cnn3d.training import data as train_module
from cnn3d.training.config import TrainConfig
from helpers import train_args

LONG_AGO = time.time() - 3600  # a dataset unpacked an hour ago


def make_tree(root):
    """Files named like videos (the index opens none), an annotation file naming them, and
    every folder's mtime an hour old (so a change now is a change of mtime)."""
    names = {"Run": ["r1.mp4", "r2.MKV", "rÜn 3.webm"], "Jump": ["j1.mp4", "j.2.mp4"]}
    for label, files in names.items():
        (root / "videos" / label).mkdir(parents=True)
        for name in files:
            (root / "videos" / label / name).write_bytes(b"")
    (root / "videos" / "other").mkdir()
    (root / "videos" / "other" / "x.avi").write_bytes(b"")
    database = {
        "r1": {"subset": "training", "annotations": {"label": "Run", "segment": [0, 40]}},
        "r2": {"subset": "training", "annotations": {"label": "Run"}},
        "rÜn 3": {"subset": "training", "annotations": {"label": "Run"}, "n_frames": 12},
        "j1": {"subset": "training", "annotations": {"label": "Jump", "segment": [3, 9]}},
        "gone": {"subset": "training", "annotations": {"label": "Jump"}},
        "j.2": {"subset": "validation", "annotations": {"label": "Jump"}},
        "x": {
            "subset": "validation",
            "annotations": {"label": "Run"},
            "video_path": "other/x.avi",
        },
        "lost": {"subset": "validation", "annotations": {"label": "Dance"}},
    }
    annotation = root / "ann.json"
    annotation.write_text(json.dumps({"labels": ["Dance", "Jump", "Run"], "database": database}))
    for folder in [root / "videos", *(root / "videos").iterdir()]:
        os.utime(folder, (LONG_AGO, LONG_AGO))
    return annotation, root / "videos"


@pytest.fixture
def cached(tmp_path):
    annotation, videos = make_tree(tmp_path)
    path = tmp_path / "run" / "video_index.cache"
    write_index(path, build_index(annotation, videos), videos)
    return path, annotation, videos


def columns(index):
    return [(v.video_id, v.path, v.label, v.first_frame, v.n_frames) for v in index]


def test_the_mapped_index_holds_what_indexing_found(cached):
    path, annotation, videos = cached
    data, why = open_index(path, annotation, videos)
    assert why == "" and data.labels == ["Dance", "Jump", "Run"]
    root = str(videos)
    assert columns(data.videos["training"]) == [  # by hand, from the tree and the file
        ("r1", f"{root}/Run/r1.mp4", 2, 0, 40),
        ("r2", f"{root}/Run/r2.MKV", 2, 0, None),
        ("rÜn 3", f"{root}/Run/rÜn 3.webm", 2, 0, 12),
        ("j1", f"{root}/Jump/j1.mp4", 1, 3, 6),
    ]
    assert columns(data.videos["validation"]) == [
        ("j.2", f"{root}/Jump/j.2.mp4", 1, 0, None),
        ("x", f"{root}/other/x.avi", 2, 0, None),
    ]
    assert list(data.missing["training"]) == ["gone"]
    assert list(data.missing["validation"]) == ["lost"]
    # mapped from the file (pages shared by every process that maps it), not read into copies
    with open("/proc/self/maps") as f:
        assert str(path) in f.read()
    assert not data.videos["training"].labels.flags.owndata


def test_the_same_root_named_another_way_maps_and_paths_use_the_name_given(cached, monkeypatch):
    path, annotation, videos = cached
    monkeypatch.chdir(videos.parent)
    data, why = open_index(path, annotation, "videos")
    assert why == "" and data.videos["training"][0].path == "videos/Run/r1.mp4"


def change_annotation(annotation, videos):
    data = json.loads(annotation.read_text())
    data["database"]["r2"]["subset"] = "validation"
    annotation.write_text(json.dumps(data))


def touch_annotation(annotation, videos):
    os.utime(annotation, (LONG_AGO, LONG_AGO))  # same bytes, another mtime


def replace_annotation(annotation, videos):
    copy = annotation.with_suffix(".new")
    copy.write_bytes(annotation.read_bytes())
    os.utime(copy, ns=(annotation.stat().st_atime_ns, annotation.stat().st_mtime_ns))
    os.replace(copy, annotation)  # same size and mtime, another file


def add_video(annotation, videos):
    (videos / "Jump" / "gone.mp4").write_bytes(b"")


def remove_video(annotation, videos):
    (videos / "Run" / "r2.MKV").unlink()


def rename_video(annotation, videos):
    os.rename(videos / "Jump" / "j1.mp4", videos / "Jump" / "j1.mkv")


def add_class_folder(annotation, videos):
    (videos / "Dance").mkdir()  # the folder "lost" would be in did not exist
    os.utime(videos, (LONG_AGO, LONG_AGO))  # (the root's own change is found first otherwise)


def move_root(annotation, videos):
    videos.rename(videos.with_name("moved"))


@pytest.mark.parametrize(
    "change, said",
    [
        (change_annotation, "the annotation file changed since it was built (its size)"),
        (touch_annotation, "the annotation file changed since it was built (its mtime)"),
        (replace_annotation, "the annotation file changed since it was built (the file)"),
        (add_video, "/videos/Jump changed (videos added, removed or renamed)"),
        (remove_video, "/videos/Run changed"),
        (rename_video, "/videos/Jump changed"),
        (add_class_folder, "/videos/Dance appeared since it was built"),
        (move_root, "/videos is not a folder"),
    ],
)
def test_a_change_that_could_make_it_wrong_rebuilds_it_saying_why(cached, change, said):
    path, annotation, videos = cached
    change(annotation, videos)
    data, why = open_index(path, annotation, videos)
    assert data is None and said in why, why


def test_a_cache_of_another_file_format_or_a_damaged_one_is_rebuilt(cached, tmp_path):
    path, annotation, videos = cached
    other = tmp_path / "other.json"
    other.write_bytes(annotation.read_bytes())
    assert "built from another annotation file" in open_index(path, other, videos)[1]
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # cut short: the last arrays are not there
    assert "unreadable" in open_index(path, annotation, videos)[1]
    path.write_bytes(b"PK\x03\x04 something else")
    assert "unreadable (not a cnn3d video index)" in open_index(path, annotation, videos)[1]
    path.write_bytes(whole)
    assert open_index(path, annotation, videos)[1] == ""
    copy = tmp_path / "copy"
    shutil.copytree(videos, copy)  # the same folders and mtimes, elsewhere
    assert f"built for another video root ({videos})" in open_index(path, annotation, copy)[1]
    older = whole.replace(b'"format": 2', b'"format": 1', 1)
    path.write_bytes(older)
    assert "index format 1, now 2" in open_index(path, annotation, videos)[1]


def test_local_rank_0_indexes_and_the_other_ranks_map_what_it_wrote(tmp_path, monkeypatch):
    """Under torchrun, one parse per node: a rank other than local rank 0 waits at a barrier
    (which local rank 0 passes once the cache is written) and maps the cache."""
    annotation, videos = make_tree(tmp_path)
    cfg = TrainConfig(
        video_path=str(videos), annotation_path=str(annotation), result_path=str(tmp_path / "r")
    )
    builds, barriers = [], []
    real_build = index_cache.build_index
    monkeypatch.setattr(train_module, "build_index", lambda *a: builds.append(1) or real_build(*a))

    def barrier_where_rank_0_publishes():  # rank 0, meanwhile, indexes and writes
        barriers.append("waited")
        data = real_build(annotation, videos)
        write_index(tmp_path / "r" / "video_index.cache", data, videos)

    monkeypatch.setattr(train_module.dist, "barrier", barrier_where_rank_0_publishes)
    rank1 = Torchrun(rank=1, world_size=2, local_rank=1)
    data, built, waited = train_module.index_data(cfg, rank1)
    assert (built, waited, barriers, builds) == (False, True, ["waited"], [])
    assert [v.video_id for v in data.videos["training"]] == ["r1", "r2", "rÜn 3", "j1"]
    assert train_module.publish_index(cfg, rank1, data, built, waited) is data  # no 2nd barrier
    assert barriers == ["waited"]

    (tmp_path / "r" / "video_index.cache").unlink()
    monkeypatch.setattr(train_module.dist, "barrier", lambda: barriers.append("released"))
    rank0 = Torchrun(rank=0, world_size=2, local_rank=0)
    data, built, waited = train_module.index_data(cfg, rank0)
    assert (built, waited, builds) == (True, False, [1])
    assert not (tmp_path / "r" / "video_index.cache").exists()  # not before the model agrees
    published = train_module.publish_index(cfg, rank0, data, built, waited)
    assert barriers[-1] == "released" and (tmp_path / "r" / "video_index.cache").exists()
    # local rank 0 goes on with the written file mapped (pages shared with the other ranks)
    assert not published.videos["training"].labels.flags.owndata
    assert columns(published.videos["training"]) == columns(data.videos["training"])


def test_a_restarted_run_maps_the_index_and_trains_as_the_first_did(tiny, tmp_path, capsys):
    result = tmp_path / "run"
    args = train_args(tiny, result, "--n_epochs", "1", "--no-val")
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "validation videos indexed in" in first
    assert (result / "video_index.cache").exists()
    assert main([*train_args(tiny, result, "--n_epochs", "2", "--no-val"), "--resume", "auto"]) == 0
    second = capsys.readouterr().out
    assert f"videos mapped from {result / 'video_index.cache'}" in second
    videos, annotation = tiny
    assert "indexed" not in second
    os.utime(annotation)  # rewritten: indexed again, saying why
    assert main([*train_args(tiny, result, "--n_epochs", "3", "--no-val"), "--resume", "auto"]) == 0
    third = capsys.readouterr().out
    assert "the annotation file changed since it was built (its mtime); indexing again" in third


def test_index_cache_none_writes_nothing_and_a_folder_is_refused(tiny, tmp_path, capsys):
    result = tmp_path / "run"
    args = train_args(tiny, result, "--n_epochs", "1", "--no-val")
    assert main([*args, "--index-cache", "none"]) == 0
    assert not (result / "video_index.cache").exists()
    assert main([*args, "--index-cache", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder, but --index-cache is a file" in capsys.readouterr().err


def test_arrays_survive_the_round_trip_bit_for_bit(tmp_path):
    """Every column's dtype and values, for an index large enough to need several pages."""
    rng = np.random.default_rng(0)
    labels = [f"class {c}" for c in range(50)]
    database = {}
    root = tmp_path / "videos"
    for c in range(50):
        (root / labels[c]).mkdir(parents=True)
    for i in range(3000):
        c = int(rng.integers(50))
        video_id = f"v{i:05d}{'é' * (i % 3)}"
        (root / labels[c] / f"{video_id}.mp4").write_bytes(b"")
        n = int(rng.integers(1, 500))
        item = {"subset": "training", "annotations": {"label": labels[c], "segment": [0, n]}}
        database[video_id] = item
    annotation = tmp_path / "a.json"
    annotation.write_text(json.dumps({"labels": labels, "database": database}))
    built = build_index(annotation, root)
    write_index(tmp_path / "c", built, root)
    mapped, why = open_index(tmp_path / "c", annotation, root)
    assert why == ""
    for name, a in built.videos["training"].arrays().items():
        b = mapped.videos["training"].arrays()[name]
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert len(mapped.videos["training"]) == 3000
