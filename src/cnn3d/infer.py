"""Classify raw video files and extract clip features, decoding them directly (no temp frames).

Each video is cut into sliding windows of the model's clip length (a video shorter than one clip
is loop-padded); windows are batched across videos. An unreadable file is reported by name and
the rest are still processed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data.dataset import Video, VideoDataset, collate_clips, worker_init
from .data.sources import VIDEO_SUFFIXES
from .data.transforms import EvalTransform
from .evaluate import top_k, write_json
from .models.checkpoint import atomic_write
from .train import autocast


@dataclass
class VideoResult:
    video: str
    segments: list[tuple[int, int]] = field(default_factory=list)  # 1-based, inclusive
    logits: list[torch.Tensor] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Video files from files, folders (searched recursively) and list files (one path per
    line, relative to the list's folder). Returns (videos, problems)."""
    videos, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
            if not found:
                problems.append(f"{item}: no video files in this folder")
            videos += found
        elif item.suffix.lower() in (".txt", ".lst", ".list"):
            lines = [
                ln.strip() for ln in item.read_text(encoding="utf-8").splitlines() if ln.strip()
            ]
            videos += [p if (p := Path(ln)).is_absolute() else item.parent / p for ln in lines]
        else:
            videos.append(item)
    return videos, problems


def run_model(
    model,
    paths: list[Path],
    *,
    batch_size: int = 8,
    window_stride: int | None = None,
    device: str = "cpu",
    workers: int = 0,
    amp: bool | None = None,
    want_features: bool = False,
) -> tuple[list[VideoResult], list[str]]:
    """Logits (and pooled features) of every window of every video; (results, failures)."""
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
        skip_bad=True,
    )
    failures = list(dataset.failed)
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
    results: dict[int, VideoResult] = {}
    span = (spec.clip_length - 1) * stride + 1
    with torch.inference_mode():
        for batch in loader:
            failures += batch["failed"]
            if batch["clip"] is None:
                continue
            clips = batch["clip"].to(device).contiguous(memory_format=torch.channels_last_3d)
            with autocast(device, amp):
                features = model.forward_features(clips)
                logits = getattr(model, model.classifier_name)(features)
            for k, v in enumerate(batch["video"].tolist()):
                result = results.setdefault(v, VideoResult(str(paths[v])))
                n = dataset._n_frames(v)
                start = int(batch["start"][k])
                result.segments.append((start + 1, min(start + span, n)))
                result.logits.append(logits[k].float().cpu())
                if want_features:
                    result.features.append(features[k].float().cpu())
    dataset.close()
    # a video whose windows failed after indexing is reported once, not also returned
    failed_paths = {message.split(": ")[0] for message in failures}
    ordered = [results[v] for v in sorted(results) if str(paths[v]) not in failed_paths]
    return ordered, sorted(set(failures))


def classification_json(results: list[VideoResult], class_names: list[str], k: int) -> list[dict]:
    """The sister tool's layout (video, clips with segment/label/scores) plus video-level top-k.
    `scores` are softmax probabilities (the sister tool wrote raw logits under that name)."""
    out = []
    for r in results:
        probs = torch.stack(r.logits).softmax(1)
        clips = [
            {"segment": list(seg), "label": class_names[int(p.argmax())], "scores": p.tolist()}
            for seg, p in zip(r.segments, probs, strict=True)
        ]
        top = top_k(probs.mean(0), class_names, k)
        out.append({"video": r.video, "label": top[0]["label"], "top_k": top, "clips": clips})
    return out


def print_table(entries: list[dict], k: int) -> None:
    for e in entries:
        labels = ", ".join(f"{t['label']} {t['score']:.3f}" for t in e["top_k"][:k])
        print(f"{e['video']}  ({len(e['clips'])} clips): {labels}")


def write_features(results: list[VideoResult], out: Path, fmt: str) -> list[Path]:
    """Per video: clip features [n_clips, D], their mean [D] and the segments.
    `npy`: `<out>/<stem>.npy`, `<stem>.mean.npy`, `<stem>.segments.json`; `hdf5`: one file."""
    written = []
    if fmt == "hdf5":
        import h5py

        def write(tmp):
            with h5py.File(tmp, "w") as f:
                for r in results:
                    g = f.create_group(Path(r.video).stem)
                    g["clips"] = torch.stack(r.features).numpy()
                    g["mean"] = torch.stack(r.features).mean(0).numpy()
                    g["segments"] = np.asarray(r.segments, dtype=np.int64)
                    g.attrs["video"] = r.video

        atomic_write(out, write)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    counts = defaultdict(int)
    for r in results:
        stem = Path(r.video).stem
        counts[stem] += 1
        if counts[stem] > 1:
            stem = f"{stem}_{counts[stem]}"
        clips = torch.stack(r.features).numpy()
        atomic_write(out / f"{stem}.npy", lambda tmp, a=clips: _save_npy(tmp, a))
        mean = clips.mean(0)
        atomic_write(out / f"{stem}.mean.npy", lambda tmp, a=mean: _save_npy(tmp, a))
        write_json(out / f"{stem}.segments.json", {"video": r.video, "segments": r.segments})
        written.append(out / f"{stem}.npy")
    return written


def _save_npy(path, array) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to a temp name
        np.save(f, array)
