"""A job over a whole dataset, for `classify -o` and `features`: this process's share of the
inputs, per-video outputs written as each video finishes, resume, and a manifest.

inputs -> this share (balanced by file size) -> skip those already done (source path, size and
mtime recorded beside the outputs) -> the model, video by video (`inference.iter_model`) -> each
video's files written atomically, then recorded -> the job's `finish` (e.g. an `.h5` or JSON
built from the per-video files) -> manifest and summary. A killed run loses at most the videos
in flight, whichever the output.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Interrupted, UsageError
from ..files import SourceStamp, StampLog, atomic_write, output_name
from ..runtime import Torchrun
from ..signals import StopSignals
from .runner import InferenceConfig, VideoResult, iter_model


@dataclass(frozen=True)
class Shard:
    """Share `index` of `count` (0-based), from `--shard K/N` or torchrun's RANK/WORLD_SIZE."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
            raise UsageError(f"--shard takes K/N with 0 <= K < N (e.g. 0/4), not {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_environment(cls) -> Shard:
        """torchrun's rank and world size, or the whole job."""
        torchrun = Torchrun.from_environment()
        return cls(torchrun.rank, torchrun.world_size) if torchrun.distributed else cls()

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


@dataclass
class ManifestRow:
    input: str
    output: str
    status: str  # done, done-before (by an earlier run, kept), failed
    clips: int = 0
    fps: float | None = None
    duration_s: float | None = None
    error: str = ""


def write_manifest(path: Path, rows: list[ManifestRow]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["input", "output", "status", "clips", "fps", "duration_s", "error"])
    for r in rows:
        fps = "" if r.fps is None else f"{r.fps:.6g}"
        duration = "" if r.duration_s is None else f"{r.duration_s:.3f}"
        writer.writerow([r.input, r.output, r.status, r.clips, fps, duration, r.error])
    atomic_write(path, lambda tmp: Path(tmp).write_text(text.getvalue(), encoding="utf-8"))


@dataclass
class BulkSummary:
    done: int = 0
    done_before: int = 0  # by an earlier run: kept, not redone
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
        return f"{self.done} done, {self.done_before} done before, {self.failed} failed{rate}"


@dataclass
class BulkJob:
    """What a dataset-scale run writes: per-video outputs in `folder` (`write`), where each
    video's output is for the manifest (`where`), the JSON holding a finished video's segments,
    fps and duration (`info`), and what to build from the finished videos at the end (`finish`)."""

    folder: Path
    manifest: Path
    write: Callable[[Path, VideoResult], None]
    where: Callable[[str], str]
    info: Callable[[str], Path]
    finish: Callable[[list[str]], None] | None = None
    key: Callable[[str], str] = lambda name: output_name(name).as_posix()  # noqa: E731


def run_bulk(
    model,
    paths: list[Path],
    names: list[str],
    job: BulkJob,
    shard: Shard = Shard(),
    progress: bool = True,
    config: InferenceConfig = InferenceConfig(),
    want_features: bool = False,
) -> BulkSummary:
    """This shard's videos through the model, each finished video written by `job` at once and
    recorded, videos done by an earlier run kept; see the module docstring. Ctrl-C stops
    with `Interrupted`, which says how many were done and that a re-run resumes."""
    mine = share(paths, shard)
    stamps = stamp_logs(job.folder) if job.folder.exists() else {}
    rows: dict[int, ManifestRow] = {}
    todo = []
    for i in mine:
        key = job.key(names[i])
        try:
            done = stamps.get(key) == SourceStamp.of(paths[i])
        except OSError:
            done = False
        if done:
            rows[i] = _done_before(job.info(key), str(paths[i]), job.where(key))
        else:
            rows[i] = ManifestRow(str(paths[i]), job.where(key), "failed")
            todo.append(i)
    summary = BulkSummary(done_before=len(mine) - len(todo))
    print(f"{len(mine)} videos in this share{_of(shard)}: {summary.done_before} done before, "
          f"{len(todo)} to do", flush=True)  # fmt: skip
    log = StampLog(job.folder / f".cnn3d-sources{shard.suffix}.tsv")
    bar = _progress(len(todo), progress)
    start = time.perf_counter()
    subset = [paths[i] for i in todo]
    todo_names = [names[i] for i in todo]
    # SIGTERM and SIGUSR1 (a cluster's notice) stop as Ctrl-C does: the videos in flight are
    # abandoned, the finished ones are on disk and recorded
    stop = StopSignals(graceful=False)
    try:
        for j, result, message in iter_model(model, subset, todo_names, config, want_features):
            i = todo[j]
            if result is None:
                rows[i].error = message
                summary.failed += 1
                print(f"failed: {message}", file=sys.stderr, flush=True)
            else:
                job.write(job.folder, result)
                log.record(job.key(names[i]), SourceStamp.of(paths[i]))
                n = len(result.segments)
                rows[i] = ManifestRow(
                    rows[i].input, rows[i].output, "done", n, result.fps, result.duration_s
                )
                summary.done += 1
                summary.clips += n
            if bar is not None:
                bar.update(1)
                rate = summary.clips / (time.perf_counter() - start)
                bar.set_postfix(clips_per_s=f"{rate:.2f}")
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        left = len(todo) - summary.done - summary.failed
        raise Interrupted(
            f"interrupted{f' ({stop.requested})' if stop.requested else ''}: {summary.done} "
            f"videos done in this run, {summary.done_before} done before, {summary.failed} "
            f"failed, {left} not done; every finished video is on disk and recorded: re-run the "
            "same command to resume",
            stop.exit_code,
        ) from None
    finally:
        stop.restore()
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


def _done_before(info_path: Path, source: str, where: str) -> ManifestRow:
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ManifestRow(source, where, "done-before")
    segments = info.get("segments") or [c["segment"] for c in info.get("clips", [])]
    fps = info.get("fps")
    return ManifestRow(source, where, "done-before", len(segments), fps, info.get("duration_s"))


def _of(shard: Shard) -> str:
    return "" if shard.count == 1 else f" (shard {shard.index} of {shard.count})"


def _progress(total: int, enabled: bool):
    if not enabled or total < 2:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="video", dynamic_ncols=True)
