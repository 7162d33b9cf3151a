"""Real-world files: the video reader must return frame n = the n-th frame PyAV decodes from the
start, whatever the container, codec and timestamps, after any seek; every command agrees."""

import json

import numpy as np
import pytest

from cnn3d.cli import main
from cnn3d.data.sources import VideoFileSource, open_source
from helpers import (
    MESSY_KINDS,
    decode_every_frame,
    frames_with_code,
    read_code,
    write_messy_video,
)

N = 90


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy")
    frames = frames_with_code(N)
    return {kind: write_messy_video(root, kind, frames) for kind in MESSY_KINDS}


def frames_of(clip):
    return clip.permute(0, 2, 3, 1).numpy()


READS = [
    list(range(40, 56)),  # a seek into the middle of a GOP
    list(range(44, 60)),  # overlapping, forwards
    list(range(70, 86, 2)),  # forwards past a keyframe, strided
    list(range(5, 21)),  # backwards: a seek to the start region
    [62, 63, 64, 62, 63, 64],  # loop-padded
    list(range(N - 16, N)),  # the tail
    list(range(31, 47)),  # just after a keyframe
    [0, 1, 2],
]


@pytest.mark.parametrize("kind", MESSY_KINDS)
def test_frame_n_is_the_nth_decoded_frame(messy, kind):
    reference = decode_every_frame(messy[kind])
    assert [read_code(f) for f in reference] == list(range(N))  # the file itself is sound
    source = VideoFileSource(messy[kind])
    assert source.n_frames == N
    for positions in READS:
        got = frames_of(source.read(positions))  # reads continue one open decoder
        fresh = frames_of(VideoFileSource(messy[kind]).read(positions))  # a cold seek
        for k, p in enumerate(positions):
            assert np.array_equal(got[k], reference[p]), (kind, positions, p)
            assert np.array_equal(fresh[k], reference[p]), (kind, positions, p, "fresh")
    source.close()


def test_every_command_reads_the_same_frames(messy, tmp_path, capsys, tiny_checkpoint):
    # classify once refused files with repeated timestamps ("frames 6..10 could not be decoded")
    # while prepare frames read them; now both take every frame, in decode order.
    src = tmp_path / "src" / "Any"
    for kind in ("h264-repeated-pairs.mkv", "h264-backwards.mkv", "h264.ts"):
        src.mkdir(parents=True, exist_ok=True)
        (src / kind).write_bytes(messy[kind].read_bytes())
    dst = tmp_path / "jpg"
    assert main(["prepare", "frames", str(src.parent), str(dst), "--short-side", "0"]) == 0
    for kind in ("h264-repeated-pairs", "h264-backwards", "h264"):
        folder = open_source(dst / "Any" / kind)
        clip = frames_of(folder.read(np.arange(folder.n_frames)))
        assert [read_code(f) for f in clip] == list(range(N)), kind

    out = tmp_path / "out.json"
    rc = main(["classify", str(src), "--checkpoint", str(tiny_checkpoint), "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    entries = json.loads(out.read_text())
    assert len(entries) == 3
    for entry in entries:  # 90 frames: 5 whole windows and the tail
        assert [c["segment"][0] for c in entry["clips"]] == [1, 17, 33, 49, 65, 81]
        assert entry["clips"][-1]["segment"] == [81, 90]


def test_a_file_whose_timestamps_lie_is_read_by_counting(messy, monkeypatch):
    # If decoding contradicts the timestamp ranks, the reader falls back to counting frames
    # from the start of the file instead of returning wrong frames.
    path = messy["h264-bframes.mp4"]
    reference = decode_every_frame(path)
    source = VideoFileSource(path)
    _ = source.n_frames
    # every rank off by one, as when a decoder drops a frame the packets promised
    source._rank = {pts: rank + 1 for pts, rank in source._rank.items()}
    for first in (0, 50):
        got = frames_of(source.read(list(range(first, first + 10))))
        assert all(np.array_equal(got[k], reference[first + k]) for k in range(10)), first
        assert source._seek_positions == [0]  # from now on: decode from the start


def test_decode_time_downscaling_keeps_frames_exact(tmp_path):
    # frames far larger than the model needs are shrunk while converting (never below the
    # short side asked for); the shrunk frame n is still frame n, after any seek
    path = write_messy_video(tmp_path, "h264-bframes.mp4", frames_with_code(N, 192, 256))
    source = VideoFileSource(path, min_short_side=40)
    for positions in READS:
        clip = frames_of(source.read(positions))
        assert min(clip.shape[1:3]) >= 40 and max(clip.shape[1:3]) < 256
        assert [read_code(f) for f in clip] == positions, positions
    source.close()


@pytest.mark.parametrize("degrees,container", [(-90, "mp4"), (90, "mov"), (180, "mkv")])
def test_phone_videos_are_turned_upright(tmp_path, degrees, container):
    # stored sideways with a display rotation, as phones write portrait video; the frames come
    # out as they are shown (ffmpeg's command line, and so the original's frames, do the same)
    import av

    frames = frames_with_code(20, 48, 64)
    path = tmp_path / f"phone.{container}"
    fmt = {"mkv": "matroska"}.get(container, container)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(degrees)
        for array in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode())
    stored = decode_every_frame(path)  # as coded: 48 x 64
    turn = {-90: -1, 90: 1, 180: 2}[degrees]  # counter-clockwise quarter turns
    source = VideoFileSource(path)
    clip = frames_of(source.read([3, 17]))
    assert clip.shape[1:3] == ((48, 64) if degrees == 180 else (64, 48))
    for k, p in enumerate([3, 17]):
        assert np.array_equal(clip[k], np.rot90(stored[p], turn))
    source.close()
    dst = tmp_path / "frames"
    (tmp_path / "in" / "A").mkdir(parents=True)
    path.rename(tmp_path / "in" / "A" / path.name)
    assert main(["prepare", "frames", str(tmp_path / "in"), str(dst), "--short-side", "0"]) == 0
    folder = open_source(dst / "A" / "phone")
    assert folder.read([0]).shape[-2:] == clip.shape[1:3]
