"""Same-named videos in several class folders (`bikes/clip.mp4`, `bunny/clip.mp4`) each keep
their own entry in every annotation builder, and their own output in multi-folder inputs; a
video truly listed twice is said and counted. Checked against the files on disk: every video
is found exactly once, and the printed counts are the file's."""

import json
import re
from pathlib import Path

import pytest

from cnn3d.cli import main
from cnn3d.data.annotations import read_annotations
from cnn3d.data.index import index_subset
from helpers import frames_with_index, write_mp4

CLASSES = ("bikes", "bunny", "carphone")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """`<class>/clip.mp4` in three classes, plus one video of its own name per class."""
    root = tmp_path_factory.mktemp("same") / "videos"
    for k, label in enumerate(CLASSES):
        write_mp4(root / label / "clip.mp4", frames_with_index(6, 16, 16, seed=k))
        write_mp4(root / label / f"only_{label}.mp4", frames_with_index(6, 16, 16, seed=9 + k))
    return root


def printed_counts(out: str, path) -> dict[str, int]:
    line = next(ln for ln in out.splitlines() if ln.startswith(f"{path}:"))
    return {s: int(n) for n, s in re.findall(r"(\d+) (training|validation|testing)", line)}


def check_file(path, video_root, out: str, n_videos: int) -> dict:
    """Every video once, the counts printed as in the file, plain ids kept where unique."""
    data = json.loads(path.read_text())
    annotations = read_annotations(path)
    found = []
    for subset in ("training", "validation", "testing"):
        index, missing = index_subset(annotations, subset, video_root)
        assert not missing, missing
        found += [index.path(i) for i in range(len(index))]
    assert len(found) == len(set(found)) == n_videos  # each file once: none merged, none lost
    counts = {}
    for item in data["database"].values():
        counts[item["subset"]] = counts.get(item["subset"], 0) + 1
    assert printed_counts(out, path) == counts
    for label in CLASSES:
        assert f"only_{label}" in data["database"] or any(
            k.endswith(f"only_{label}") for k in data["database"]
        )
    return data["database"]


def test_custom_folders_keep_every_same_named_video(videos, tmp_path, capsys):
    out = tmp_path / "mine.json"
    assert main(["prepare", "custom", str(videos), "--out", str(out), "--val-fraction", "0.5"]) == 0
    database = check_file(out, videos, capsys.readouterr().out, 6)
    assert {"bikes/clip", "bunny/clip", "carphone/clip"} <= set(database)
    assert "only_bikes" in database  # unique stems keep the original's plain ids


def test_custom_csv_keeps_every_same_named_video(videos, tmp_path, capsys):
    rows = [f"{label}/clip.mp4,{label}" for label in CLASSES]
    rows += [f"{label}/only_{label}.mp4,{label},val" for label in CLASSES]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "csv.json"
    argv = ["prepare", "custom", str(tmp_path / "list.csv"), "--out", str(out)]
    assert main([*argv, "--video-path", str(videos)]) == 0
    check_file(out, videos, capsys.readouterr().out, 6)


def test_ucf101_split_lists_keep_both_and_name_a_true_duplicate(videos, tmp_path, capsys):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    train = [f"{c}/clip.mp4 {i}" for i, c in enumerate(CLASSES, 1)]
    train.append("bikes/clip.mp4 1")  # the same video listed again
    (splits / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (splits / "testlist01.txt").write_text("".join(f"{c}/only_{c}.mp4\n" for c in CLASSES))
    out = tmp_path / "ann"
    argv = ["prepare", "ucf101", str(splits), "--out", str(out), "--splits", "1"]
    assert main([*argv, "--video-path", str(videos)]) == 0
    printed = capsys.readouterr().out
    database = check_file(out / "ucf101_01.json", videos, printed, 6)
    assert database["bunny/clip"]["subset"] == "training"  # not pointed at the test video
    assert "1 listed twice" in printed
    listed = (out / "ucf101_01.json.missing.txt").read_text()
    assert "bikes/clip: listed again (training, bikes)" in listed


def test_hmdb51_kinetics_and_mit_keep_every_same_named_video(videos, tmp_path, capsys):
    hmdb = tmp_path / "hmdb"
    hmdb.mkdir()
    for c in CLASSES:
        (hmdb / f"{c}_test_split1.txt").write_text(f"clip.mp4 1\nonly_{c}.mp4 2\n")
    assert main(["prepare", "hmdb51", str(hmdb), "--out", str(tmp_path / "h"), "--splits", "1",
                 "--video-path", str(videos)]) == 0  # fmt: skip
    check_file(tmp_path / "h" / "hmdb51_1.json", videos, capsys.readouterr().out, 6)

    kinetics = tmp_path / "k" / "videos"
    csv = ["label,youtube_id,time_start,time_end,split"]
    for k, c in enumerate(CLASSES):  # one YouTube clip annotated in three classes
        write_mp4(kinetics / c / "yt_000001_000011.mp4", frames_with_index(6, 16, 16, seed=k))
        write_mp4(kinetics / c / f"only{k}_000000_000010.mp4", frames_with_index(6, 16, 16))
        csv += [f"{c},yt,1,11,train", f"{c},only{k},0,10,val"]
    (tmp_path / "k" / "k_train.csv").write_text("\n".join(csv) + "\n")
    out = tmp_path / "k.json"
    assert main(["prepare", "kinetics", str(tmp_path / "k" / "k_train.csv"), "--out", str(out),
                 "--video-path", str(kinetics)]) == 0  # fmt: skip
    data = json.loads(out.read_text())["database"]
    assert {"bikes/yt_000001_000011", "only0_000000_000010"} <= set(data)
    found = []
    for subset in ("training", "validation"):
        index, missing = index_subset(read_annotations(out), subset, kinetics)
        assert not missing
        found += [index.path(i) for i in range(len(index))]
    assert len(set(found)) == 6
    capsys.readouterr()

    mit = tmp_path / "mit"
    mit.mkdir()
    (mit / "moments_categories.txt").write_text(
        "".join(f"{c},{i}\n" for i, c in enumerate(CLASSES))
    )
    (mit / "trainingSet.csv").write_text("".join(f"{c}/clip.mp4,{c},3,3\n" for c in CLASSES))
    (mit / "validationSet.csv").write_text("".join(f"{c}/only_{c}.mp4,{c},3,3\n" for c in CLASSES))
    assert main(["prepare", "mit", str(mit), "--out", str(tmp_path / "m.json"),
                 "--video-path", str(videos)]) == 0  # fmt: skip
    check_file(tmp_path / "m.json", videos, capsys.readouterr().out, 6)


def test_writing_two_entries_under_one_id_is_refused(tmp_path):
    from cnn3d.data.annotations import AnnotationError, Annotations, Entry, write_annotations

    both = Annotations(["a", "b"], [Entry("clip", "training", "a"), Entry("clip", "training", "b")])
    with pytest.raises(AnnotationError, match="1 video id.* more than one entry.*'clip'"):
        write_annotations(tmp_path / "x.json", both)


def test_inputs_from_several_folders_keep_their_folders_in_the_output_names(
    videos, tmp_path, tiny_checkpoint, capsys
):
    folders = [str(videos / "bikes"), str(videos / "bunny")]
    out = tmp_path / "out.json"
    assert main(["classify", *folders, "--checkpoint", str(tiny_checkpoint), "-o", str(out)]) == 0
    entries = json.loads(out.read_text())
    assert sorted(e["video"] for e in entries) == sorted(
        str(videos / c / n) for c in ("bikes", "bunny") for n in ("clip.mp4", f"only_{c}.mp4")
    )
    feats = tmp_path / "feats"
    assert main(["features", *folders, "--checkpoint", str(tiny_checkpoint), "-o", str(feats)]) == 0
    assert (feats / "bikes" / "clip.npy").exists() and (feats / "bunny" / "clip.npy").exists()
    manifest = (feats / "manifest.csv").read_text()
    assert manifest.count("clip.npy") == 2 and "bikes/clip.npy" in manifest


def test_names_that_differ_only_in_the_extension(tmp_path, tiny_checkpoint, capsys):
    """One JSON file takes both; per-video files would collide: refused up front, in words."""
    folder = tmp_path / "in"
    write_mp4(folder / "x.mp4", frames_with_index(6, 16, 16))
    write_mp4(folder / "x.mkv", frames_with_index(6, 16, 16, seed=1))
    out = tmp_path / "out.json"
    assert (
        main(["classify", str(folder), "--checkpoint", str(tiny_checkpoint), "-o", str(out)]) == 0
    )
    assert sorted(Path(e["video"]).name for e in json.loads(out.read_text())) == ["x.mkv", "x.mp4"]
    capsys.readouterr()
    feats = tmp_path / "feats"
    argv = ["features", str(folder), "--checkpoint", str(tiny_checkpoint), "-o", str(feats)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "1 features output would each be written by two inputs or more" in err
    assert "differ only in their extension; nothing was written" in err
    assert f"x: {folder / 'x.mkv'} and {folder / 'x.mp4'}" in err
    assert not feats.exists()
