"""Fixtures shared by the test files (the only place they are defined); functions shared by
them are in helpers.py. Session-scoped data is made once for the whole suite."""

import os
import signal
from dataclasses import replace

import av
import pytest
import torch

from cnn3d.data.annotations import build_ucf101, write_annotations
from cnn3d.data.prepare import attach_videos
from cnn3d.data.synthetic import write_synthetic_dataset
from cnn3d.models import build_model, save_model
from helpers import FPS, N_FRAMES, frames_with_code, run_training

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs 3 test processes on the cores: one thread each (and in the processes the
    # tests start), or their thread pools spin against each other
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


# The files that take longest (wall time in a `make test` run, BENCHMARKS.md "The test suite"),
# first: `make test` spreads whole files over processes (pytest-xdist `--dist loadfile`, with
# `--no-loadscope-reorder`: xdist's own order is by test count, which put the long files of a
# few tests last), and a long file started last would be the run's tail.
LONGEST_FIRST = (
    "test_preemption.py", "test_benchmark_scripts.py", "test_backbones_train.py",
    "test_device_path.py", "test_slurm.py", "test_nothing_lost.py", "test_models.py",
    "test_export.py", "test_backbone_c3d_s3d_mc3.py", "test_live.py", "test_device_check.py",
    "test_backbone_pytorchvideo.py", "test_checkpoint.py", "test_train.py",
    "test_presets_vad.py", "test_backbones_export.py", "test_presets.py",
    "test_backbone_i3d.py", "test_benchmark.py", "test_golden_input.py", "test_compile.py",
    "test_recipes.py", "test_crops.py", "test_backbone_x3d.py", "test_features_at_scale.py",
    "test_first_hour.py", "test_messy_media.py", "test_live_endings.py", "test_card.py",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _stop_signals_restored():
    """A stop signal's handler as before each test: an in-process run that stopped on a signal
    ignores the signals after its checkpoint (`StopSignals.commit`, as a process on its way
    out), which would leak into the tests after it and the processes they start."""
    numbers = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
    before = {n: signal.getsignal(n) for n in numbers}
    yield
    for number, handler in before.items():
        if signal.getsignal(number) != handler and handler is not None:
            signal.signal(number, handler)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A quarter-width 3D ResNet-10 with three classes (x, y, z) that takes 32x32 clips of 16
    frames, saved as a cnn3d checkpoint: fast enough for any command's end-to-end test."""
    from cnn3d.models import build_model, save_model, with_spec

    torch.manual_seed(0)
    model = build_model("resnet", 10, 3, widen_factor=0.25)
    with_spec(model, class_names=["x", "y", "z"], sample_size=32)
    path = tmp_path_factory.mktemp("tiny") / "m.safetensors"
    save_model(path, model)
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(videos, annotation file): 2 classes, 12 training and 4 validation videos of 16 frames."""
    root = tmp_path_factory.mktemp("tiny")
    layout = write_synthetic_dataset(
        root,
        classes=("MoveRight", "Grow"),
        groups=4,
        clips_per_group=2,
        test_groups=1,
        n_frames=16,
        height=48,
        width=64,
    )
    ann = attach_videos(build_ucf101(layout.split_dir, 1), layout.video_dir)
    write_annotations(root / "ann.json", ann)
    return layout.video_dir, root / "ann.json"


@pytest.fixture(scope="session")
def stream(tmp_path_factory):
    """(an MPEG-TS file of frames with a known pattern, a small RGB checkpoint)."""
    root = tmp_path_factory.mktemp("live")
    ts = root / "stream.ts"
    container = av.open(str(ts), "w", format="mpegts")
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    video.options = {"g": "10", "bf": "0"}
    for frame in frames_with_code(N_FRAMES, 48, 64):
        for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    container.close()
    torch.manual_seed(0)
    model = build_model("resnet", 10, 4, widen_factor=0.25)
    names = ["a", "b", "c", "d"]
    model.spec = replace(model.spec, clip_length=8, sample_size=32, class_names=names)
    checkpoint = root / "model.pth"
    save_model(checkpoint, model)
    return ts, checkpoint


@pytest.fixture(scope="session")
def straight(tiny, tmp_path_factory):
    """An uninterrupted run of the preemption tests (`helpers.COMMON`): what every stopped and
    resumed run must end as."""
    result = tmp_path_factory.mktemp("straight") / "run"
    run_training(tiny, result)
    return result


@pytest.fixture
def shallow_networks(monkeypatch):
    """The deep families' smallest depths with one or two blocks a stage, for tests whose cost is
    tracing every block (ONNX export): the block kinds, widths and downsampling as at full
    depth. ResNet-50-style tables (3D ResNets, WRN, ResNeXt, pytorchvideo's ResNets and
    SlowFast), DenseNet-121, the I3D ResNet-50 (a non-local block still in stages 2 and 3) and
    X3D-XS (stage 2's second block is one without squeeze-excitation)."""
    from cnn3d.models import densenet, i3d_nl, pv_resnet, resnet, x3d

    monkeypatch.setitem(resnet.DEPTHS, 50, ("bottleneck", (1, 1, 1, 1)))
    monkeypatch.setitem(pv_resnet.STAGE_BLOCKS, 50, (1, 1, 1, 1))
    monkeypatch.setitem(densenet.BLOCK_CONFIGS, 121, (1, 2, 2, 1))
    monkeypatch.setattr(i3d_nl, "LAYERS", (1, 2, 2, 1))
    clip_length, crop_size, _ = x3d.VARIANTS["xs"]
    monkeypatch.setitem(x3d.VARIANTS, "xs", (clip_length, crop_size, (1, 2, 1, 1)))
