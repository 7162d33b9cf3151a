"""`cnn3d benchmark`: how many clips/s this machine gives, and where the time goes.

- `bench_model`: training steps and inference of a network on tensors already on the device
  (the compute ceiling), with warm-up, a synchronisation after every timed step, and medians.
- `bench_loader`: the real loader over the user's annotation file and videos, no model, its
  time per clip split into decode, transform, collate (in the workers) and the copy to the
  device with the input's conversion (`NetworkInput`, in the main process).
- `bench_train`: both at once for a number of steps, with the share of time spent waiting for
  data.
`verdict` says in words which one is the limit and what would help.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .data.dataset import collate_clips
from .errors import UsageError
from .precision import PRECISIONS, amp_dtype, autocast_of
from .training.step import optimisation_step

__all__ = [
    "LoaderSetting",
    "ModelSetting",
    "Timing",
    "bench_loader",
    "bench_model",
    "bench_train",
    "default_precision",
    "machine",
    "verdict",
]

TORCHVISION = ("r3d_18", "r2plus1d_18", "mc3_18")  # torchvision's video models, beside ours
# a limit is named when the other side is at least this much faster
MARGIN = 1.1
SOURCE_KINDS = {
    "VideoFileSource": "video files",
    "FrameFolderSource": "JPEG folders",
    "HDF5Source": "HDF5",
    "FlowHDF5Source": "flow HDF5",
    "FlowFolderSource": "flow JPEG folders",
}


@dataclass(frozen=True)
class Timing:
    """`warmup` untimed steps, then up to `steps` timed ones, stopping early (after at least
    3) once `max_seconds` have gone by."""

    warmup: int = 3
    steps: int = 20
    max_seconds: float = 60.0


@dataclass(frozen=True)
class ModelSetting:
    family: str = "resnet"  # or one of TORCHVISION
    depth: int | str | None = None  # None: the family's default
    clip_length: int = 16
    size: int = 112
    batch: int = 32
    precision: str = "fp32"
    channels_last: bool = True
    n_classes: int = 400
    channels: int = 3

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.depth is None and self.family not in TORCHVISION:
            from .models.zoo import FAMILIES, canonical_family

            object.__setattr__(self, "depth", FAMILIES[canonical_family(self.family)].default_depth)

    @property
    def name(self) -> str:
        if self.family in TORCHVISION:
            return f"{self.family} (torchvision)"
        return f"{self.family}-{self.depth}"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last_3d if self.channels_last else torch.contiguous_format


@dataclass(frozen=True)
class LoaderSetting:
    video_path: str
    annotation_path: str
    subset: str = "training"
    mode: str = "train"  # train: one random clip per video; val: 3 clips per video
    workers: int = 4
    batch: int = 32
    clip_length: int = 16
    size: int = 112
    prefetch: int | None = None
    batches: int = 50

    def __post_init__(self):
        if self.mode not in ("train", "val"):
            raise UsageError(f"loader mode must be train or val, not {self.mode!r}")


def default_precision(device: torch.device) -> str:
    """The precision `cnn3d train` runs in on `device` when not told (`precision.amp_dtype`
    with amp unset, as `RuntimeConfig(amp=None)` resolves it)."""

    names = {dtype: name for name, dtype in PRECISIONS.items()}
    return names[amp_dtype(device, None)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], object], device: torch.device, timing: Timing) -> list[float]:
    """Seconds of each timed call of `step`, each ended by a device synchronisation."""
    for _ in range(timing.warmup):
        step()
    synchronize(device)
    times: list[float] = []
    deadline = time.perf_counter() + timing.max_seconds
    while len(times) < timing.steps:
        started = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - started)
        if len(times) >= 3 and time.perf_counter() > deadline:
            break
    return times


def build_network(setting: ModelSetting) -> torch.nn.Module:
    """A randomly initialised network of the setting (no weights are downloaded)."""
    if setting.family in TORCHVISION:
        import torchvision.models.video as video_models

        return getattr(video_models, setting.family)(weights=None, num_classes=setting.n_classes)
    from .models import build_model

    options = {"n_input_channels": setting.channels} if setting.channels != 3 else {}
    return build_model(setting.family, setting.depth, setting.n_classes, **options)


def train_step_of(net, setting: ModelSetting, device: torch.device):
    """A closure running one SGD step in the setting's precision: the training loop's own
    (`training.step.optimisation_step`)."""
    dtype = PRECISIONS[setting.precision]
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    labels = torch.randint(setting.n_classes, (setting.batch,), device=device)
    return lambda x: optimisation_step(net, optimizer, scaler, x, labels[: len(x)], dtype)


def bench_model(setting: ModelSetting, device: torch.device, timing: Timing = Timing()) -> dict:
    """Training and inference clips/s of the setting's network on random input on `device`."""
    torch.manual_seed(0)
    net = build_network(setting).to(device).to(memory_format=setting.memory_format)
    shape = (setting.batch, setting.channels, setting.clip_length, setting.size, setting.size)
    x = torch.randn(shape, device=device).contiguous(memory_format=setting.memory_format)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    net.train()
    step = train_step_of(net, setting, device)
    train = time_steps(lambda: step(x), device, timing)
    dtype = PRECISIONS[setting.precision]
    net.eval()
    with torch.inference_mode():

        def forward():
            with autocast_of(device, dtype):
                return net(x)

        infer = time_steps(forward, device, timing)
    row = {"kind": "model", "model": setting.name} | asdict(setting)
    row |= {
        "device": str(device),
        "memory_format": "channels_last_3d" if setting.channels_last else "contiguous",
        "train_step_ms": 1000 * statistics.median(train),
        "train_clips_s": setting.batch / statistics.median(train),
        "infer_step_ms": 1000 * statistics.median(infer),
        "infer_clips_s": setting.batch / statistics.median(infer),
        "timed_steps": [len(train), len(infer)],
    }
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


class TimedCollate:
    """`collate_clips`, also timing itself (`collate_s`); picklable for spawned workers."""

    def __call__(self, items: list[dict]) -> dict:
        started = time.perf_counter()
        out = collate_clips(items)
        out["collate_s"] = time.perf_counter() - started
        return out


def loader_of(setting: LoaderSetting, device: torch.device):
    """(dataset, loader, sampler or None, the kind of source) of the training or validation
    clips of `setting`, with timed items."""
    from .data.annotations import read_annotations
    from .data.dataset import VideoDataset, clip_loader
    from .data.index import index_subset
    from .data.samplers import EpochSampler
    from .data.sources import open_source
    from .data.transforms import EvalTransform, TrainTransform

    annotations = read_annotations(setting.annotation_path)
    videos, _ = index_subset(annotations, setting.subset, setting.video_path)
    if not videos:
        raise UsageError(
            f"{setting.annotation_path}: no {setting.subset} videos found under "
            f"{setting.video_path}"
        )
    source = open_source(videos.path(0))
    kind = SOURCE_KINDS.get(type(source).__name__, type(source).__name__)
    source.close()
    common = {"clip_length": setting.clip_length, "skip_bad": True, "timed": True}
    if setting.mode == "train":
        dataset = VideoDataset(videos, TrainTransform(setting.size), "train", **common)
        sampler = EpochSampler(len(dataset), seed=0)
    else:
        dataset = VideoDataset(videos, EvalTransform(setting.size), "val", n_clips=3, **common)
        sampler = None
    loader = clip_loader(
        dataset, setting.batch, setting.workers, sampler, pin_memory=device.type == "cuda",
        persistent=True, prefetch=setting.prefetch, collate=TimedCollate(),
    )  # fmt: skip
    return dataset, loader, sampler, kind


def endless(loader, sampler):
    """The loader's batches, epoch after epoch."""
    epoch = 0
    while True:
        epoch += 1
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader


def bench_loader(setting: LoaderSetting, device: torch.device, max_seconds: float = 120.0) -> dict:
    """Clips/s of the loader with `setting.workers` workers (after its first batch, which
    includes starting them), and each clip's seconds per stage."""
    from .data.dataset import stop_workers
    from .data.network_input import NetworkInput
    from .normalization import PRESETS

    dataset, loader, sampler, kind = loader_of(setting, device)
    inputs = NetworkInput(PRESETS["kinetics"], device, torch.channels_last_3d)
    batches = endless(loader, sampler)
    started = time.perf_counter()
    first = next(batches)
    first_s = time.perf_counter() - started
    stages = {"decode": 0.0, "transform": 0.0, "collate": 0.0, "copy": 0.0}
    clips = failed = n = 0
    bytes_uint8 = 0
    started = time.perf_counter()
    for batch in batches:
        n += 1
        failed += len(batch["failed"])
        if batch["clip"] is not None:
            clips += len(batch["clip"])
            bytes_uint8 = max(bytes_uint8, batch["clip"].nelement())
            stages["decode"] += float(batch["decode_s"].sum())
            stages["transform"] += float(batch["transform_s"].sum())
            stages["collate"] += batch["collate_s"]
            copy_started = time.perf_counter()
            inputs(batch["clip"])
            synchronize(device)
            stages["copy"] += time.perf_counter() - copy_started
        if n >= setting.batches or (n >= 3 and time.perf_counter() - started > max_seconds):
            break
    wall = time.perf_counter() - started
    stop_workers(loader)
    del first
    if clips == 0:
        raise UsageError(f"{setting.annotation_path}: no clip could be read ({failed} failed)")
    per_clip = {f"{k}_ms": 1000 * v / clips for k, v in stages.items()}
    worker_s = (stages["decode"] + stages["transform"] + stages["collate"]) / clips
    return {
        "kind": "loader",
        **asdict(setting),
        "device": str(device),
        "source": kind,
        "videos": len(dataset.videos),
        "batches": n,
        "clips": clips,
        "failed": failed,
        "clips_s": clips / wall,
        "first_batch_s": first_s,
        **per_clip,
        "worker_clips_s": 1 / worker_s,  # what one worker process (one core) gives
        "batch_mb_uint8": bytes_uint8 / 1e6,
        "batch_mb_float32": 4 * bytes_uint8 / 1e6,
    }


def bench_train(
    model: ModelSetting, loader: LoaderSetting, device: torch.device, steps: int = 200,
    max_seconds: float = 300.0,
) -> dict:  # fmt: skip
    """Real training steps on the user's data: clips/s end to end, and the share of the time
    the loop waited for the loader's next batch."""
    from .data.dataset import stop_workers
    from .data.network_input import NetworkInput
    from .normalization import PRESETS

    if model.batch != loader.batch or model.clip_length != loader.clip_length:
        raise UsageError("the model and loader settings must share batch and clip length")
    _, data, sampler, kind = loader_of(loader, device)
    torch.manual_seed(0)
    net = build_network(model).to(device).to(memory_format=model.memory_format).train()
    step = train_step_of(net, model, device)
    inputs = NetworkInput(PRESETS["kinetics"], device, model.memory_format)
    batches = endless(data, sampler)
    step(inputs(next(batches)["clip"]))  # warm-up: workers start, cuDNN chooses
    synchronize(device)
    waited = 0.0
    clips = n = 0
    started = time.perf_counter()
    while n < steps:
        asked = time.perf_counter()
        batch = next(batches)
        waited += time.perf_counter() - asked
        n += 1
        if batch["clip"] is not None:
            step(inputs(batch["clip"]))
            clips += len(batch["clip"])
        if n >= 3 and time.perf_counter() - started > max_seconds:
            break
    synchronize(device)
    wall = time.perf_counter() - started
    stop_workers(data)
    return {
        "kind": "train",
        "model": model.name,
        "precision": model.precision,
        "source": kind,
        "workers": loader.workers,
        "batch": model.batch,
        "device": str(device),
        "steps": n,
        "clips_s": clips / wall,
        "data_wait_share": waited / wall,
    }


def machine(device: torch.device) -> dict:
    """What the figures were measured on."""
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def verdict(
    loader_clips_s: float | None,
    model_clips_s: float | None,
    *,
    workers: int | None = None,
    source: str | None = None,
    data_wait_share: float | None = None,
    cpus: int | None = None,
    model: ModelSetting | None = None,
) -> str:
    """Which side limits training, in words, with what would help."""
    cpus = cpus or os.cpu_count() or 1
    figures = None
    apart = None  # the limit the two separate figures point to
    if loader_clips_s is not None and model_clips_s is not None:
        figures = (
            f"the loader gives {loader_clips_s:,.0f} clips/s, the model takes {model_clips_s:,.0f}"
        )
        if model_clips_s > MARGIN * loader_clips_s:
            apart = "loader"
        elif loader_clips_s > MARGIN * model_clips_s:
            apart = "model"
    if data_wait_share is not None:  # measured in real steps: it decides
        limit = "loader" if data_wait_share > 0.1 else "model"
        hints = loader_hints(workers, source, cpus) if limit == "loader" else model_hints(model)
        text = (
            f"Training waited for data {data_wait_share:.0%} of the time: the {limit} is the "
            f"limit; {hints}."
        )
        if figures:
            text += f" Measured apart, {figures}"
            if apart and apart != limit:
                text += " (together, the workers and the model share this machine's cores)"
            text += "."
        return text
    if apart == "loader":
        return f"{figures[0].upper()}{figures[1:]}: the loader is the limit; {loader_hints(workers, source, cpus)}."
    if apart == "model":
        return (
            f"{figures[0].upper()}{figures[1:]}: the model is the limit (the loader has room "
            f"to spare); {model_hints(model)}."
        )
    if figures:
        return (
            f"{figures[0].upper()}{figures[1:]}: they are balanced; both would need to be faster."
        )
    if model_clips_s is not None:
        return (
            f"The model's ceiling is {rate(model_clips_s)} training clips/s on tensors already "
            "on the device; `cnn3d benchmark loader` tells whether your data can keep up."
        )
    if loader_clips_s is not None:
        return (
            f"The loader gives {rate(loader_clips_s)} clips/s; `cnn3d benchmark model` tells "
            "what the model takes."
        )
    return "Nothing was measured."


def model_hints(model: ModelSetting | None) -> str:
    hints = []
    if model is None or model.precision == "fp32":
        hints.append("bf16 (--amp)")
    if model is None or not model.channels_last:
        hints.append("channels_last (--channels-last)")
    hints += ["train --compile", "a larger batch, where memory allows"]
    return "what may help: " + "; ".join(hints)


def loader_hints(workers: int | None, source: str | None, cpus: int) -> str:
    hints = []
    if workers is not None and workers < cpus:
        hints.append(f"more workers (--workers {min(cpus, max(2, 2 * workers))}; {cpus} cores)")
    elif workers is not None:
        hints.append(f"more cores: the {workers} workers already use all {cpus}")
    if source == "video files":
        hints.append(
            "HDF5 or JPEG frames, or short-GOP mp4 (`cnn3d prepare frames --format hdf5|jpg|mp4`)"
        )
    elif source and source.endswith("JPEG folders"):
        hints.append("HDF5 (`cnn3d prepare frames --format hdf5`: one file per video)")
    hints.append("frames stored at a short side near twice the crop size decode faster")
    return "what would help: " + "; ".join(hints)


def rate(clips_s: float) -> str:
    """Clips per second in words: whole numbers from 10 on, two significant digits below (a
    large 3D CNN on a CPU trains well under one clip a second)."""
    return f"{clips_s:,.0f}" if clips_s >= 10 else f"{clips_s:.2g}"
