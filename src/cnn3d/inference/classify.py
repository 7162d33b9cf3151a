"""Classification results: each video in the sister tool's JSON layout (plus clip times,
probabilities and the video-level top-k), printed, and `classify -o` built from per-video parts
by `bulk.run_bulk`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from ..evaluation.metrics import top_k
from ..files import write_json
from .bulk import BulkJob, Shard
from .runner import VideoResult


def classification_entry(r: VideoResult, class_names: list[str], k: int) -> dict:
    """One video in the sister tool's layout (video, clips with segment/label/scores) plus the
    video-level top-k, the source's fps and duration, the class names in the order of each
    clip's `scores` (`labels`), and each clip's time in seconds.
    `scores` are softmax probabilities (the sister tool wrote raw logits under that name)."""
    probs = torch.stack(r.logits).softmax(1)
    times = r.times or [None] * len(r.segments)
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
        "duration_s": r.duration_s,
        "labels": list(class_names),  # what each clip's `scores` are, in order
        "clips": clips,
    }


def names_as_listed(list_file: str | Path, video_root: str | Path | None) -> dict[str, str]:
    """The sister tool's `video` for each video of its `--input` list: the line as written,
    keyed by the path the video is read from (`files.collect_inputs`: a relative line joined
    onto `video_root`, else onto the list's folder). An unreadable list gives none (it is
    reported where the videos are collected)."""
    list_file = Path(list_file)
    base = Path(video_root) if video_root is not None else list_file.parent
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    listed = {}
    for line in (ln.strip() for ln in text.splitlines()):
        if line:
            path = Path(line)
            listed[str(path if path.is_absolute() else base / path)] = line
    return listed


def classification_json(results: list[VideoResult], class_names: list[str], k: int) -> list[dict]:
    return [classification_entry(r, class_names, k) for r in results]


def print_table(entries: list[dict], k: int) -> None:
    for e in entries:
        labels = ", ".join(f"{t['label']} {t['score']:.3f}" for t in e["top_k"][:k])
        print(f"{e['video']}  ({len(e['clips'])} clips): {labels}")


def classify_job(out: Path, shard: Shard, on_video: Callable[[VideoResult], dict]) -> BulkJob:
    """`classify -o out.json`: each video's entry (`on_video` makes it and draws whatever else
    was asked for) in `<out>.parts/<name>.json` (the input's name, extension kept); `out` (per shard: `out.K-of-N.json`) is the list
    of entries in input order, built when the share is done."""
    parts = out.with_name(out.name + ".parts")
    target = out.with_name(f"{out.stem}{shard.suffix}{out.suffix}")

    def write(folder: Path, result: VideoResult) -> None:
        write_json(folder / f"{result.name}.json", on_video(result))

    def finish(names: list[str]) -> None:
        entries = [json.loads((parts / f"{n}.json").read_text(encoding="utf-8")) for n in names]
        write_json(target, entries)

    return BulkJob(
        parts,
        out.with_name(f"{out.stem}{shard.suffix}.manifest.csv"),
        write,
        lambda key: f"{target.name}:{key}",
        lambda key: parts / f"{key}.json",
        finish,
        # parts are named with the extension: `x.mp4` and `x.mkv` both go into one JSON file
        key=lambda name: name,
    )
