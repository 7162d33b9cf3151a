import os
import shutil
import stat

import numpy as np
import pytest

from cnn3d.cli import main
from cnn3d.data.sources import open_source
from helpers import (
    frames_with_code,
    frames_with_index,
    read_code,
    write_messy_video,
    write_mp4,
)


def test_prepare_frames_all_formats_resumable_and_failures(tmp_path, capsys):
    src = tmp_path / "src"
    frames = frames_with_index(12, 60, 80)
    write_mp4(src / "Jump" / "a.mp4", frames)
    write_mp4(src / "Run" / "b.avi", frames)
    (src / "Run" / "broken.mp4").write_text("not a video")
    for fmt in ("jpg", "hdf5", "mp4"):
        dst = tmp_path / f"out_{fmt}"
        rc = main(
            [
                "prepare",
                "frames",
                str(src),
                str(dst),
                "--format",
                fmt,
                "--short-side",
                "30",
                "--jobs",
                "2",
            ]
        )
        assert rc == 1  # one failure: said in the exit code
        captured = capsys.readouterr()
        assert "2 videos converted" in captured.out and "broken.mp4" in captured.err
        target = dst / "Jump" / ("a" if fmt == "jpg" else f"a.{fmt}")
        source = open_source(target)
        assert source.n_frames == 12
        clip = source.read(np.arange(12))
        assert clip.shape == (12, 3, 30, 40)
        assert abs(clip[5].float().mean().item() - frames[5].mean()) < 3
        rc = main(["prepare", "frames", str(src), str(dst), "--format", fmt, "--short-side", "30"])
        assert "2 already done" in capsys.readouterr().out
        # no temporary leftovers; the record of what each output was made from
        assert [p.name for p in dst.rglob(".*")] == [".cnn3d-sources.tsv"]


def codes_of(path):
    source = open_source(path)
    clip = source.read(np.arange(source.n_frames)).permute(0, 2, 3, 1).numpy()
    return [read_code(f) for f in clip]


@pytest.mark.parametrize("fmt", ["jpg", "hdf5", "mp4"])
def test_same_names_never_share_an_output(tmp_path, capsys, fmt):
    # a/clip.mp4 and b/clip.mp4 (same name, other folders), and stems with dots
    src = tmp_path / "src"
    videos = {
        "a/clip.mp4": frames_with_code(12),
        "b/clip.mp4": frames_with_code(20)[8:],
        "c/clip.v1.mp4": frames_with_code(40)[20:],
        "c/clip.v2.mp4": frames_with_code(40)[30:],
    }
    for name, frames in videos.items():
        write_mp4(src / name, frames)
    dst = tmp_path / "out"
    assert (
        main(["prepare", "frames", str(src), str(dst), "--format", fmt, "--short-side", "0"]) == 0
    )
    assert "4 videos converted" in capsys.readouterr().out
    for name, frames in videos.items():
        out = dst / name[: -len(".mp4")] if fmt == "jpg" else dst / name.replace(".mp4", f".{fmt}")
        assert codes_of(out) == [read_code(f) for f in frames], name


def test_outputs_that_would_collide_are_refused_before_any_work(tmp_path, capsys):
    src = tmp_path / "src"
    write_mp4(src / "Run" / "x.mp4", frames_with_index(8))
    write_mp4(src / "Run" / "x.mkv", frames_with_index(8, seed=1))
    write_mp4(src / "Run" / "y.mp4", frames_with_index(8))
    for fmt in ("jpg", "hdf5"):
        dst = tmp_path / f"out_{fmt}"
        assert main(["prepare", "frames", str(src), str(dst), "--format", fmt]) == 2
        err = capsys.readouterr().err
        assert "x.mkv" in err and "x.mp4" in err and "nothing was written" in err
        assert not dst.exists()


def test_a_changed_source_is_converted_again(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "out"
    write_mp4(src / "Run" / "a.mp4", frames_with_index(8))
    write_mp4(src / "Run" / "b.mp4", frames_with_index(8))
    args = ["prepare", "frames", str(src), str(dst), "--format", "hdf5", "--short-side", "0"]
    assert main(args) == 0
    # the same name, another video (a re-download): size and mtime differ
    write_mp4(src / "Run" / "a.mp4", frames_with_index(13))
    os.utime(src / "Run" / "a.mp4", ns=(1, 1))
    assert main(args) == 0
    assert "1 videos converted, 1 already done" in capsys.readouterr().out
    assert open_source(dst / "Run" / "a.hdf5").n_frames == 13
    (dst / "Run" / "b.hdf5").unlink()  # an output removed by hand is made again
    assert main(args) == 0
    assert "1 videos converted, 1 already done" in capsys.readouterr().out


def test_every_common_container_is_found_and_others_are_counted(tmp_path, capsys):
    src = tmp_path / "src"
    frames = frames_with_code(60)
    write_messy_video(src / "A", "h264.flv", frames)
    write_messy_video(src / "C", "h264.ts", frames)
    write_messy_video(src / "B", "mpeg2.mpg", frames)
    shutil.copy(src / "C" / "h264.ts", src / "B" / "upper.MTS")
    shutil.copy(src / "A" / "h264.flv", src / "B" / "phone.3gp")  # the name's case, any content
    (src / "B" / "notes.txt").write_text("not a video")
    (src / "B" / "thumb.jpg").write_bytes(b"\xff\xd8")
    old = os.umask(0o022)
    try:
        dst = tmp_path / "out"
        assert (
            main(["prepare", "frames", str(src), str(dst), "--short-side", "0", "--verbose"]) == 0
        )
    finally:
        os.umask(old)
    out = capsys.readouterr().out
    assert "5 videos converted" in out
    assert "skipped 2 non-video file(s)" in out and "notes.txt" in out and "thumb.jpg" in out
    for name in ("A/h264", "C/h264", "B/mpeg2", "B/upper", "B/phone"):
        assert codes_of(dst / name) == list(range(60)), name
    folder = dst / "B" / "upper"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "image_00001.jpg").stat().st_mode) == 0o644


def test_a_changed_source_replaces_its_frame_folder_whole(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "out"
    write_mp4(src / "Run" / "a.mp4", frames_with_code(12))
    args = ["prepare", "frames", str(src), str(dst), "--short-side", "0"]
    assert main(args) == 0
    write_mp4(src / "Run" / "a.mp4", frames_with_code(20)[14:])  # shorter, other frames
    os.utime(src / "Run" / "a.mp4", ns=(5, 5))
    assert main(args) == 0
    assert codes_of(dst / "Run" / "a") == list(range(14, 20))  # no frame of the old one left
    assert sorted(p.name for p in (dst / "Run").iterdir()) == ["a"]  # no temporary folders


def test_atomic_writes_keep_the_old_file_on_failure_and_use_the_umask(tmp_path):
    from cnn3d.files import SourceStamp, StampLog, atomic_write

    target = tmp_path / "out.bin"
    old = os.umask(0o022)
    try:
        atomic_write(target, lambda tmp: open(tmp, "wb").write(b"first"))
        assert stat.S_IMODE(target.stat().st_mode) == 0o644

        def broken(tmp):
            open(tmp, "wb").write(b"half")
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            atomic_write(target, broken)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    log = tmp_path / "deep" / "stamps.tsv"  # its folder is made as needed
    stamps = StampLog(log)
    stamp = SourceStamp("/v/a.mp4", 10, 20)
    stamps.record("Run/a", stamp)
    with open(log, "a") as f:
        f.write("Run/b\t/v/b.mp4\t1")  # a line torn by a kill
    again = StampLog(log)
    assert again.is_done("Run/a", stamp) and not again.is_done(
        "Run/b", SourceStamp("/v/b.mp4", 1, 2)
    )
    assert SourceStamp.of(target).path == str(target.resolve())
