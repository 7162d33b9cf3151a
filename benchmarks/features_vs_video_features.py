"""I3D RGB features of a folder of videos: cnn3d against v-iashin/video_features' own extractor,
on the same videos and the same weights, in one run (issue 30, item 6).

Workload: `--videos` (20) videos of `--seconds` (10) s, 320x240, 25 fps H.264 (x264's default
keyframe interval), a textured background with a moving shape, written here with PyAV; I3D
(hassony2's port, the layout video_features loads as `i3d_rgb.pt`) with the seeded weights of
`tests/seeded.py` (`tests/data/goldens/i3d_hassony2/shapes.json`, seed 0); windows of 64 frames
every 64, short side resized to 256, centre crop 224, pixels to [-1, 1], fp32, the 1024-d
features after Mixed_5c's average pool.

video_features (`--video-features CHECKOUT`): its `models/i3d/extract_i3d.py` `ExtractI3D` run
in this process as its `main.py` runs it (`_extract` on one video after another; `streams: rgb`,
`extraction_fps: null` (its default: the videos are 25 fps already), `stack_size`/`step_size`
64, `on_extraction: save_numpy`). It reads frames with OpenCV, resizes each with PIL in the main
process and runs one window per forward pass. Only its weights file is given differently: its
`load_model` reads `./models/i3d/checkpoints/i3d_rgb.pt` from the working directory, so a
subclass builds the same `I3D(400, modality="rgb")` and loads the seeded file instead. The I3D
RGB path imports, but never runs, `omegaconf` (two type names) and `scipy.interpolate` (RAFT's):
where they are not installed, empty stubs stand in (said in the output). A window of video_features
needs one frame past its end (its flow stream's pair): 64k frames exactly give it one window
fewer than cnn3d's `drop`; the 250 frames here give 3 windows in both.
cnn3d: `inference.features.extract_features` on the file loaded by `models.load_model`
(BatchNorm folded, as `cnn3d features` does), windows of several videos per batch, decoding
in `--workers` DataLoader workers, `InferenceConfig(fps=25, window_stride=64, tail="drop")`,
`resize=256`.

Both are timed from the first video to the last file written (weights loading excluded), with
the same torch threads and device; "model busy" is the time inside the network's forward
(synchronised on a GPU) over that wall time. The features of each video are compared: shapes,
and max |cnn3d - video_features| / max |video_features| (they differ where decoding (OpenCV vs
PyAV's RGB conversion: the same pixels on these videos) and resizing (PIL vs torchvision, both
bilinear antialiased: 1 grey level at 0.06% of the values) differ: 3e-5 here).

    python benchmarks/features_vs_video_features.py --video-features CHECKOUT \
        [--videos 20] [--seconds 10] [--batch-size 4] [--workers 2] [--device cpu]

Without `--video-features` only cnn3d runs (the smoke test's way); `--stack`, `--crop` and
`--resize` shrink the work for that (video_features' own settings are 64, 224 and 256).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # seeded.py: the weights the goldens were made with
from cnn3d.data.prepare import write_video  # noqa: E402
from cnn3d.data.synthetic import CLASSES, synthesize_video  # noqa: E402
from cnn3d.inference.features import extract_features  # noqa: E402
from cnn3d.inference.runner import InferenceConfig  # noqa: E402
from cnn3d.models import load_model  # noqa: E402
from cnn3d.runtime import RuntimeConfig  # noqa: E402
from seeded import relative_error, seeded_state  # noqa: E402

FPS = 25
SHAPES = ROOT / "tests" / "data" / "goldens" / "i3d_hassony2" / "shapes.json"


def write_videos(folder: Path, n: int, seconds: float) -> list[Path]:
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        frames = synthesize_video(CLASSES[i % len(CLASSES)], rng, round(seconds * FPS), 240, 320)
        paths.append(folder / f"v{i:04d}.mp4")
        write_video(paths[-1], frames, fps=FPS, gop=250)
    return paths


class Busy:
    """Seconds spent inside `owner.<name>` (wrapped on the instance), synchronised on a GPU."""

    def __init__(self, owner, name: str, device: torch.device):
        self.seconds = 0.0
        inner = getattr(owner, name)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

        def timed(*args, **kwargs):
            sync()
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                sync()
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)


STUBBED: list[str] = []


def stub(name: str, **names) -> None:
    """A module `name` (and its parents) holding `names`, where the real one is not installed."""
    top = name.split(".")[0]
    if top not in STUBBED and importlib.util.find_spec(top) is not None:
        return
    parent = None
    for depth, part in enumerate(name.split(".")):
        full = ".".join(name.split(".")[: depth + 1])
        module = sys.modules.get(full)
        if module is None:
            module = sys.modules[full] = types.ModuleType(full)
            STUBBED.append(full)
        if parent is not None:
            setattr(parent, part, module)
        parent = module
    for key, value in names.items():
        setattr(parent, key, value)


def import_video_features(checkout: Path):
    """video_features' `ExtractI3D` and `I3D`, imported from its checkout."""
    if not (checkout / "models" / "i3d" / "extract_i3d.py").is_file():
        sys.exit(f"--video-features {checkout}: no models/i3d/extract_i3d.py (not a checkout?)")
    # imported by modules the I3D RGB path loads but never called on it: omegaconf's two config
    # types (type hints, an isinstance check on `main.py`'s path list), scipy's interpolate
    # (RAFT's flow upsampling)
    config_types = {"DictConfig": type("DictConfig", (dict,), {})}
    config_types["ListConfig"] = type("ListConfig", (list,), {})
    stub("omegaconf", **config_types)
    stub("omegaconf.dictconfig", DictConfig=config_types["DictConfig"])
    stub("omegaconf.listconfig", ListConfig=config_types["ListConfig"])
    stub("scipy.interpolate")
    sys.path.insert(0, str(checkout))
    from models.i3d.extract_i3d import ExtractI3D
    from models.i3d.i3d_src.i3d_net import I3D

    return ExtractI3D, I3D


def run_video_features(checkout: Path, weights: Path, paths, out: Path, stack: int, device):
    """(wall seconds, model seconds, {stem: features [T, 1024]}) of video_features' I3D RGB."""
    ExtractI3D, I3D = import_video_features(checkout)
    if STUBBED:
        print(f"video_features: stubbed {', '.join(STUBBED)} (not installed; unused by I3D RGB)")

    class SeededExtractI3D(ExtractI3D):
        def load_model(self):  # its own, for the RGB stream, with our weights file
            model = I3D(num_classes=self.i3d_classes_num, modality="rgb")
            model.load_state_dict(torch.load(weights, map_location="cpu"))
            return {"model": {"rgb": model.to(self.device).eval()}}

    args = types.SimpleNamespace(
        feature_type="i3d", streams="rgb", flow_type="raft", extraction_fps=None,
        stack_size=stack, step_size=stack, on_extraction="save_numpy",
        output_path=str(out), tmp_path=str(out / "tmp"), keep_tmp_files=False,
        device=str(device), show_pred=False,
    )  # fmt: skip
    extractor = SeededExtractI3D(args)
    busy = Busy(extractor.name2module["model"]["rgb"], "forward", device)
    start = time.perf_counter()
    for path in paths:
        extractor._extract(str(path))
    wall = time.perf_counter() - start
    features = {}
    for path in paths:
        file = out / f"{path.stem}_rgb.npy"
        if not file.is_file():
            sys.exit(f"video_features wrote no features for {path.name} (see its output above)")
        features[path.stem] = np.load(file)
    return wall, busy.seconds, features


def run_cnn3d(weights: Path, paths, out: Path, args, device):
    """(wall seconds, model seconds, {stem: features [T, 1024]})."""
    model = load_model(
        weights, device=device, fold_bn=True, clip_length=args.stack, sample_size=args.crop
    )
    config = InferenceConfig(
        RuntimeConfig(device=str(device), amp=False, compile=args.compile),
        batch_size=args.batch_size, workers=args.workers, window_stride=args.stack,
        tail="drop", fps=FPS, resize=args.resize,
    )  # fmt: skip
    busy = Busy(model, "forward_features", device)
    start = time.perf_counter()
    summary = extract_features(
        model, paths, [p.name for p in paths], out, progress=False, config=config
    )
    wall = time.perf_counter() - start
    if summary.done != len(paths):
        sys.exit(f"cnn3d: {summary.line()}")
    features = {p.stem: np.load(out / f"{p.stem}.npy") for p in paths}
    return wall, busy.seconds, features


def compare(ours: dict, theirs: dict) -> str:
    """One line: shapes and the largest per-video relative difference."""
    shapes = {k: (ours[k].shape, theirs[k].shape) for k in theirs}
    differ = [k for k, (a, b) in shapes.items() if a != b]
    if differ:
        k = differ[0]
        return f"features: shapes differ in {len(differ)} videos, e.g. {k}: {shapes[k]}"
    errors = [
        relative_error(torch.from_numpy(ours[k]), torch.from_numpy(theirs[k])) for k in theirs
    ]
    shape = " x ".join(map(str, next(iter(ours.values())).shape))
    return (
        f"features: {len(theirs)} videos, {shape} each in both; max relative difference "
        f"{max(errors):.2e} (median {float(np.median(errors)):.2e})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video-features", type=Path, help="a v-iashin/video_features checkout")
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--stack", type=int, default=64, help="frames per window and between")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile cnn3d's network (off: auto is off "
        "below 2000 windows); the compile's own time counts",
    )
    parser.add_argument("--keep", type=Path, help="write videos and features here, and keep them")
    args = parser.parse_args()
    if args.video_features and (args.crop, args.resize) != (224, 256):
        # video_features takes its stack from the config but fixes 256 and 224 in its code
        sys.exit("--crop/--resize: video_features fixes 224 and 256; leave them out")
    device = torch.device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or Path(tmp)
        weights = tmp / "i3d_rgb.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(seeded_state(json.loads(SHAPES.read_text()), 0), weights)
        t0 = time.perf_counter()
        paths = write_videos(tmp / "videos", args.videos, args.seconds)
        print(
            f"{args.videos} videos of {args.seconds:g} s (320x240, {FPS} fps) written in "
            f"{time.perf_counter() - t0:.0f} s; I3D RGB (seeded weights), windows of "
            f"{args.stack} frames every {args.stack}, fp32, {torch.get_num_threads()} threads, "
            f"device {device}",
            flush=True,
        )
        theirs = None
        if args.video_features is None:
            print("video_features: skipped (no --video-features checkout)", flush=True)
        else:
            wall, model_s, theirs = run_video_features(
                args.video_features.resolve(), weights, paths, tmp / "vf", args.stack, device
            )
            base_rate = args.videos / wall
            print(
                f"video_features (one video at a time, resize 256, crop 224): {base_rate:.3f} "
                f"videos/s ({wall:.1f} s); model busy {model_s / wall:.0%} of the time",
                flush=True,
            )
        wall, model_s, ours = run_cnn3d(weights, paths, tmp / "cnn3d", args, device)
        rate = args.videos / wall
        print(
            f"cnn3d features (batch {args.batch_size}, {args.workers} workers, resize {args.resize}, "
            f"crop {args.crop}"
            f"{', compiled' if args.compile else ''}): "
            f"{rate:.3f} videos/s ({wall:.1f} s); model busy {model_s / wall:.0%} of the time"
        )
        if theirs is not None:
            print(f"ratio: {rate / base_rate:.2f}x")
            print(compare(ours, theirs))


if __name__ == "__main__":
    main()
