"""Run a network over every window of raw videos, decoding them directly (no temporary frames).

Each video is cut into sliding windows of the model's clip length (a video shorter than one clip
is loop-padded; `InferenceConfig.tail` says what happens at the end); windows of several videos
share a batch, DataLoader workers decode ahead of the model, and each video is handed on as soon
as its last window is done. An unreadable file is reported by name and the rest go on.
`classification` and `features` make their outputs from the `VideoResult`s; `bulk` runs them over
a whole dataset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from ..data.dataset import Video, VideoDataset, clip_loader
from ..data.network_input import NetworkInput
from ..data.sources import open_source
from ..data.transforms import EvalTransform
from ..errors import UsageError, VideoReadError
from ..models import check_input_channels
from ..models.features import FeatureExtractor
from ..runtime import RuntimeConfig, prepare_device


@dataclass(frozen=True)
class InferenceConfig:
    """How `classify`, `features` and `test` run a network over videos.

    `window_stride`: frames between window starts (None: one clip span, no overlap); `tail`:
    `pad` (a last, loop-padded window so every frame counts), `drop` (the sister tool's
    complete windows only) or `complete` (every window that fits); `fps`: windows over each
    video resampled to that rate; `layer`, `spatial`: which features
    (`models.features.FeatureExtractor`); `prefetch`: batches each worker prepares ahead (None:
    PyTorch's 2). `resize`: the short side frames are resized to before cropping (None: the
    crop size; (width, height): every frame stretched to that size); `crops`: 1, 3, 5 or 10
    crops per window (`data.transforms.multi_crop`), whose features are kept per crop ([windows, crops, D] per
    video) and whose logits are averaged into the window's; `crop_order`: the five- and
    ten-crop order, a name of `data.transforms.CROP_ORDERS`; `resizer`: torch (torchvision's
    uint8 kernel) or pil (PIL's BILINEAR, frame by frame: the PIL-based extractors' pixels)."""

    runtime: RuntimeConfig = RuntimeConfig()
    batch_size: int = 8
    workers: int = 0
    prefetch: int | None = None
    window_stride: int | None = None
    tail: str = "pad"
    fps: float | None = None
    layer: str | None = None
    spatial: bool = False
    resize: int | tuple[int, int] | None = None
    crops: int = 1
    crop_order: str = "center_first"
    resizer: str = "torch"

    def transform(self, size: int) -> EvalTransform:
        """The evaluation transform of these settings for crops of `size` pixels."""
        return EvalTransform(
            size, "center", resize=self.resize, crops=self.crops, crop_order=self.crop_order,
            resizer=self.resizer,
        )  # fmt: skip


@dataclass
class VideoResult:
    """One video's windows through the network, with their units: segments in 1-based,
    inclusive frames of the stream windows were cut from (the source's frames, or resampled
    with `--fps`), times in seconds, and each clip's 1-based source frames."""

    video: str
    name: str  # relative to its input: the key of its outputs
    segments: list[tuple[int, int]] = field(default_factory=list)
    times: list[list[float]] = field(default_factory=list)  # [start, end) s; empty without fps
    frames: list[list[int]] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)
    fps: float | None = None  # the source's frame rate, where it has one
    stream_fps: float | None = None  # the rate segments count in (`--fps`, else the source's)
    duration_s: float | None = None  # of the source
    crops: int = 1  # per window: features [crops, D] each where > 1
    crop_order: str | None = None  # of five or ten crops (`data.transforms.CROP_ORDERS`)
    resize: int | tuple[int, int] | None = None  # the short side, or (width, height), before
    # cropping (None: the crop size)


# Windows from which compiling the network is worth it by default: on a 2-core CPU the one-time
# compile took 30-80 s and ran ResNet-34 in fp32 1.1x faster (BENCHMARKS.md).
COMPILE_FROM = 2000


class Compiled(torch.nn.Module):
    """`torch.compile` (inductor, weights frozen) of an inference network, fed batches padded to
    one size so that it compiles once; outputs are cut back to the real clips. If compiling fails
    (no C++ compiler, an unsupported op) it says so once and runs the network as it is."""

    def __init__(self, net: torch.nn.Module, batch_size: int):
        super().__init__()
        self.net = net
        self.batch_size = batch_size
        self.compiled = torch.compile(net, dynamic=False, options={"freezing": True})
        self.failed = False

    def forward(self, x: torch.Tensor):
        n = x.shape[0]
        if self.failed or n > self.batch_size:
            return self.net(x)
        if n < self.batch_size:
            pad = x[-1:].expand(self.batch_size - n, *x.shape[1:])
            x = torch.cat([x, pad]).contiguous(memory_format=_memory_format(x))
        try:
            out = self.compiled(x)
        except Exception as error:  # noqa: BLE001 - any compiler failure falls back to eager
            print(f"torch.compile failed ({type(error).__name__}); running uncompiled", flush=True)
            self.failed = True
            return self.net(x[:n])
        return tuple(o[:n] for o in out) if isinstance(out, tuple) else out[:n]


def _memory_format(x: torch.Tensor):
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def maybe_compile(net, n_windows: int, choice: bool | None, batch_size: int):
    """(network to run, whether compiled): `choice` None compiles from COMPILE_FROM windows on,
    and the choice is printed either way."""
    use = n_windows >= COMPILE_FROM if choice is None else choice
    why = "--compile" if choice else ("--no-compile" if choice is False else "auto")
    print(
        f"torch.compile: {'on' if use else 'off'} ({why}; {n_windows} windows"
        + ("" if choice is not None else f", compiling pays from {COMPILE_FROM}")
        + ")",
        flush=True,
    )
    return (Compiled(net, batch_size), True) if use else (net, False)


def _check_channels(model, paths: list[Path]) -> None:
    """RGB against flow, once, from the first input that can be opened (no frame is read)."""
    for path in paths:
        try:
            channels = open_source(path).channels
        except VideoReadError:
            continue
        check_input_channels(model, channels, path)
        return


class Runner:
    """A network ready to run on uint8 batches, PyTorch or exported alike: `runner(batch)` is
    (features, logits) for a batch of clips [N, C, T, H, W] (uint8, as the data workers give
    them), computed without gradients.

    A PyTorch model goes to the runtime's device, in eval mode and its memory format, runs
    under the runtime's autocast, and gives the features of stage `layer` (default: the last,
    pooled; `spatial`: before pooling); with `windows` given, it is compiled where that pays
    (`maybe_compile`). An exported one (`export.Exported`) runs on the CPU, in contiguous fp32,
    and gives the last stage's pooled features. `close()` removes the feature hooks."""

    def __init__(
        self, model, runtime: RuntimeConfig, layer: str | None = None, spatial: bool = False,
        windows: int | None = None, batch_size: int = 1,
    ):  # fmt: skip
        self.spec = model.spec
        self.heads = None
        if not isinstance(model, torch.nn.Module):  # an engine's: (features, logits) itself
            if layer or spatial:
                raise UsageError(
                    f"{model.path}: --layer and --spatial need the PyTorch checkpoint; an "
                    "exported model gives the last stage's pooled features"
                )
            self.device = torch.device("cpu")
            self.inputs = NetworkInput(
                self.spec.normalization, self.device, torch.contiguous_format
            )
            self.precision = contextlib.nullcontext
            self.net = model
            return
        self.device = prepare_device(runtime.torch_device())
        model = model.to(self.device).eval().to(memory_format=runtime.memory_format)
        self.inputs = NetworkInput(self.spec.normalization, self.device, runtime.memory_format)
        self.precision = partial(runtime.autocast, self.device)
        self.heads = FeatureExtractor(model, layer, spatial)
        self.net = self.heads
        if windows is not None:
            self.net, _ = maybe_compile(self.heads, windows, runtime.compile, batch_size)

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch [N, C, T, H, W], or of several crops per window [N, crops, C, T, H, W]: the
        N x crops clips go through as one batch, features come back per crop
        [N, crops, ...] and logits as the mean over each window's crops [N, classes]."""
        crops = batch.shape[1] if batch.dim() == 6 else 0
        if crops:
            batch = batch.flatten(0, 1)
        with torch.inference_mode(), self.precision():
            features, logits = self.net(self.inputs(batch))
        if crops:
            features = features.unflatten(0, (-1, crops))
            logits = logits.unflatten(0, (-1, crops)).float().mean(1)
        return features, logits

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self(batch)[1]

    def close(self) -> None:
        if self.heads is not None:
            self.heads.remove_hooks()


def iter_model(
    model,
    paths: list[Path],
    names: list[str] | None = None,
    config: InferenceConfig = InferenceConfig(),
    want_features: bool = False,
) -> Iterator[tuple[int, VideoResult | None, str | None]]:
    """Run the model over every window of every video, yielding `(i, result, None)` for video
    `paths[i]` as soon as its last window is done, or `(i, None, message)` when it cannot be read
    (at any of its windows); each video once, in input order. Costs one decode of each video
    (windows read in order decode forward) and one forward pass per window."""
    names = names or [p.name for p in paths]
    spec = model.spec
    runtime = config.runtime
    _check_channels(model, paths)
    dataset = VideoDataset(
        [Video(p.stem, str(p), -1) for p in paths],
        config.transform(spec.sample_size),
        "test",
        spec.clip_length,
        spec.t_stride,
        window_stride=config.window_stride,
        tail=config.tail,
        fps=config.fps,
        skip_bad=True,
    )
    with_items = dataset.videos_with_items()
    unreadable = (v for v in range(len(paths)) if v not in with_items)
    bad: dict[int, str] = dict(zip(unreadable, dataset.failed, strict=False))  # first errors
    runner = Runner(
        model, runtime, config.layer, config.spatial, len(dataset) * config.crops,
        config.batch_size * config.crops,
    )  # fmt: skip
    loader = clip_loader(
        dataset, config.batch_size, config.workers, pin_memory=runner.device.type == "cuda",
        prefetch=config.prefetch,
    )  # fmt: skip
    pending: dict[int, VideoResult] = {}
    next_video = 0  # videos before this one have been yielded

    def finished(upto: int):
        nonlocal next_video
        for v in range(next_video, upto):
            if v in bad:
                pending.pop(v, None)
                yield v, None, bad.pop(v)
            elif v in pending:
                yield v, pending.pop(v), None
        next_video = max(next_video, upto)

    try:
        for batch in loader:
            for v, message in zip(batch["failed_video"], batch["failed"], strict=True):
                bad.setdefault(v, message)
            if batch["clip"] is not None:
                features, logits = runner(batch["clip"])
                for k, v in enumerate(batch["video"].tolist()):
                    if v not in pending:
                        pending[v] = _result(dataset, v, paths, names, config)
                    result = pending[v]
                    _add_window(result, dataset.plan(v), int(batch["window"][k]))
                    result.logits.append(logits[k].float().cpu())
                    if want_features:
                        result.features.append(features[k].float().cpu())
            seen = batch["video"].tolist() + list(batch["failed_video"])
            # items come in video order: every video before the last one seen is complete
            yield from finished(max(seen) if seen else next_video)
        yield from finished(len(paths))
    finally:
        runner.close()
        dataset.close()


def _result(
    dataset: VideoDataset, v: int, paths: list[Path], names: list[str], config: InferenceConfig
) -> VideoResult:
    plan = dataset.plan(v)
    return VideoResult(
        str(paths[v]),
        names[v],
        fps=plan.source_fps,
        stream_fps=plan.stream_fps,
        duration_s=plan.duration_s,
        crops=config.crops,
        crop_order=config.crop_order if config.crops in (5, 10) else None,
        resize=config.resize,
    )


def _add_window(result: VideoResult, plan, start: int) -> None:
    result.segments.append(plan.segment(start))
    time = plan.time(start)
    if time is not None:
        result.times.append(time)
    result.frames.append((plan.positions(start) + 1).tolist())


def run_model(
    model, paths: list[Path], config: InferenceConfig = InferenceConfig(), **kwargs
) -> tuple[list[VideoResult], list[str]]:
    """`iter_model` collected: (results in input order, one message per unreadable video)."""
    results, failures = [], []
    for _, result, message in iter_model(model, paths, config=config, **kwargs):
        if result is not None:
            results.append(result)
        else:
            failures.append(message)
    return results, failures
