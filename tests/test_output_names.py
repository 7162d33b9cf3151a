"""Outputs are named by the input's path relative to its input folder; inputs that would share
an output are refused before any work; non-video files are counted, not silently passed over."""

import h5py
import numpy as np
import pytest

from cnn3d.cli import main
from helpers import frames_with_index, write_mp4


@pytest.fixture
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def test_same_file_names_in_other_folders_keep_their_own_features(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    write_mp4(src / "a" / "clip.mp4", frames_with_index(16, 48, 64, seed=1))
    write_mp4(src / "b" / "clip.mp4", frames_with_index(32, 48, 64, seed=2))
    (src / "b" / "notes.txt").write_text("not a video")
    out = tmp_path / "feats"
    assert main(["features", str(src), "--checkpoint", str(checkpoint), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 non-video file(s) (.txt)" in err
    a, b = np.load(out / "a" / "clip.npy"), np.load(out / "b" / "clip.npy")
    assert a.shape == (1, 128) and b.shape == (2, 128)  # one window vs two: its own video
    h5 = tmp_path / "f.h5"
    assert main(["features", str(src), "--checkpoint", str(checkpoint), "-o", str(h5)]) == 0
    with h5py.File(h5) as f:
        assert f["a/clip/clips"].shape == (1, 128) and f["b/clip/clips"].shape == (2, 128)
        np.testing.assert_allclose(f["b/clip/clips"][()], b, rtol=1e-5, atol=1e-6)


def test_outputs_that_would_collide_are_refused_up_front(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    write_mp4(src / "x.mp4", frames_with_index(16, 48, 64))
    write_mp4(src / "x.mkv", frames_with_index(16, 48, 64, seed=1))
    for out in (tmp_path / "feats", tmp_path / "f.h5"):
        assert main(["features", str(src), "--checkpoint", str(checkpoint), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert "x.mkv" in err and "x.mp4" in err and "nothing was written" in err
        assert not out.exists()


def test_verbose_names_the_skipped_files(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    write_mp4(src / "v.MP4", frames_with_index(16, 48, 64))
    (src / "readme.md").write_text("hi")
    rc = main(["classify", str(src), "--checkpoint", str(checkpoint), "--verbose"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "v.MP4" in captured.out and "skipped: " in captured.err and "readme.md" in captured.err


def test_list_files_window_stride_and_broken_inputs(tmp_path, checkpoint, capsys):
    import json

    src = tmp_path / "in"
    write_mp4(src / "a" / "one.mp4", frames_with_index(32, 48, 64, seed=1))
    write_mp4(src / "two.mp4", frames_with_index(20, 48, 64, seed=2))
    (src / "bad.mp4").write_text("not a video")
    listing = src / "videos.LST"
    listing.write_text(f"a/one.mp4\n{src / 'two.mp4'}\nbad.mp4\n")
    out = tmp_path / "out.json"
    argv = ["classify", str(listing), str(tmp_path / "gone.txt"), "--checkpoint", str(checkpoint)]
    rc = main([*argv, "-o", str(out), "--window-stride", "8", "--topk", "2"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "gone.txt" in err and err.count("bad.mp4:") == 1 and "2 input(s)" in err
    entries = {e["video"]: e for e in json.loads(out.read_text())}
    assert set(entries) == {str(src / "a" / "one.mp4"), str(src / "two.mp4")}
    one = entries[str(src / "a" / "one.mp4")]
    # 32 frames, 16-frame windows every 8 frames: [1-16], [9-24], [17-32]
    assert [c["segment"] for c in one["clips"]] == [[1, 16], [9, 24], [17, 32]]
    assert one["label"] == one["top_k"][0]["label"]
    feats = tmp_path / "feats"
    assert main(["features", str(listing), "--checkpoint", str(checkpoint), "-o", str(feats)]) == 1
    # named as the list writes them: relative lines keep their folders, absolute ones their name
    assert (feats / "a" / "one.npy").exists() and (feats / "two.npy").exists()
