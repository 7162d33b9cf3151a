"""`inference`: a network over raw videos' windows. Each video's result carries its units
(1-based segments, seconds, source frames, rates), checked by hand against a 25 fps video;
unreadable videos are named in order; `--fps`, `--layer` and `--spatial` reach the network;
compiling is decided and padded as documented (a stand-in compiler, so no C++ compiler needed)."""

import pytest
import torch

from cnn3d.errors import UsageError
from cnn3d.inference.runner import COMPILE_FROM, Compiled, InferenceConfig, maybe_compile, run_model
from cnn3d.models import build_model, load_model, with_spec
from helpers import frames_with_index, write_mp4


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    write_mp4(root / "a.mp4", frames_with_index(40, 48, 64))  # 25 fps: 1.6 s
    (root / "broken.mp4").write_bytes(b"not a video")
    write_mp4(root / "b.mp4", frames_with_index(20, 48, 64, seed=1))
    return [root / "a.mp4", root / "broken.mp4", root / "b.mp4"]


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint)


def test_results_carry_segments_times_frames_and_rates(videos, model):
    config = InferenceConfig(batch_size=5, workers=0)  # windows of several videos per batch
    results, failures = run_model(model, videos, config)
    assert [r.video for r in results] == [str(videos[0]), str(videos[2])]
    assert len(failures) == 1 and "broken.mp4" in failures[0]
    a, b = results
    assert a.segments == [(1, 16), (17, 32), (33, 40)] and b.segments == [(1, 16), (17, 20)]
    assert a.times == [[0.0, 0.64], [0.64, 1.28], [1.28, 1.6]]
    assert a.frames[0] == list(range(1, 17)) and a.frames[2] == list(range(33, 41)) * 2
    assert (a.fps, a.stream_fps, a.duration_s) == (25.0, 25.0, 1.6)
    assert len(a.logits) == 3 and a.logits[0].shape == (3,) and not a.features


def test_fps_layer_and_spatial_reach_the_network(videos, model):
    config = InferenceConfig(workers=0, fps=12.5)
    (a,), _ = run_model(model, videos[:1], config, want_features=True)
    assert a.segments == [(1, 16), (17, 20)] and a.stream_fps == 12.5 and a.fps == 25.0
    assert a.frames[0] == list(range(1, 33, 2))  # stream frame i shows source frame 2 i
    assert a.times == [[0.0, 1.28], [1.28, 1.6]]
    assert a.features[0].shape == (model.num_features,)
    (layer,), _ = run_model(model, videos[:1], InferenceConfig(layer="layer3"), want_features=True)
    assert layer.features[0].shape == (model.layer3[-1].conv2.out_channels,)
    spatial_config = InferenceConfig(layer="layer3", spatial=True)
    (spatial,), _ = run_model(model, videos[:1], spatial_config, want_features=True)
    assert spatial.features[0].dim() == 4  # C x T' x H' x W', unpooled


def test_rgb_into_a_flow_model_is_named_before_any_work(videos, tmp_path):
    flow = build_model("resnet", 10, 3, widen_factor=0.25, n_input_channels=2)
    with_spec(flow, sample_size=32)
    gone = tmp_path / "gone.unknown"  # cannot be opened: the next input is checked
    with pytest.raises(UsageError, match=r"a\.mp4: RGB input, but the model takes flow"):
        run_model(flow, [gone, videos[0]], InferenceConfig())


def test_compiling_is_decided_by_the_window_count_and_pads_to_one_batch(capsys):
    net = torch.nn.Identity()
    assert maybe_compile(net, COMPILE_FROM - 1, None, 4) == (net, False)
    assert (
        "torch.compile: off (auto; 1999 windows, compiling pays from 2000)"
        in capsys.readouterr().out
    )
    compiled, used = maybe_compile(net, COMPILE_FROM, None, 4)
    assert used and isinstance(compiled, Compiled) and compiled.batch_size == 4
    assert maybe_compile(net, 10, True, 4)[1] and not maybe_compile(net, 10**6, False, 4)[1]
    out = capsys.readouterr().out
    assert "on (--compile; 10 windows)" in out and "off (--no-compile; 1000000 windows)" in out

    seen = []
    del compiled._modules["compiled"]  # torch.compile's module, replaced by a stand-in
    compiled.compiled = lambda x: seen.append(x.shape[0]) or 2 * x  # a stand-in compiler
    x = torch.arange(2 * 3, dtype=torch.float32).reshape(2, 3)
    assert torch.equal(compiled(x), 2 * x) and seen == [4]  # padded to 4, cut back to 2
    assert torch.equal(compiled(torch.ones(6, 3)), torch.ones(6, 3)) and seen == [4]  # too big

    def broken(x):
        raise RuntimeError("no C++ compiler")

    compiled.compiled = broken
    assert torch.equal(compiled(x), x) and compiled.failed  # eager from then on, said once
    assert "torch.compile failed (RuntimeError); running uncompiled" in capsys.readouterr().out
    assert torch.equal(compiled(x), x)
