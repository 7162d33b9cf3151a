import json

import pytest

from cnn3d.cli import main
from cnn3d.data import annotations as A
from helpers import frames_with_index, write_jpeg_folder, write_mp4


def test_ucf101_split_files(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Biking\n")
    (tmp_path / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBiking/v_Biking_g09_c02.avi 2\n"
    )
    (tmp_path / "testlist01.txt").write_text("Biking/v_Biking_g01_c01.avi\n")
    ann = A.build_ucf101(tmp_path, 1)
    assert ann.labels == ["ApplyEyeMakeup", "Biking"]
    assert [(e.video_id, e.subset, e.label) for e in ann.entries] == [
        ("v_ApplyEyeMakeup_g08_c01", "training", "ApplyEyeMakeup"),
        ("v_Biking_g09_c02", "training", "Biking"),
        ("v_Biking_g01_c01", "validation", "Biking"),
    ]
    (tmp_path / "testlist02.txt").write_text("Juggling/v_Juggling_g01_c01.avi\n")
    (tmp_path / "trainlist02.txt").write_text("")
    with pytest.raises(A.AnnotationError, match="testlist02.txt: class 'Juggling'"):
        A.build_ucf101(tmp_path, 2)


def test_hmdb51_tags(tmp_path):
    (tmp_path / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (tmp_path / "cartwheel_test_split1.txt").write_text("d.avi 2\n")
    ann = A.build_hmdb51(tmp_path, 1)
    assert ann.labels == ["brush_hair", "cartwheel"]
    assert [(e.video_id, e.subset) for e in ann.entries] == [
        ("a", "training"),
        ("b", "validation"),
        ("d", "validation"),
    ]


def test_kinetics_csv_and_class_order(tmp_path):
    (tmp_path / "kinetics-700_train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "slicing onion,abc,10,20,train\njetskiing,def,0,10,train\nabseiling,ghi,5,15,train\n"
    )
    (tmp_path / "kinetics-700_val.csv").write_text(
        "label,youtube_id,time_start,time_end\njetskiing,xyz,3,13\n"
    )
    files = sorted(tmp_path.glob("*.csv"))
    ann = A.build_kinetics(files)
    assert ann.labels == ["abseiling", "jetskiing", "slicing onion"]
    assert ann.entries[0].video_id == "abc_000010_000020"
    assert [e.subset for e in ann.entries] == ["training"] * 3 + ["validation"]
    assert A.build_kinetics(files, "first-appearance").labels == [
        "slicing onion",
        "jetskiing",
        "abseiling",
    ]


def test_activitynet_taxonomy_leaves(tmp_path):
    data = {
        "taxonomy": [
            {"nodeId": 1, "parentId": None, "nodeName": "Root"},
            {"nodeId": 2, "parentId": 1, "nodeName": "Sports"},
            {"nodeId": 3, "parentId": 2, "nodeName": "Surfing"},
            {"nodeId": 4, "parentId": 1, "nodeName": "Cooking"},
        ],
        "database": {
            "vid1": {
                "subset": "training",
                "duration": 10.0,
                "annotations": [{"segment": [1.0, 3.5], "label": "Surfing"}],
            }
        },
    }
    (tmp_path / "anet.json").write_text(json.dumps(data))
    ann = A.build_activitynet(tmp_path / "anet.json")
    assert ann.labels == ["Surfing", "Cooking"]
    assert ann.entries[0].extra["annotations"][0]["segment"] == [1.0, 3.5]


def test_custom_folder_and_csv(tmp_path):
    for label in ("jump", "run"):
        for i in range(5):
            write_mp4(tmp_path / "vids" / label / f"{label}{i}.mp4", frames_with_index(4, 16, 16))
    for i in range(2):  # a small class still gets one validation video
        write_mp4(tmp_path / "vids" / "wave" / f"wave{i}.mp4", frames_with_index(4, 16, 16))
    (tmp_path / "vids" / "wave" / "notes.txt").write_text("not a video")
    ann = A.build_custom_folders(tmp_path / "vids", val_fraction=0.4)
    assert ann.labels == ["jump", "run", "wave"] and len(ann.entries) == 12
    per_class = {
        label: sum(e.subset == "validation" for e in ann.entries if e.label == label)
        for label in ann.labels
    }
    assert per_class == {"jump": 2, "run": 2, "wave": 1}  # round(0.4 n), at least 1, stratified
    assert [p.name for p in ann.skipped_files] == ["notes.txt"]
    again = A.build_custom_folders(tmp_path / "vids", val_fraction=0.4)  # stable
    assert [e.subset for e in again.entries] == [e.subset for e in ann.entries]
    (tmp_path / "list.csv").write_text(
        "path,label,subset\njump/jump0.mp4,jump,train\nrun/run1.mp4,run,val\n"
    )
    ann = A.build_custom_csv(tmp_path / "list.csv")
    assert [(e.video_path, e.subset) for e in ann.entries] == [
        ("jump/jump0.mp4", "training"),
        ("run/run1.mp4", "validation"),
    ]


def test_round_trip_and_missing_videos_reported(tmp_path, capsys):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Jump\n")
    (splits / "trainlist01.txt").write_text(
        "Jump/v_Jump_g01_c01.avi 1\nJump/v_Jump_g02_c01.avi 1\n"
    )
    (splits / "testlist01.txt").write_text("Jump/v_Jump_g03_c01.avi\n")
    videos = tmp_path / "jpg"
    write_jpeg_folder(videos / "Jump" / "v_Jump_g01_c01", frames_with_index(7, 16, 16))
    write_mp4(videos / "Jump" / "v_Jump_g03_c01.mp4", frames_with_index(9, 16, 16))
    rc = main(
        [
            "prepare",
            "ucf101",
            str(splits),
            "--out",
            str(tmp_path / "ann"),
            "--video-path",
            str(videos),
            "--splits",
            "1",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "1 listed videos not found" in out and "v_Jump_g02_c01" in out
    data = json.loads((tmp_path / "ann" / "ucf101_01.json").read_text())
    assert data["labels"] == ["Jump"]
    assert data["database"]["v_Jump_g01_c01"] == {
        "subset": "training",
        "annotations": {"label": "Jump", "segment": [1, 8]},
        "n_frames": 7,  # recorded, so datasets need not open the video; no extension pinned
    }
    mp4 = data["database"]["v_Jump_g03_c01"]
    assert mp4["annotations"]["segment"] == [0, 9] and (mp4["n_frames"], mp4["fps"]) == (9, 25)
    again = A.read_annotations(tmp_path / "ann" / "ucf101_01.json")
    assert len(again.entries) == 2
    assert "v_Jump_g02_c01" in (tmp_path / "ann" / "ucf101_01.json.missing.txt").read_text()


def test_reads_original_json_unchanged(tmp_path):
    original = {
        "labels": ["a", "b"],
        "database": {
            "x": {"subset": "training", "annotations": {"label": "b", "segment": [1, 41]}},
            "y": {"subset": "testing", "annotations": {}},
        },
    }
    (tmp_path / "k.json").write_text(json.dumps(original))
    ann = A.read_annotations(tmp_path / "k.json")
    assert ann.entries[0].segment == (1, 41) and ann.entries[1].label is None
    A.write_annotations(tmp_path / "k2.json", ann)
    assert json.loads((tmp_path / "k2.json").read_text()) == original
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(A.AnnotationError, match="bad.json: not valid JSON"):
        A.read_annotations(tmp_path / "bad.json")


def test_prepare_synthetic_writes_annotations_and_ucf101_takes_split_1_alone(tmp_path, capsys):
    from cnn3d.cli import main

    dst = tmp_path / "demo"
    args = ["prepare", "synthetic", str(dst), "--n-classes", "2", "--groups", "2"]
    assert main([*args, "--clips-per-group", "1"]) == 0
    data = json.loads((dst / "synthetic_01.json").read_text())
    assert len(data["labels"]) == 2 and len(data["database"]) == 4
    assert all("n_frames" in item for item in data["database"].values())
    capsys.readouterr()
    out = tmp_path / "ann"
    # the obvious next step: the synthetic splits hold only split 1
    args = ["prepare", "ucf101", str(dst / "splits"), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "split 2 skipped" in printed and "split 3 skipped" in printed
    assert (out / "ucf101_01.json").exists() and not (out / "ucf101_02.json").exists()
    assert main([*args, "--splits", "2"]) == 2  # asked for it alone: an error


def test_prepare_mit_writes_the_originals_json(tmp_path, capsys):
    src = tmp_path / "release"
    src.mkdir()
    # the release's files: class order from the categories file (not alphabetical)
    (src / "moments_categories.txt").write_text("walking,0\nclapping,1\nboiling water,2\n")
    (src / "trainingSet.csv").write_text(
        "walking/yt-abc_12.mp4,walking,3,0\nclapping/flickr-9_x.mp4,clapping,2,1\n"
    )
    (src / "validationSet.csv").write_text("boiling water/getty-77.mp4,boiling water,4,0\n")
    (src / "testingSet.csv").write_text("test_0001.mp4\n")
    videos = tmp_path / "jpg"
    write_jpeg_folder(videos / "walking" / "yt-abc_12", frames_with_index(12))
    write_jpeg_folder(videos / "clapping" / "flickr-9_x", frames_with_index(9))
    write_jpeg_folder(videos / "boiling water" / "getty-77", frames_with_index(20))
    write_jpeg_folder(videos / "test" / "test_0001", frames_with_index(5))  # test/<id>
    out = tmp_path / "mit.json"
    argv = ["prepare", "mit", str(src), "--out", str(out), "--video-path", str(videos)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["labels"] == ["walking", "clapping", "boiling water"]
    database = {k: dict(v) for k, v in data["database"].items()}
    for v in database.values():  # recorded counts are cnn3d's addition; checked on their own
        v.pop("n_frames", None), v.pop("fps", None)
    assert database == {
        "yt-abc_12": {"subset": "training", "annotations": {"label": "walking", "segment": [1, 13]}},
        "flickr-9_x": {"subset": "training", "annotations": {"label": "clapping", "segment": [1, 10]}},
        "getty-77": {
            "subset": "validation", "annotations": {"label": "boiling water", "segment": [1, 21]}
        },
        "test_0001": {"subset": "testing", "annotations": {"segment": [1, 6]}},
    }  # fmt: skip
    assert data["database"]["yt-abc_12"]["n_frames"] == 12
    (src / "trainingSet.csv").write_text("walking/a.mp4,running,3,0\n")
    assert main(argv) == 2
    assert "trainingSet.csv:1: class 'running' is not in moments_categories.txt" in (
        capsys.readouterr().err
    )
