import numpy as np

from cnn3d.cli import main
from cnn3d.data.sources import open_source
from helpers import frames_with_index, write_mp4


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
        assert not list(dst.rglob(".*"))  # no temporary leftovers
