import numpy as np
import pytest

from cnn3d.data import sampling as s


def test_random_clip_every_start_equally_likely_including_the_last():
    rng = np.random.default_rng(0)
    starts = [int(s.random_clip(20, 16, 1, rng)[0]) for _ in range(5000)]
    counts = np.bincount(starts, minlength=5)
    assert set(starts) == {0, 1, 2, 3, 4}  # the original never chose the last start (4)
    assert counts.min() > 800


def test_random_clip_with_stride_and_short_video():
    rng = np.random.default_rng(0)
    clip = s.random_clip(100, 4, 3, rng)
    assert list(np.diff(clip)) == [3, 3, 3] and clip[-1] < 100
    assert list(s.random_clip(5, 8, 1, rng)) == [0, 1, 2, 3, 4, 0, 1, 2]  # loop padding
    assert list(s.random_clip(5, 4, 2, rng)) == [0, 2, 4, 0]


def test_center_clips():
    assert list(s.center_clip(10, 4)) == [3, 4, 5, 6]
    assert list(s.center_clip(3, 5)) == [0, 1, 2, 0, 1]
    assert list(s.center_clip(20, 4, 2)) == [6, 8, 10, 12]


def test_even_clips_exact_tables():
    starts = [int(c[0]) for c in s.even_clips(300, 16, 3)]
    assert starts == [0, 142, 284]  # last clip ends on the last frame
    assert [int(c[0]) for c in s.even_clips(20, 16, 3)] == [0, 2, 4]
    assert [list(c) for c in s.even_clips(10, 4, 1)] == [[3, 4, 5, 6]]  # N = 1 works
    short = s.even_clips(5, 8, 3)
    assert len(short) == 3 and all(list(c) == [0, 1, 2, 3, 4, 0, 1, 2] for c in short)
    strided = s.even_clips(100, 4, 2, stride=4)  # the stride applies in validation too
    assert [list(c) for c in strided] == [[0, 4, 8, 12], [87, 91, 95, 99]]


def test_sliding_clips_cover_every_frame():
    clips = s.sliding_clips(40, 16)
    assert [list(c) for c in clips] == [
        list(range(0, 16)),
        list(range(16, 32)),
        list(range(32, 40)) + list(range(32, 40)),
    ]
    assert len(s.sliding_clips(32, 16)) == 2  # ends exactly: no extra window
    assert [int(c[0]) for c in s.sliding_clips(40, 16, window_stride=8)] == [0, 8, 16, 24]
    assert [list(c) for c in s.sliding_clips(5, 16)] == [[0, 1, 2, 3, 4] * 3 + [0]]
    strided = s.sliding_clips(20, 4, stride=3)
    assert [list(c) for c in strided] == [[0, 3, 6, 9], [10, 13, 16, 19]]


def test_errors():
    with pytest.raises(ValueError, match="no frames"):
        s.center_clip(0, 16)
    with pytest.raises(ValueError):
        s.even_clips(10, 4, 0)


def test_a_one_frame_video_gives_loop_padded_clips():
    from cnn3d.data import sampling

    assert sampling.clip_at(0, 1, 4).tolist() == [0, 0, 0, 0]
    assert [c.tolist() for c in sampling.even_clips(1, 3, 2)] == [[0, 0, 0], [0, 0, 0]]
    assert [c.tolist() for c in sampling.sliding_clips(1, 3)] == [[0, 0, 0]]
    assert sampling.random_clip(1, 2, 1, np.random.default_rng(0)).tolist() == [0, 0]


def _sister_tool_windows(n_frames: int) -> list[list[int]]:
    """video-classification-3d-cnn's clips, 0-based: `range(1, n - 16 + 1, 16)`, frames
    i..i+15 (1-based) each (../shared/reference/original-system.md §5.2)."""
    return [list(range(i - 1, i + 15)) for i in range(1, n_frames - 16 + 1, 16)]


def test_tail_drop_gives_the_sister_tools_windows():
    for n in range(17, 100):
        got = [c.tolist() for c in s.sliding_clips(n, 16, tail="drop")]
        assert got == _sister_tool_windows(n), n
    # by hand: 32 frames end exactly on a window, which the sister tool still drops
    assert [int(c[0]) for c in s.sliding_clips(32, 16, tail="drop")] == [0]
    assert [int(c[0]) for c in s.sliding_clips(33, 16, tail="drop")] == [0, 16]
    assert [int(c[0]) for c in s.sliding_clips(32, 16, tail="pad")] == [0, 16]
    # too short for any window (the sister tool crashed): one loop-padded window
    assert [c.tolist() for c in s.sliding_clips(10, 16, tail="drop")] == [
        list(range(10)) + list(range(6))
    ]
    assert [c.tolist() for c in s.sliding_clips(16, 16, tail="drop")] == [list(range(16))]
    # overlapping windows and strided clips follow the same rule: end before the last frame
    assert [int(c[0]) for c in s.sliding_clips(40, 16, window_stride=8, tail="drop")] == [0, 8, 16]
    assert [c.tolist() for c in s.sliding_clips(12, 3, stride=2, tail="drop")] == [
        [0, 2, 4], [5, 7, 9]  # a clip spans 5 frames: the next would end on frame 14
    ]  # fmt: skip
    with pytest.raises(ValueError, match="tail"):
        s.sliding_clips(40, 16, tail="keep")


def test_tail_complete_keeps_every_window_that_fits():
    """Finspire13's I3D extractor (ActionFormer's THUMOS14 features): chunks of 16 every 4
    frames, starts 0, 4, ... up to ((n - 16) // 4) * 4, so (n - 16) // 4 + 1 windows. By hand."""
    starts = lambda n: [int(c[0]) for c in s.sliding_clips(n, 16, 4, tail="complete")]  # noqa: E731
    assert starts(20) == [0, 4]  # the window 4..19 ends on the last frame: kept
    assert [int(c[0]) for c in s.sliding_clips(20, 16, 4, tail="drop")] == [0]  # drop: not
    assert starts(23) == [0, 4] and starts(24) == [0, 4, 8] and starts(17) == [0]
    assert starts(16) == [0]  # one window exactly (the extractor itself refuses n <= 16)
    assert len(starts(5094)) == 1270 and starts(5094)[-1] == 5076  # actionformer #5's video
    assert [c.tolist() for c in s.sliding_clips(10, 16, 4, tail="complete")] == [
        list(range(10)) + list(range(6))
    ]  # too short for any window: one loop-padded window, as drop
    assert s.sliding_clips(24, 16, 4, tail="complete")[-1].tolist() == list(range(8, 24))
    assert [int(c[0]) for c in s.sliding_clips(32, 16, tail="complete")] == [0, 16]
    plan = s.plan_clips(24, 16, window_stride=4, tail="complete")
    assert plan.starts == (0, 4, 8) and plan.segment(8) == (9, 24)


def test_a_clip_plan_holds_windows_segments_times_and_source_frames():
    """By hand: 40 frames at 25 fps in windows of 16 (pad), and the same at 30 fps resampled to
    15 fps (stream frame i shows source frame floor(2 i))."""
    plan = s.plan_clips(40, 16, source_fps=25.0)
    assert plan.starts == (0, 16, 32) and plan.stream_length == 40
    assert [plan.segment(b) for b in plan.starts] == [(1, 16), (17, 32), (33, 40)]
    assert [plan.time(b) for b in plan.starts] == [[0.0, 0.64], [0.64, 1.28], [1.28, 1.6]]
    assert plan.positions(32).tolist() == list(range(32, 40)) * 2  # loop-padded
    assert plan.duration_s == 1.6
    resampled = s.plan_clips(40, 16, source_fps=30.0, target_fps=15.0)
    assert resampled.stream_length == 20 and resampled.starts == (0, 16)
    assert resampled.positions(0).tolist() == [2 * i for i in range(16)]
    assert resampled.positions(16).tolist() == [32, 34, 36, 38] * 4
    assert resampled.segment(16) == (17, 20) and resampled.time(16) == [16 / 15, 20 / 15]
    assert resampled.duration_s == 40 / 30
    even = s.plan_clips(10, 16, n_clips=3)  # shorter than a clip: the same padded clip 3 times
    assert even.starts == (0, 0, 0) and even.time(0) is None
    with pytest.raises(ValueError, match="source's frame rate"):
        s.plan_clips(40, 16, target_fps=15.0)


def test_strides_reach_every_clip_and_rates_are_checked_by_hand():
    """A temporal stride of 2 in every way a clip is made (mutation survivors: the stride not
    passed on), defaults, frame-rate edges and `window_stride` in a plan."""
    assert s.clip_at(0, 40, 4).tolist() == [0, 1, 2, 3] and s.span(4) == 4
    assert s.clip_at(0, 40, 4, 2).tolist() == [0, 2, 4, 6]
    assert s.even_clips(40, 4, 1, 2)[0].tolist() == [16, 18, 20, 22]  # (40 - 7) // 2 = 16
    assert [c.tolist() for c in s.sliding_clips(5, 4, None, 2, "drop")] == [[0, 2, 4, 0]]
    plan = s.plan_clips(40, 4, 2, window_stride=10)
    assert plan.starts == (0, 10, 20, 30)  # 30 + 7 >= 40: the last, loop-padded
    assert plan.positions(30).tolist() == [30, 32, 34, 36]
    assert plan.segment(10) == (11, 17) and plan.segment(30) == (31, 37)
    assert s.resampled_length(1, 30.0, 1.0) == 1  # a one-frame video stays one frame
    assert s.resampled_length(3, 0.5, 1.0) == 6 and s.resampled_length(6, 1.0, 0.5) == 3
    for source, target in ((0.0, 15.0), (30.0, 0.0), (-1.0, 15.0)):
        with pytest.raises(ValueError, match="frame rates must be positive"):
            s.resampled_length(10, source, target)
    for make in (lambda: s.clip_at(0, 0, 4), lambda: s.loop_pad([], 4)):
        with pytest.raises(ValueError, match="no frames"):
            make()
