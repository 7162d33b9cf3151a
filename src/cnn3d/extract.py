"""Features of a whole dataset: shards, per-video outputs written as each video finishes, resume,
and a manifest.

inputs -> this shard's share (balanced by file size) -> skip those already done (source path,
size and mtime recorded beside the outputs) -> the model, video by video (`infer.iter_model`) ->
each video's files written atomically, then recorded -> manifest and summary. An `.h5` output is
built from the per-video files (kept in `<name>.parts/`) once every video of the shard is done,
so a killed run loses at most the videos in flight, whichever the format.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .evaluate import write_json
from .files import SourceStamp, StampLog, atomic_write, output_name
from .infer import VideoResult


@dataclass(frozen=True)
class Shard:
    """Share `index` of `count` (0-based), from `--shard K/N` or torchrun's RANK/WORLD_SIZE."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
            raise ValueError(f"--shard takes K/N with 0 <= K < N (e.g. 0/4), not {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_environment(cls) -> Shard:
        """torchrun's rank and world size, or the whole job."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world) if world > 1 else cls()

    @property
    def suffix(self) -> str:
        """What tells this shard's files apart ("" for the whole job)."""
        return "" if self.count == 1 else f".{self.index}-of-{self.count}"


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # missing: it fails, by name, in whichever shard gets it


def share(paths: list[Path], shard: Shard) -> list[int]:
    """The indices (in input order) of `shard`'s videos. Largest files first, each to the shard
    with the fewest bytes so far (ties: the lowest shard), so one long video does not leave the
    other shards idle; every process computes the same split on its own."""
    if shard.count == 1:
        return list(range(len(paths)))
    load = [0] * shard.count
    mine = []
    order = sorted(range(len(paths)), key=lambda i: (-file_size(paths[i]), str(paths[i])))
    for i in order:
        target = min(range(shard.count), key=lambda s: (load[s], s))
        load[target] += file_size(paths[i]) or 1
        if target == shard.index:
            mine.append(i)
    return sorted(mine)


def stamp_logs(folder: Path) -> dict[str, SourceStamp]:
    """Every shard's record of finished outputs in `folder` (the last line for an output wins)."""
    stamps: dict[str, SourceStamp] = {}
    for log in sorted(folder.glob(".cnn3d-sources*.tsv")):
        stamps.update(StampLog(log).stamps)
    return stamps


def clip_times(segments, fps: float | None) -> list[list[float]]:
    """[start, end) in seconds of each 1-based inclusive frame segment: frame i is shown from
    (i - 1) / fps to i / fps. Empty without a frame rate (frame folders)."""
    if not fps:
        return []
    return [[(first - 1) / fps, last / fps] for first, last in segments]


def write_video_features(folder: Path, result: VideoResult) -> None:
    """`<key>.npy` (clip features [n, D]), `<key>.mean.npy` ([D]) and `<key>.segments.json`
    (video, source fps and duration, the rate segments count in, segments in 1-based frames of
    that stream, times in seconds, each clip's 1-based source frames), each written atomically."""
    key = output_name(result.name)
    clips = np.stack([f.numpy() for f in result.features])
    atomic_write(folder / f"{key}.npy", lambda tmp: _save_npy(tmp, clips))
    atomic_write(folder / f"{key}.mean.npy", lambda tmp: _save_npy(tmp, clips.mean(0)))
    info = {
        "video": result.video,
        "fps": result.fps,
        "stream_fps": result.stream_fps,
        "duration_s": result.n_frames / result.fps if result.fps else None,
        "segments": [list(s) for s in result.segments],
        "times": clip_times(result.segments, result.stream_fps),
        "frames": result.frames,
    }
    write_json(folder / f"{key}.segments.json", info)


def _save_npy(path, array) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def merge_h5(parts: Path, names: list[str], out: Path) -> None:
    """One group per video (named by its relative path without extension) holding `clips`,
    `mean`, `segments` and `times`, with `video` and `fps` attributes; written atomically."""
    import json

    import h5py

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            for name in names:
                key = output_name(name).as_posix()
                info = json.loads((parts / f"{key}.segments.json").read_text(encoding="utf-8"))
                g = f.create_group(key)
                g["clips"] = np.load(parts / f"{key}.npy")
                g["mean"] = np.load(parts / f"{key}.mean.npy")
                g["segments"] = np.asarray(info["segments"], dtype=np.int64).reshape(-1, 2)
                g["times"] = np.asarray(info["times"], dtype=np.float64).reshape(-1, 2)
                g["frames"] = np.asarray(info["frames"], dtype=np.int64)
                g.attrs["video"] = info["video"]
                for name in ("fps", "stream_fps", "duration_s"):
                    g.attrs[name] = info[name] if info[name] is not None else np.nan

    atomic_write(out, write)


@dataclass
class Row:
    input: str
    output: str
    status: str  # done, skipped (done before), failed
    clips: int = 0
    fps: float | None = None
    duration_s: float | None = None
    error: str = ""


def write_manifest(path: Path, rows: list[Row]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["input", "output", "status", "clips", "fps", "duration_s", "error"])
    for r in rows:
        fps = "" if r.fps is None else f"{r.fps:.6g}"
        duration = "" if r.duration_s is None else f"{r.duration_s:.3f}"
        writer.writerow([r.input, r.output, r.status, r.clips, fps, duration, r.error])
    atomic_write(path, lambda tmp: Path(tmp).write_text(text.getvalue(), encoding="utf-8"))


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    clips: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = (
            f"; {self.clips} clips in {self.seconds:.1f} s ({self.clips / self.seconds:.2f} "
            f"clips/s, {self.done / self.seconds:.3f} videos/s)"
            if self.seconds > 0 and self.done
            else ""
        )
        return f"{self.done} done, {self.skipped} skipped (done before), {self.failed} failed{rate}"


@dataclass
class Job:
    """What a dataset-scale run writes: per-video outputs in `folder` (`write`), where each
    video's output is for the manifest (`where`), the JSON holding a finished video's segments,
    fps and duration (`info`), and what to build from the finished videos at the end (`finish`)."""

    folder: Path
    manifest: Path
    write: Callable[[Path, VideoResult], None]
    where: Callable[[str], str]
    info: Callable[[str], Path]
    finish: Callable[[list[str]], None] | None = None


def features_job(out: Path, shard: Shard) -> Job:
    """A folder of per-video files, or an `.h5`/`.hdf5` file built from them."""
    if out.suffix.lower() in (".h5", ".hdf5"):
        parts = out.with_name(out.name + ".parts")
        target = out.with_name(f"{out.stem}{shard.suffix}{out.suffix}")
        return Job(
            parts,
            out.with_name(f"{out.stem}{shard.suffix}.manifest.csv"),
            write_video_features,
            lambda key: f"{target.name}:{key}",
            lambda key: parts / f"{key}.segments.json",
            lambda names: merge_h5(parts, names, target),
        )
    return Job(
        out,
        out / f"manifest{shard.suffix}.csv",
        write_video_features,
        lambda key: f"{key}.npy",
        lambda key: out / f"{key}.segments.json",
    )


def classify_job(out: Path, shard: Shard, on_video: Callable[[VideoResult], dict]) -> Job:
    """`classify -o out.json`: each video's entry (`on_video` makes it and draws whatever else
    was asked for) in `<out>.parts/<key>.json`; `out` (per shard: `out.K-of-N.json`) is the list
    of entries in input order, built when the share is done."""
    import json

    parts = out.with_name(out.name + ".parts")
    target = out.with_name(f"{out.stem}{shard.suffix}{out.suffix}")

    def write(folder: Path, result: VideoResult) -> None:
        write_json(folder / f"{output_name(result.name).as_posix()}.json", on_video(result))

    def finish(names: list[str]) -> None:
        entries = [
            json.loads((parts / f"{output_name(n).as_posix()}.json").read_text(encoding="utf-8"))
            for n in names
        ]
        write_json(target, entries)

    return Job(
        parts,
        out.with_name(f"{out.stem}{shard.suffix}.manifest.csv"),
        write,
        lambda key: f"{target.name}:{key}",
        lambda key: parts / f"{key}.json",
        finish,
    )


def run_job(
    model,
    paths: list[Path],
    names: list[str],
    job: Job,
    shard: Shard = Shard(),
    progress: bool = True,
    **options,
) -> Summary:
    """This shard's videos through the model, each finished video written by `job` at once and
    recorded, videos done before skipped; see the module docstring. `options` go to
    `infer.iter_model`."""
    from .infer import iter_model

    mine = share(paths, shard)
    stamps = stamp_logs(job.folder) if job.folder.exists() else {}
    rows: dict[int, Row] = {}
    todo = []
    for i in mine:
        key = output_name(names[i]).as_posix()
        try:
            done = stamps.get(key) == SourceStamp.of(paths[i])
        except OSError:
            done = False
        if done:
            rows[i] = _done_before(job.info(key), str(paths[i]), job.where(key))
        else:
            rows[i] = Row(str(paths[i]), job.where(key), "failed")
            todo.append(i)
    summary = Summary(skipped=len(mine) - len(todo))
    print(f"{len(mine)} videos in this share{_of(shard)}: {summary.skipped} done before, "
          f"{len(todo)} to do", flush=True)  # fmt: skip
    log = StampLog(job.folder / f".cnn3d-sources{shard.suffix}.tsv")
    bar = _progress(len(todo), progress)
    start = time.perf_counter()
    subset = [paths[i] for i in todo]
    for j, result, message in iter_model(model, subset, names=[names[i] for i in todo], **options):
        i = todo[j]
        if result is None:
            rows[i].error = message
            summary.failed += 1
            print(f"failed: {message}", file=sys.stderr, flush=True)
        else:
            job.write(job.folder, result)
            log.record(output_name(names[i]).as_posix(), SourceStamp.of(paths[i]))
            n = len(result.segments)
            duration = result.n_frames / result.fps if result.fps else None
            rows[i] = Row(rows[i].input, rows[i].output, "done", n, result.fps, duration)
            summary.done += 1
            summary.clips += n
        if bar is not None:
            bar.update(1)
            bar.set_postfix(clips_per_s=f"{summary.clips / (time.perf_counter() - start):.2f}")
    if bar is not None:
        bar.close()
    summary.seconds = time.perf_counter() - start
    if mine and summary.failed == len(mine):
        print(f"all {len(mine)} videos failed; nothing written", flush=True)
        return summary
    if job.finish is not None:
        job.finish([names[i] for i in mine if rows[i].status != "failed"])
    write_manifest(job.manifest, [rows[i] for i in mine])
    return summary


def extract_features(
    model,
    paths: list[Path],
    names: list[str],
    out: Path,
    shard: Shard = Shard(),
    progress: bool = True,
    **options,
) -> Summary:
    """Features of this shard's videos into `out` (a folder, or an `.h5`/`.hdf5` file)."""
    job = features_job(out, shard)
    return run_job(model, paths, names, job, shard, progress, want_features=True, **options)


def _done_before(info_path: Path, source: str, where: str) -> Row:
    import json

    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Row(source, where, "skipped")
    segments = info.get("segments") or [c["segment"] for c in info.get("clips", [])]
    fps = info.get("fps")
    return Row(source, where, "skipped", len(segments), fps, info.get("duration_s"))


def _of(shard: Shard) -> str:
    return "" if shard.count == 1 else f" (shard {shard.index} of {shard.count})"


def _progress(total: int, enabled: bool):
    if not enabled or total < 2:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="video", dynamic_ncols=True)
