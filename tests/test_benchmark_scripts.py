"""Every script in benchmarks/ runs at its smallest settings, measures something tiny and prints
the lines, table rows or files it promises, with positive finite figures, so that none of them
can rot unnoticed (issue 27: classify.py and features.py crashed once `ModelSpec` became frozen).

Each runs as a user runs it, as `__main__` with its own argv, in a process of its own, from the
benchmarks folder (features.py imports classify.py from there), two at a time, one thread
each. The processes are forked from one that imported torch, torchvision, PyAV and cnn3d once
(multiprocessing's forkserver): importing them was 3.8 s of each script's run here, over a
minute of the suite. `device_check.sh` has its own test (test_device_check.py). The figures
mean nothing at these sizes; the shapes do.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
NUMBER = r"([0-9][0-9,]*\.?[0-9]*(?:e[-+]?[0-9]+)?)"
AT_ONCE = 2


def smoke_arguments(tmp: Path) -> dict[str, list[str]]:
    """Each run's script and arguments, the longest runs first (they start first)."""
    return {
        "startup": ["startup.py", "--classes", "2", "--train-per-class", "8",
                    "--val-per-class", "2", "--workers", "1", "--batches", "2", "--ranks", "1"],
        "live": ["live.py", "--seconds", "1", "--hours", "0.001", "--depth", "10", "--size", "32"],
        "engines": ["engines.py", "--demo", str(tmp / "demo"), "--threads", "1", "--no-compiled"],
        "features": ["features.py", "--videos", "2", "--seconds", "1", "--baseline-videos", "1",
                     "--workers", "0", "--batch-size", "4"],
        "conv3d_scan": ["conv3d_scan.py", "--repeats", "1", "--spatial", "4", "--kernels", "3",
                        "--strides", "1", "--dtypes", "float32", "--max-t", "2", "--threads", "1"],
        # 8 frames: torchvision's 7x7x7 stem in plain Conv3d can crash the process at T < 7
        # (BENCHMARKS.md, "Which shapes get wrong gradients")
        "train_step": ["train_step.py", "--batch", "2", "--steps", "1", "--depths", "18",
                       "--frames", "8", "--size", "32", "--device", "cpu"],
        "classify": ["classify.py", "--repeats", "1", "--seconds", "1", "--depth", "10",
                     "--batch-size", "4", "--device", "cpu"],
        "step_reads": ["step_reads.py", "--depth", "10", "--size", "16", "--frames", "4",
                       "--batch", "2", "--steps", "2", "--rounds", "1"],
        "kinetics_like": ["kinetics_like.py", str(tmp / "kinetics_like"), "--per-class", "2",
                          "--frames", "20", "--jobs", "2", "--height", "48", "--width", "64"],
        "data_pipeline": ["data_pipeline.py", "--clips", "1", "--frames", "20"],
        "checkpoint": ["checkpoint.py", "--depths", "10", "--repeats", "1", "--folder", str(tmp)],
        "flow": ["flow.py", "--seconds", "1", "--tvl1-pairs", "1"],
        # no video_features checkout in CI: cnn3d's side alone, 8-frame windows of 32 pixels
        "features_vs_video_features": ["features_vs_video_features.py", "--videos", "2",
                                       "--seconds", "0.8", "--stack", "8", "--crop", "32",
                                       "--resize", "36", "--workers", "1", "--batch-size", "2"],
        "dataset_build": ["dataset_build.py", "200"],
        # torchvision's R(2+1)D-34 is the one reference installed here (the others are checkouts)
        "backbones": ["backbones.py", "--models", "r2plus1d_34", "i3d", "--frames", "2",
                      "--size", "32", "--repeats", "1", "--threads", "1"],
        "dataset_build --help": ["dataset_build.py", "--help"],
    }  # fmt: skip


# what the forkserver imports once, before it forks each script's process
PRELOAD = ["torch", "torchvision", "numpy", "av", "h5py", "cnn3d.cli", "cnn3d.models",
           "cnn3d.data.dataset", "cnn3d.inference.features", "cnn3d.training.loop"]  # fmt: skip
_CONTEXT = None


def forkserver():
    """multiprocessing's forkserver context, started (once) with one OpenMP thread and `src` on
    the path, having imported `PRELOAD`."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "PYTHONPATH")}
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), saved["PYTHONPATH"] or ""])
        try:
            _CONTEXT.Process(target=_as_main, args=("", [], "", "")).start()  # starts the server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return _CONTEXT


def _as_main(script: str, args: list[str], out: str, err: str) -> None:
    """In the forked process: `python SCRIPT ARGS` from the benchmarks folder, stdout and stderr
    (of this process and its children) into the files `out` and `err`."""
    if not script:
        return
    import runpy

    import torch

    torch.set_num_threads(1)
    os.chdir(BENCHMARKS)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    sys.argv = [str(BENCHMARKS / script), *args]
    sys.path.insert(0, str(BENCHMARKS))
    code = 0
    try:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_script(script: str, *args: str, timeout: float = 240) -> str:
    """The script's stdout; a failure shows its stderr's end."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        process = forkserver().Process(
            target=_as_main, args=(script, list(args), str(out), str(err))
        )
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
        stdout, stderr = out.read_text(), err.read_text()
    assert process.exitcode == 0, (
        f"{script} failed ({process.exitcode}):\n{stdout[-2000:]}\n{stderr[-3000:]}"
    )
    return stdout


@pytest.fixture(scope="module")
def smoke(request, tmp_path_factory) -> dict[str, Future | Path]:
    """The runs of the scripts whose tests were selected, started together (`AT_ONCE` at a
    time); a test waits for its own with `smoke[name].result()`. `smoke["tmp"]`: the folder
    they write in."""
    selected = {
        item.name.removeprefix("test_")
        for item in request.session.items
        if getattr(item, "module", None) is sys.modules[__name__]
    }
    tmp = tmp_path_factory.mktemp("benchmarks")
    if "engines" in selected:
        write_tiny_demo(tmp / "demo")
    pool = ThreadPoolExecutor(AT_ONCE)
    runs = {
        name: pool.submit(run_script, *argv)
        for name, argv in smoke_arguments(tmp).items()
        if name.split()[0] in selected
    }
    runs["tmp"] = tmp
    yield runs
    pool.shutdown(cancel_futures=True)


def write_tiny_demo(out: Path) -> None:
    """What `cnn3d demo` leaves that engines.py reads, at toy size: held-out synthetic videos,
    their annotation file and an (untrained) `run/last.pth`."""
    import torch

    from cnn3d.data.synthetic import write_synthetic_annotations, write_synthetic_dataset
    from cnn3d.models import build_model, save_model, with_spec

    # 6 classes x 2 groups x 1 clip; group 1 held out: 6 validation videos
    layout = write_synthetic_dataset(
        out / "data", groups=2, clips_per_group=1, test_groups=1, n_frames=20, height=32, width=40
    )
    annotations = write_synthetic_annotations(layout)
    torch.manual_seed(0)
    model = build_model("resnet", 10, len(annotations.labels), widen_factor=0.25)
    save_model(out / "run" / "last.pth", with_spec(model, clip_length=4, sample_size=16))


def figures(pattern: str, text: str) -> list[float]:
    """The numbers the one line matching `pattern` carries (NUMBER groups), each checked
    positive and finite."""
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"no line matching {pattern!r} in:\n{text}"
    values = [float(g.replace(",", "")) for g in found.groups()]
    for value in values:
        assert math.isfinite(value) and value > 0, (pattern, found.group(0))
    return values


def is_ratio(printed: float, a: float, b: float, step: float, ratio_step: float) -> bool:
    """Whether `printed` (rounded to `ratio_step`) is a / b for some values that print as `a`
    and `b` (rounded to `step`): the scripts print ratios of the unrounded figures."""
    low = (a - step / 2) / (b + step / 2)
    high = (a + step / 2) / (b - step / 2) if b > step / 2 else math.inf
    return low - ratio_step / 2 - 1e-9 <= printed <= high + ratio_step / 2 + 1e-9


def test_every_benchmark_script_has_a_smoke_test():
    scripts = {p.name for p in BENCHMARKS.glob("*.py")}
    run = {argv[0] for argv in smoke_arguments(Path("tmp")).values()}
    tested = {f"{name[len('test_') :]}.py" for name in globals() if name.startswith("test_")}
    assert scripts == run and scripts <= tested, sorted(scripts ^ run) + sorted(scripts - tested)


def test_backbones(smoke):
    out = smoke["backbones"].result()
    for kind in ("inference", "training"):
        line = rf"^r2plus1d_34 +{kind} +2x32x32 +{NUMBER} +{NUMBER} +{NUMBER} +(\S+)$"
        reference, ours, ratio = figures(line.replace(r" +(\S+)$", r" +\S+$"), out)
        assert ratio == pytest.approx(ours / reference, abs=0.01)
        # the same weights, through cnn3d's loader, give the same logits
        assert float(re.search(line, out, re.MULTILINE).group(4)) < 1e-4
    assert "i3d           skipped: no --piergiaj checkout given" in out


def test_checkpoint(smoke):
    from cnn3d.models import build_model, count_parameters

    out = smoke["checkpoint"].result()
    seconds, mib = figures(
        rf"^resnet-10 \(700 classes\): {NUMBER} s per write \(median of 1\), {NUMBER} MiB$", out
    )
    # the weights and as many SGD momentum buffers, 4 bytes each, at the least
    assert mib >= 2 * 4 * count_parameters(build_model("resnet", 10, 700)) / 2**20 - 1


def test_classify(smoke):
    out = smoke["classify"].result()
    assert "1 s 320x240 25 fps mp4" in out and "3D ResNet-10" in out
    (base,) = figures(rf"^baseline \(JPEG temp dir \+ PIL \+ fp32\): {NUMBER} video-s/s$", out)
    (ours,) = figures(
        rf"^cnn3d \((?:bf16|fp32)\+channels_last, direct decode\): +{NUMBER} video-s/s$", out
    )
    (ratio,) = figures(rf"^ratio: {NUMBER}x$", out)
    assert is_ratio(ratio, ours, base, 0.01, 0.01)


def test_conv3d_scan(smoke):
    out = smoke["conv3d_scan"].result()
    assert "spatial sizes [4]" in out and "1 runs per case" in out
    # one group per layout: kernel 3, stride 1, fp32, T = 1 and 2
    groups = re.findall(
        r"^kernel 3 stride 1 float32 +(ncdhw|cl3d) *: wrong at T = (.*)$", out, re.M
    )
    assert [layout for layout, _ in groups] == ["ncdhw", "cl3d"], out
    for _, wrong in groups:
        assert wrong == "none" or set(re.findall(r"\d+", wrong.split("(")[0])) <= {"1", "2"}
    right = re.search(r"^largest relative error of the right cases: \{(.*)\}$", out, re.M)
    errors = {k: float(v) for k, v in re.findall(r"'(\w+)': '([^']+)'", right.group(1))}
    assert 0 <= errors["float32"] <= 1e-4 and errors["bfloat16"] == 0  # bf16 was not run


def test_data_pipeline(smoke):
    out = smoke["data_pipeline"].result()
    rows = re.findall(rf"^(.+?) +{NUMBER} +{NUMBER}$", out, re.M)
    names = [name for name, _, _ in rows]
    sources = ["jpg (simplejpeg)", "hdf5", "mp4 gop 250", "mp4 gop 16"]
    assert names == ["baseline (PIL per frame)"] + [
        n for s in sources for n in (s, f"{s} + float in worker")
    ], out
    base = float(rows[0][1])
    for _, rate, ratio in rows:
        assert math.isfinite(float(rate)) and float(rate) > 0
        assert is_ratio(float(ratio), float(rate), base, 0.1, 0.01)


def test_dataset_build(smoke):
    assert "N_VIDEOS" in smoke["dataset_build --help"].result().upper()
    out = smoke["dataset_build"].result()
    # validation: 3 clips per video, 200 x 3 = 600 items; test: every window of 150-299 frames
    build, per_item = figures(
        rf"^val: build {NUMBER} s for 200 videos \(600 items\); positions {NUMBER} us/item$", out
    )
    build, items, per_item = figures(
        rf"^test: build {NUMBER} s for 200 videos \({NUMBER} items\); positions {NUMBER} us/item$",
        out,
    )
    # windows of 16 frames every 16: between 150 // 16 = 9 and 299 // 16 + 1 = 19 per video
    assert 200 * 9 <= items <= 200 * 19


def test_engines(smoke):
    import torch

    from cnn3d.precision import default_amp

    out = smoke["engines"].result()
    assert re.search(r"^\d+ windows of 6 videos; export: parity passed", out, re.M), out
    rows = re.findall(
        r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+)% \| ([^|]+)% \| ([^|]+)% \| ([^|]+) \|$",
        out,
        re.M,
    )
    names = [r[0] for r in rows]
    expect = ["PyTorch eager fp32 (the reference)"]
    if default_amp(torch.device("cpu")):
        expect.append("PyTorch eager bf16 (cnn3d's default here)")
    expect.append("ONNX Runtime fp32")
    if "ONNX Runtime int8: not measured" not in out:
        expect.append("ONNX Runtime int8 (static QDQ, 64 calibration windows)")
    assert names == expect + ["OpenVINO fp32", "OpenVINO bf16"], out
    reference = rows[0]
    # the reference agrees with itself
    assert float(reference[2]) == 1 and reference[3:5] == ("100.0", "100.0")
    assert float(reference[6]) == 0
    for _, speed, ratio, windows, videos, accuracy, error in rows:
        assert float(speed) > 0
        assert is_ratio(float(ratio), float(speed), float(reference[1]), 0.1, 0.01)
        assert (
            0 <= float(windows) <= 100 and 0 <= float(videos) <= 100 and 0 <= float(accuracy) <= 100
        )
        assert math.isfinite(float(error))


def test_features(smoke):
    out = smoke["features"].result()
    assert "2 videos of 1 s (320x240, 25 fps)" in out
    (base,) = figures(rf"^baseline: {NUMBER} videos/s \(1 videos\)$", out)
    found = re.search(rf"^cnn3d features: {NUMBER} videos/s \((\d+) clips, (\d+) s\)$", out, re.M)
    assert found, out
    rate, clips = float(found.group(1)), int(found.group(2))
    assert rate > 0 and clips >= 2  # at least a window per video
    ratio, busy = figures(rf"^ratio: {NUMBER}x; model busy {NUMBER}% of the time$", out)
    assert is_ratio(ratio, rate, base, 0.001, 0.01) and busy <= 100
    # ResNet-18: the stem's BN, 2 per basic block x 8 blocks, 3 downsampling shortcuts (B)
    assert "(BatchNorm layers folded: 20)" in out


def test_features_vs_video_features(smoke):
    out = smoke["features_vs_video_features"].result()
    assert re.search(
        r"^2 videos of 0.8 s \(320x240, 25 fps\) written in \d+ s; I3D RGB \(seeded weights\), "
        r"windows of 8 frames every 8, fp32, 1 threads, device cpu$",
        out,
        re.M,
    ), out
    assert "video_features: skipped (no --video-features checkout)" in out
    rate, wall, busy = figures(
        rf"^cnn3d features \(batch 2, 1 workers, resize \d+[^,]*, crop 32\): {NUMBER} videos/s "
        rf"\({NUMBER} s\); model busy {NUMBER}% of the time$",
        out,
    )
    # 2 videos in `wall` s, each figure rounded (0.001 videos/s, 0.1 s)
    assert 2 / (wall + 0.05) - 0.0005 <= rate <= 2 / (wall - 0.05) + 0.0005 and busy <= 100
    assert "ratio:" not in out


def test_flow(smoke):
    out = smoke["flow"].result()
    blocks = re.split(r"^(?=25 frames of )", out, flags=re.M)[1:]
    assert [b.split(",")[0] for b in blocks] == ["25 frames of 320x240", "25 frames of 340x256"]
    for block in blocks:
        assert re.search(r"^25 frames of \d+x\d+, OpenCV [0-9.]+, 1 thread$", block, re.M), out
        (decode,) = figures(rf"^decoding alone: {NUMBER} frames/s$", block)
        for preset in ("DIS medium \\(prepare flow\\)", "DIS ultrafast"):
            line = rf"^{preset}: {NUMBER} flow frames/s \({NUMBER}x decoding\)$"
            rate, ratio = figures(line, block)
            assert is_ratio(ratio, rate, decode, 1, 0.01)
        tvl1 = r"^TV-L1 \(prepare flow --method tvl1\): "
        if not has_tvl1():  # the contrib wheel (the dev extra) is not installed here
            assert re.search(tvl1 + r"not measured, .*'\.\[tvl1\]'", block, re.M), block
            continue
        line = tvl1 + rf"{NUMBER} flow frames/s \({NUMBER} ms a frame pair, 1 pairs; {NUMBER}x"
        rate, ms, times = figures(line, block)
        # both printed rounded: the rate to 0.01 frames/s, the time to 1 ms (a slow TV-L1, 0.19
        # frames/s, is 5000-5400 ms)
        low, high = 1000 / (rate + 0.005) - 0.5, 1000 / max(rate - 0.005, 1e-9) + 0.5
        assert low <= ms <= high and times > 1, (rate, ms)


def has_tvl1() -> bool:
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create")


def test_kinetics_like(smoke):
    out_dir = smoke["tmp"] / "kinetics_like"
    out = smoke["kinetics_like"].result()
    assert f"written: {out_dir}" in out
    # 6 classes x 2 groups (at least one held out, one to train on) x 2 clips = 24 videos
    database = json.loads((out_dir / "annotations.json").read_text())["database"]
    assert len(database) == 24
    assert len(list((out_dir / "mp4" / "videos").glob("*/*.mp4"))) == 24
    assert len(list((out_dir / "hdf5").glob("*/*.hdf5"))) == 24
    folders = list((out_dir / "jpg").glob("*/*"))
    assert len(folders) == 24 and all(len(list(f.glob("*.jpg"))) == 20 for f in folders)


def test_live(smoke):
    out = smoke["live"].result()
    assert "real time, 1 s of 320x240 at 25 fps, ResNet-10 32x32:" in out
    # 1 s at 25 fps; 0.001 h = 3.6 s = 90 frames
    assert re.search(r"^  live: the end of the input: 25 frames, \d+ windows scored", out, re.M), (
        out
    )
    assert "a FIFO of 90 frames (0.001 h of video)" in out
    assert re.search(r"^  live: the end of the input: 90 frames, \d+ windows scored", out, re.M), (
        out
    )
    samples = re.findall(r"^\| (\d+) \| (\d+) \| (\d+) \|$", out, re.M)
    assert samples and all(int(rss) >= 0 for _, _, rss in samples)
    assert int(samples[-1][1]) == 90 and int(samples[-1][2]) > 0


def test_startup(smoke):
    out = smoke["startup"].result()
    assert "20 videos in 2 class folders" in out  # 2 x (8 + 2)
    table = dict(re.findall(r"^\| ([^|]+?) \| (.+) \|$", out, re.M))
    for name in (
        "before the cache: every rank indexes (1)",
        "cold: local rank 0 indexes and writes the cache, the others wait and map it (1)",
        "warm (a restart or requeue): every rank maps the cache (1)",
    ):
        assert re.match(r"[0-9.]+ s \(all done [0-9.]+ s after the start\) \| ", table[name]), table
    assert "the cache file" in table
    assert re.fullmatch(r"\*\*[0-9.]+ s\*\*", table["read + resolve + build"])
    (first_step,) = figures(
        r"^\| `cnn3d train` start to first optimiser step \(1 workers\) \| \*\*"
        + NUMBER
        + r" s\*\* \|$",
        out,
    )
    assert "val dataset build, 4 files, no recorded counts (each opened)" in table  # 2 x 2
    assert any(
        k.startswith("per-worker USS above an idle fork, 1 workers x 16 items") for k in table
    )


def test_step_reads(smoke):
    out = smoke["step_reads"].result()
    assert "resnet-10 4x16x16 batch 2 on cpu" in out
    each, grouped, ratio = figures(
        rf"^read every step: {NUMBER} steps/s; every 20 steps: {NUMBER} steps/s; ratio {NUMBER}$",
        out,
    )
    assert is_ratio(ratio, grouped, each, 0.01, 0.001)


def test_train_step(smoke):
    out = smoke["train_step"].result()
    assert "batch 2, 8x32x32" in out
    rows = re.findall(
        rf"^ResNet-18 +(torchvision|cnn3d) +(fp32|fp32\+cl|bf16\+cl) +{NUMBER}  {NUMBER}x torchvision, {NUMBER}x fp32$",
        out,
        re.M,
    )
    assert [(b, s) for b, s, *_ in rows] == [
        (b, s) for s in ("fp32", "fp32+cl", "bf16+cl") for b in ("torchvision", "cnn3d")
    ], out
    rate = {(b, s): float(r) for b, s, r, _, _ in rows}
    for build, setting, r, vs_tv, vs_fp32 in rows:
        assert float(r) > 0
        assert is_ratio(float(vs_tv), float(r), rate["torchvision", setting], 0.01, 0.01)
        assert is_ratio(float(vs_fp32), float(r), rate[build, "fp32"], 0.01, 0.01)
    assert re.search(
        r"^ResNet-18: cnn3d default \((bf16|fp32)\+cl\) is [0-9.]+x cnn3d fp32$", out, re.M
    )
    for build in ("torchvision", "cnn3d"):
        assert re.search(
            rf"^ResNet-18 {build}: worst \|bf16 grad\| / \|fp32 grad\| (\S+)$", out, re.M
        )
