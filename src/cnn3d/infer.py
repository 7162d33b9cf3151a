"""Classify raw video files and extract clip features, decoding them directly (no temp frames).

Each video is cut into sliding windows of the model's clip length (a video shorter than one clip
is loop-padded); windows are batched across videos. An unreadable file is reported by name and
the rest are still processed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .data.dataset import Video, VideoDataset, collate_clips, worker_init
from .data.flow import check_channels
from .data.transforms import EvalTransform
from .evaluate import top_k
from .files import OutputCollision, find_collisions, output_name, walk_videos
from .precision import autocast


@dataclass
class VideoResult:
    video: str
    name: str  # relative to its input: the key of its outputs
    segments: list[tuple[int, int]] = field(default_factory=list)  # 1-based, inclusive
    logits: list[torch.Tensor] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)
    fps: float | None = None  # the source's frame rate, where it has one
    stream_fps: float | None = None  # the rate segments count in (`--fps`, else the source's)
    n_frames: int = 0  # of the source
    frames: list[list[int]] = field(default_factory=list)  # each clip's source frames, 1-based


@dataclass
class Inputs:
    """The videos to process, each with its name relative to the input it came from (the key of
    its outputs), and what was passed over or could not be used."""

    paths: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # relative path, "/"-separated
    problems: list[str] = field(default_factory=list)  # inputs that cannot be used, named
    skipped: list[Path] = field(default_factory=list)  # non-video files in the folders


def collect_inputs(inputs: list[str]) -> Inputs:
    """Video files from files, folders (searched recursively) and list files (one path per
    line, relative to the list's folder). A folder's videos are named relative to the folder,
    a list's relative to the list's folder (as written), a file by its name."""
    found = Inputs()
    for item in map(Path, inputs):
        if item.is_dir():
            walk = walk_videos(item)
            if not walk.videos:
                found.problems.append(f"{item}: no video files in this folder")
            found.paths += walk.videos
            found.names += [p.relative_to(item).as_posix() for p in walk.videos]
            found.skipped += walk.skipped
        elif item.suffix.lower() in (".txt", ".lst", ".list"):
            try:
                text = item.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                found.problems.append(f"{item}: cannot read this list file ({error})")
                continue
            for line in (ln.strip() for ln in text.splitlines()):
                if line:
                    path = Path(line)
                    found.paths.append(path if path.is_absolute() else item.parent / path)
                    found.names.append(path.name if path.is_absolute() else path.as_posix())
        else:
            found.paths.append(item)
            found.names.append(item.name)
    return found


def check_output_names(names: list[str], paths: list[Path], what: str) -> None:
    """Refuse, before any work, inputs whose outputs would be the same (`x.mp4`, `x.mkv`)."""
    pairs = zip(paths, (output_name(n) for n in names), strict=True)
    groups = find_collisions(pairs)
    if groups:
        raise OutputCollision(groups, what)


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


STAGE = re.compile(r"(^|\.)(layer\d+|denseblock\d+|transition\d+)$")


def stage_names(model) -> list[str]:
    """The stages `--layer` can take features from (layer1-4, DenseNet's blocks)."""
    return [name for name, _ in model.named_modules() if STAGE.search(name)]


class _FeaturesAndLogits(torch.nn.Module):
    """(features, logits) per clip. Features: the pooled output of the last stage (what
    `forward_features` returns), or of stage `layer`; with `spatial`, that stage's map before
    pooling (clips x C x T' x H' x W')."""

    def __init__(self, model, layer: str | None = None, spatial: bool = False):
        super().__init__()
        self.model = model
        self.layer, self.spatial = layer, spatial
        self._seen: list[torch.Tensor] = []
        self._hook = None
        if layer is not None:
            if layer not in stage_names(model):
                raise ValueError(
                    f"--layer {layer!r} is not a stage of this {model.spec.arch}; choose one of "
                    + ", ".join(stage_names(model))
                )
            self._hook = model.get_submodule(layer).register_forward_hook(
                lambda _m, _i, out: self._seen.append(out)
            )
        elif spatial:  # the last stage's map: what the global pooling receives
            self._hook = model.avgpool.register_forward_pre_hook(
                lambda _m, i: self._seen.append(i[0])
            )

    def remove_hooks(self) -> None:
        if self._hook is not None:
            self._hook.remove()

    def forward(self, x):
        self._seen.clear()
        features = self.model.forward_features(x)
        logits = getattr(self.model, self.model.classifier_name)(features)
        if self._seen:
            kept = self._seen[-1]
            features = kept if self.spatial else torch.flatten(F.adaptive_avg_pool3d(kept, 1), 1)
        return features, logits


def iter_model(
    model,
    paths: list[Path],
    *,
    batch_size: int = 8,
    window_stride: int | None = None,
    tail: str = "pad",
    device: str = "cpu",
    workers: int = 0,
    amp: bool | None = None,
    want_features: bool = False,
    names: list[str] | None = None,
    compile: bool | None = False,
    layer: str | None = None,
    spatial: bool = False,
    fps: float | None = None,
) -> Iterator[tuple[int, VideoResult | None, str | None]]:
    """Run the model over every window of every video, yielding `(i, result, None)` for video
    `paths[i]` as soon as its last window is done, or `(i, None, message)` when it cannot be read
    (at any of its windows); each video once, in input order. Windows of several videos share a
    batch; DataLoader workers decode ahead of the model. `layer`, `spatial`: which features
    (see `_FeaturesAndLogits`). `fps`: windows over the video resampled to that rate (segments
    then count frames of the resampled stream; `frames` holds the source frames)."""
    names = names or [p.name for p in paths]
    spec = model.spec
    stride = spec.t_stride
    videos = [Video(p.stem, str(p), -1) for p in paths]
    dataset = VideoDataset(
        videos,
        EvalTransform(spec.sample_size, "center", spec.normalization),
        "test",
        spec.clip_length,
        stride,
        window_stride=window_stride,
        tail=tail,
        fps=fps,
        skip_bad=True,
    )
    bad: dict[int, str] = {}  # video -> its first error
    with_windows = set(np.unique(dataset._items[:, 0]).tolist()) if len(dataset) else set()
    unreadable = (v for v in range(len(paths)) if v not in with_windows)
    bad.update(zip(unreadable, dataset.failed, strict=False))
    loader = DataLoader(
        dataset,
        batch_size,
        num_workers=workers,
        collate_fn=collate_clips,
        worker_init_fn=worker_init,
    )
    device = torch.device(device)
    model = model.to(device).eval()
    model = model.to(memory_format=torch.channels_last_3d)
    heads = _FeaturesAndLogits(model, layer, spatial)
    net, _ = maybe_compile(heads, len(dataset), compile, batch_size)
    pending: dict[int, VideoResult] = {}
    span = (spec.clip_length - 1) * stride + 1
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
        with torch.inference_mode():
            for batch in loader:
                for v, message in zip(batch["failed_video"], batch["failed"], strict=True):
                    bad.setdefault(v, message)
                if batch["clip"] is not None:
                    clips = batch["clip"].to(device)
                    check_channels(clips, model, paths[int(batch["video"][0])])
                    clips = clips.contiguous(memory_format=torch.channels_last_3d)
                    with autocast(device, amp):
                        features, logits = net(clips)
                    for k, v in enumerate(batch["video"].tolist()):
                        result = pending.setdefault(v, VideoResult(str(paths[v]), names[v]))
                        n = dataset.stream_length(v)
                        start = int(batch["window"][k])
                        result.segments.append((start + 1, min(start + span, n)))
                        result.frames.append((dataset.window(v, start) + 1).tolist())
                        result.fps = dataset.fps(v)
                        result.stream_fps = fps or result.fps
                        result.n_frames = dataset._n_frames(v)
                        result.logits.append(logits[k].float().cpu())
                        if want_features:
                            result.features.append(features[k].float().cpu())
                seen = batch["video"].tolist() + list(batch["failed_video"])
                # items come in video order: every video before the last one seen is complete
                yield from finished(max(seen) if seen else next_video)
        yield from finished(len(paths))
    finally:
        heads.remove_hooks()
        dataset.close()


def run_model(model, paths: list[Path], **options) -> tuple[list[VideoResult], list[str]]:
    """`iter_model` collected: (results in input order, one message per unreadable video)."""
    results, failures = [], []
    for _, result, message in iter_model(model, paths, **options):
        if result is not None:
            results.append(result)
        else:
            failures.append(message)
    return results, failures


def classification_entry(r: VideoResult, class_names: list[str], k: int) -> dict:
    """One video in the sister tool's layout (video, clips with segment/label/scores) plus the
    video-level top-k, the source's fps and duration, and each clip's time in seconds.
    `scores` are softmax probabilities (the sister tool wrote raw logits under that name)."""
    from .extract import clip_times

    probs = torch.stack(r.logits).softmax(1)
    times = clip_times(r.segments, r.stream_fps) or [None] * len(r.segments)
    clips = [
        {
            "segment": list(seg),
            "time": time,
            "label": class_names[int(p.argmax())],
            "scores": p.tolist(),
        }
        for seg, time, p in zip(r.segments, times, probs, strict=True)
    ]
    top = top_k(probs.mean(0), class_names, k)
    return {
        "video": r.video,
        "label": top[0]["label"],
        "top_k": top,
        "fps": r.fps,
        "stream_fps": r.stream_fps,
        "duration_s": r.n_frames / r.fps if r.fps else None,
        "clips": clips,
    }


def classification_json(results: list[VideoResult], class_names: list[str], k: int) -> list[dict]:
    return [classification_entry(r, class_names, k) for r in results]


def print_table(entries: list[dict], k: int) -> None:
    for e in entries:
        labels = ", ".join(f"{t['label']} {t['score']:.3f}" for t in e["top_k"][:k])
        print(f"{e['video']}  ({len(e['clips'])} clips): {labels}")
