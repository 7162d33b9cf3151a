import numpy as np
import pytest
import torch

from cnn3d.data.sources import (
    FrameFolderSource,
    HDF5Source,
    VideoFileSource,
    VideoReadError,
    open_source,
)
from helpers import frames_with_index, write_hdf5, write_jpeg_folder, write_mp4


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    frames = frames_with_index(30)
    write_jpeg_folder(root / "frames", frames)
    write_hdf5(root / "video.hdf5", frames)
    write_mp4(root / "video.mp4", frames, gop=8)
    write_mp4(root / "video.avi", frames, gop=8)
    write_mp4(root / "video.mkv", frames, gop=8)
    return root, frames


def as_thwc(clip):
    return clip.permute(0, 2, 3, 1).numpy().astype(np.int64)


@pytest.mark.parametrize(
    "name,tolerance",
    [("frames", 5), ("video.hdf5", 5), ("video.mp4", 8), ("video.avi", 12), ("video.mkv", 8)],
)
def test_sources_read_back_the_written_frames(media, name, tolerance):
    root, frames = media
    source = open_source(root / name)
    assert source.n_frames == 30
    positions = [29, 3, 4, 5, 17, 3]  # any order, repeats, far seeks
    clip = source.read(positions)
    assert clip.dtype == torch.uint8 and clip.shape == (6, 3, 48, 64)
    got = as_thwc(clip)
    for k, p in enumerate(positions):
        # adjacent frames differ by 6 in mean brightness: this pins the exact frame
        assert np.abs(got[k].mean() - frames[p].astype(np.int64).mean()) < 2.5, (name, p)
        assert np.abs(got[k] - frames[p]).mean() < tolerance


def test_frame_folder_is_one_based(media):
    root, frames = media
    assert (root / "frames" / "image_00001.jpg").exists()
    first = FrameFolderSource(root / "frames").read([0])
    assert abs(first.float().mean().item() - frames[0].mean()) < 1.5


def test_an_mmaction_img_folder_reads_as_its_files_decode(media, tmp_path):
    """mmaction/TSN name frames `img_%05d.jpg` (1-based): the same frames, each exactly what
    libjpeg-turbo decodes from that file."""
    import simplejpeg

    root, _ = media
    folder = tmp_path / "tsn"
    folder.mkdir()
    for i in range(1, 31):
        (folder / f"img_{i:05d}.jpg").write_bytes(
            (root / "frames" / f"image_{i:05d}.jpg").read_bytes()
        )
    source = open_source(folder)
    assert source.n_frames == 30
    got = source.read([0, 29, 7])
    for k, i in enumerate((1, 30, 8)):
        want = simplejpeg.decode_jpeg((folder / f"img_{i:05d}.jpg").read_bytes())
        assert np.array_equal(got[k].permute(1, 2, 0).numpy(), want), i
    (folder / "img_00005.jpg").unlink()
    with pytest.raises(VideoReadError, match="img_00005.jpg: missing frame file"):
        source.read([4])


def test_dct_downscaled_decoding(media):
    root, _ = media
    small = FrameFolderSource(root / "frames", min_short_side=24).read([0, 1])
    assert small.shape == (2, 3, 24, 32)
    assert HDF5Source(root / "video.hdf5", min_short_side=24).read([0]).shape == (1, 3, 24, 32)


def test_bad_files_name_the_file(tmp_path, media):
    root, frames = media
    (tmp_path / "notes.mp4").write_text("this is not a video\n")
    (tmp_path / "empty.mp4").write_bytes(b"")
    data = (root / "video.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    for name in ("notes.mp4", "empty.mp4", "truncated.mp4", "missing.mp4"):
        with pytest.raises(VideoReadError, match=name):
            src = VideoFileSource(tmp_path / name)
            src.read(np.arange(30))
    with pytest.raises(VideoReadError, match=r"position 30 asked for, but it has 30 frames"):
        VideoFileSource(root / "video.mp4").read([30])
    (tmp_path / "broken.hdf5").write_text("nope")
    with pytest.raises(VideoReadError, match="broken.hdf5: not a readable HDF5"):
        HDF5Source(tmp_path / "broken.hdf5").read([0])
    write_jpeg_folder(tmp_path / "gappy", frames[:4])
    (tmp_path / "gappy" / "image_00002.jpg").unlink()
    with pytest.raises(VideoReadError, match="image_00002.jpg: missing frame file"):
        FrameFolderSource(tmp_path / "gappy").read([0, 1, 2])
    (tmp_path / "gappy" / "image_00003.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(VideoReadError, match="image_00003.jpg: corrupt JPEG"):
        FrameFolderSource(tmp_path / "gappy").read([2])
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(VideoReadError, match="emptydir: the frame folder holds no"):
        _ = FrameFolderSource(tmp_path / "emptydir").n_frames


def test_video_reads_in_any_order_match_fresh_reads(tmp_path):
    # One keyframe for the whole video: sequential windows continue the open decoder,
    # overlapping ones reuse its frames, a step back seeks again. All must be frame-exact.
    import pickle

    frames = frames_with_index(30)
    path = tmp_path / "long_gop.mp4"
    write_mp4(path, frames, gop=30)
    source = VideoFileSource(path)
    reads = [
        range(0, 8),
        range(4, 12),  # overlaps the previous window
        range(8, 24, 2),  # strided
        [24, 26, 28, 24, 26, 28],  # loop-padded
        range(2, 6),  # backwards: a new seek
        range(20, 30),
    ]
    for positions in reads:
        got = as_thwc(source.read(list(positions)))
        fresh = as_thwc(VideoFileSource(path).read(list(positions)))
        assert np.array_equal(got, fresh), list(positions)
        for k, p in enumerate(positions):
            assert abs(got[k].mean() - frames[p].astype(np.int64).mean()) < 2.5
    clone = pickle.loads(pickle.dumps(source))  # the open decoder stays behind
    assert np.array_equal(as_thwc(clone.read([5, 6])), as_thwc(source.read([5, 6])))
    source.close()


def test_fork_with_an_open_decoder(tmp_path):
    # A DataLoader worker forked while this process holds an open decoder must not inherit it
    # (its codec threads' locks come along, the threads do not). Open decoders are closed before
    # a fork; the worker and then this process reopen their own.
    from torch.utils.data import DataLoader

    from cnn3d.data.dataset import Video, VideoDataset, collate_clips, worker_init
    from cnn3d.data.transforms import EvalTransform

    path = tmp_path / "v.mp4"
    write_mp4(path, frames_with_index(40), gop=40)
    dataset = VideoDataset([Video("v", str(path), 0)], EvalTransform(32), "test", clip_length=8)
    first = dataset[0]["clip"]  # this process now holds an open decoder
    assert dataset._sources[0]._cursor is not None
    loader = DataLoader(
        dataset,
        batch_size=2,
        num_workers=1,
        multiprocessing_context="fork",
        collate_fn=collate_clips,
        worker_init_fn=worker_init,
        timeout=60,
    )
    clips = torch.cat([batch["clip"] for batch in loader])
    assert len(clips) == len(dataset) == 5
    assert torch.equal(clips[0], first)
    assert torch.equal(dataset[4]["clip"], clips[4])  # and this process reads on
    dataset.close()
