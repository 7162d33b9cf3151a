"""Start-up at Kinetics-700 scale: annotation reading, path resolution, dataset build, first
training batch, index memory and forked-worker memory, on a 650k-video tree; and the start-up
of N ranks of a node, cold (no index cache) against warm (the cache mapped), with each rank's
time, peak and private memory.

Builds `<tmp>/k700/<class>/<id>.mp4` (700 classes; hard links to a few tiny real videos, so
items can be fetched) and the original's annotation JSON, then measures each step. The baseline,
measured in the same run, is the pre-index design: a Python object per video (annotation
entries kept alive, a list of `Video`s) and one `Path.exists()` per candidate file name.

    .venv/bin/python benchmarks/startup.py [--train-per-class 882 --val-per-class 50]
    .venv/bin/python benchmarks/startup.py --keep /tmp/k700bench --ranks-only --ranks 8

Not part of `make test`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cnn3d.data import sampling
from cnn3d.data.annotations import read_annotations
from cnn3d.data.dataset import VideoDataset, collate_clips, worker_init
from cnn3d.data.index import FolderListing, Video, index_subset
from cnn3d.data.index_cache import build_index, open_index, write_index
from cnn3d.data.prepare import write_video
from cnn3d.data.sources import open_source
from cnn3d.data.transforms import EvalTransform, TrainTransform
from cnn3d.files import VIDEO_SUFFIXES


def build_tree(root: Path, n_classes: int, train_per_class: int, val_per_class: int) -> Path:
    """The tree and its annotation JSON (segments recorded for validation only when asked)."""
    seeds = []
    rng = np.random.default_rng(0)
    for k in range(16):  # ext4 allows 65000 links to one file
        path = root / f"seed{k}.mp4"
        frames = rng.integers(0, 255, size=(40 + 2 * k, 48, 64, 3), dtype=np.uint8)
        write_video(path, frames, fps=25, gop=16)
        seeds.append(path)
    videos = root / "k700"
    labels = [f"class {c:03d} doing something" for c in range(n_classes)]
    database = {}
    for c, label in enumerate(labels):
        folder = videos / label
        folder.mkdir(parents=True)
        for i in range(train_per_class + val_per_class):
            video_id = f"{c:03d}x{i:06d}abc_{i % 300:06d}_{i % 300 + 10:06d}"
            os.link(seeds[(c + i) % len(seeds)], folder / f"{video_id}.mp4")
            subset = "training" if i < train_per_class else "validation"
            database[video_id] = {"subset": subset, "annotations": {"label": label}}
    annotation = root / "k700.json"
    annotation.write_text(json.dumps({"labels": labels, "database": database}))
    return annotation


def record_counts(annotation: Path, video_root: Path, out: Path) -> None:
    """What `cnn3d prepare --video-path` records: each video's frame count (and fps)."""
    data = json.loads(annotation.read_text())
    counts = {}
    for video_id, item in data["database"].items():
        path = video_root / item["annotations"]["label"] / f"{video_id}.mp4"
        key = os.stat(path).st_ino
        if key not in counts:
            counts[key] = open_source(path).n_frames
        item["annotations"]["segment"] = [0, counts[key]]
        item["n_frames"], item["fps"] = counts[key], 25.0
    out.write_text(json.dumps(data))


def uss_mb(pid: int) -> float:
    """Unique set size: the private pages of a process (clean + dirty), MB."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total / 1024


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class ObjectPerVideo(Dataset):
    """The baseline: the pre-index dataset's shape (a list of `Video` objects and a list of
    item tuples, the annotation entries alive beside them), same reads and transforms."""

    def __init__(self, videos: list[Video], transform, keep_alive):
        self.videos, self.transform, self.keep_alive = videos, transform, keep_alive
        self.items = [(v, 0, 1) for v in range(len(videos))]
        self.sources: dict = {}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        v, _, _ = self.items[i]
        video = self.videos[v]
        if v not in self.sources:
            self.sources[v] = open_source(video.path)
        source = self.sources[v]
        rng = np.random.default_rng([0, 0, i])
        positions = sampling.random_clip(source.n_frames, 16, 1, rng)
        clip = source.read(positions)
        source.close()
        return {"clip": self.transform(clip, rng), "label": video.label}


class CollectEvery(Dataset):
    """Runs the garbage collector in the worker every `every` items, as a long epoch would."""

    def __init__(self, dataset, every: int = 50):
        self.dataset, self.every, self.calls = dataset, every, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.calls += 1  # this worker's count
        if self.calls % self.every == 1:
            gc.collect()
        return self.dataset[i]


class Idle(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        return torch.zeros(1)


def idle_worker_uss(workers: int) -> float:
    """USS of a DataLoader worker that fetched only trivial items (mean over the workers)."""
    loader = DataLoader(
        Idle(), 1, num_workers=workers, worker_init_fn=worker_init, multiprocessing_context="fork"
    )
    iterator = iter(loader)
    next(iterator)
    time.sleep(0.5)
    uss = float(np.mean([uss_mb(w.pid) for w in iterator._workers]))
    del iterator
    return uss


def worker_memory(dataset, workers: int, batches: int, batch_size: int) -> tuple[float, list]:
    """Per-worker USS above an idle worker's, after the workers fetched `batches`."""
    idle_uss = idle_worker_uss(workers)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    loader = DataLoader(
        CollectEvery(dataset),
        batch_size,
        sampler=order,
        num_workers=workers,
        collate_fn=collate_clips if isinstance(dataset, VideoDataset) else None,
        worker_init_fn=worker_init,
        multiprocessing_context="fork",
        persistent_workers=False,
    )
    iterator = iter(loader)
    for _ in range(batches):
        next(iterator)
    pids = [w.pid for w in iterator._workers]
    above = [uss_mb(pid) - idle_uss for pid in pids]
    del iterator
    return idle_uss, above


def first_step_seconds(root: Path, annotation: Path, video_root: Path, workers: int) -> float:
    """`cnn3d train` from process start to its first optimiser step (train_batch.log row)."""
    result = root / "run"
    shutil.rmtree(result, ignore_errors=True)
    command = [
        sys.executable, "-m", "cnn3d", "train", "--video-path", str(video_root),
        "--annotation-path", str(annotation), "--result-path", str(result),
        "--model-depth", "10", "--widen-factor", "0.25", "--sample-size", "32",
        "--clip-length", "8", "--batch-size", "8", "--workers", str(workers), "--no-val",
        "--no-tensorboard", "--no-progress", "--n-epochs", "1",
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = result / "train_batch.log"
    try:
        while process.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                return time.perf_counter() - start
            time.sleep(0.05)
        raise RuntimeError(f"cnn3d train ended first: {process.stderr.read().decode()[-2000:]}")
    finally:
        process.kill()
        process.wait()


def baseline_resolve(annotation_path: Path, video_root: Path, limit: int) -> tuple[float, int]:
    """The pre-index resolution: `Path.exists()` per candidate name, over `limit` entries."""
    annotations = read_annotations(annotation_path)
    start = time.perf_counter()
    found = 0
    for entry in annotations.entries[:limit]:
        folder = video_root / entry.label
        candidates = [folder / entry.video_id, folder / f"{entry.video_id}.hdf5"]
        candidates += [folder / f"{entry.video_id}{s}" for s in VIDEO_SUFFIXES[:8]]
        for candidate in candidates:
            if candidate.exists():
                found += 1
                break
    return time.perf_counter() - start, found


def status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: private pages plus each shared page divided among its users."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def probe(role: str, annotation: str, video_root: str, cache: str, meet: str) -> None:
    """One rank's index start-up, in a process of its own (run by `ranks`), printed as JSON:
    `before` indexes (what every rank did before the cache), `build` indexes and writes the
    cache, `wait` waits for the cache and maps it, `warm` maps it. Memory is measured once
    every rank of the scenario is done (ranks live on, mapping the index together): each
    leaves a file in `meet` and waits for the others'."""
    import cnn3d.training.loop  # noqa: F401  (what a rank has imported by then: torch and cnn3d)

    rss0, uss0, pss0 = status_mb("VmRSS"), uss_mb(os.getpid()), pss_mb(os.getpid())
    start = time.perf_counter()
    if role in ("before", "build"):
        data = build_index(annotation, video_root)
        if role == "build":  # as `publish_index`: write, then go on with the file mapped
            write_index(cache, data, video_root)
            data = open_index(cache, annotation, video_root)[0]
    else:
        data, why = open_index(cache, annotation, video_root)
        while data is None and role == "wait":
            time.sleep(0.05)
            data, why = open_index(cache, annotation, video_root)
        assert data is not None, why
    seconds = time.perf_counter() - start
    touched = 0
    for videos in data.videos.values():  # every page, as an epoch's items reach them
        for a in videos.arrays().values():
            touched += int(a.sum())
    gc.collect()
    meet_dir, n = meet.rsplit(":", 1)
    Path(meet_dir, str(os.getpid())).touch()
    while len(os.listdir(meet_dir)) < int(n):
        time.sleep(0.05)
    time.sleep(0.2)
    print(json.dumps({
        "role": role, "seconds": seconds, "peak_mb": status_mb("VmHWM") - rss0,
        "private_mb": uss_mb(os.getpid()) - uss0, "rss_mb": status_mb("VmRSS") - rss0,
        "pss_mb": pss_mb(os.getpid()) - pss0,
        "videos": sum(len(v) for v in data.videos.values()),
    }))  # fmt: skip


def ranks(roles: list[str], annotation: Path, video_root: Path, cache: Path) -> tuple[float, list]:
    """(wall seconds until every rank is done, each rank's figures): one process per role,
    started together."""
    command = [sys.executable, __file__, "--probe"]
    meet = tempfile.mkdtemp(prefix="cnn3d-ranks-")
    paths = [str(annotation), str(video_root), str(cache), f"{meet}:{len(roles)}"]
    start = time.perf_counter()
    processes = [
        subprocess.Popen([*command, role, *paths], stdout=subprocess.PIPE, text=True)
        for role in roles
    ]
    results = [json.loads(p.communicate()[0].splitlines()[-1]) for p in processes]
    shutil.rmtree(meet)
    return time.perf_counter() - start, results


def rank_rows(n: int, annotation: Path, video_root: Path, cache: Path) -> list:
    """Cold against warm start-up of `n` ranks: before the cache (every rank indexes), cold
    with it (local rank 0 indexes and writes, the others wait and map), warm (all map)."""
    cache.unlink(missing_ok=True)
    rows = []
    scenarios = [
        ("before the cache: every rank indexes", ["before"] * n),
        ("cold: local rank 0 indexes and writes the cache, the others wait and map it",
         ["build"] + ["wait"] * (n - 1)),
        ("warm (a restart or requeue): every rank maps the cache", ["warm"] * n),
        ("one process, cold (indexes)", ["before"]),
        ("one process, warm (maps)", ["warm"]),
    ]  # fmt: skip
    if n == 1:  # the one-process rows would repeat the first and the last
        scenarios = scenarios[:3]
    for name, roles in scenarios:
        if roles[0] == "build":
            cache.unlink(missing_ok=True)
        wall, results = ranks(roles, annotation, video_root, cache)
        seconds = max(r["seconds"] for r in results)
        figures = []
        for role in dict.fromkeys(r["role"] for r in results):
            mine = [r for r in results if r["role"] == role]
            figures.append(
                f"{role} x{len(mine)}: RSS peak {max(r['peak_mb'] for r in mine):.0f} MB, "
                f"private {max(r['private_mb'] for r in mine):.0f} MB, "
                f"PSS {max(r['pss_mb'] for r in mine):.0f} MB"
            )
        together = sum(r["peak_mb"] for r in results)
        timing = f"{seconds:.2f} s (all done {wall:.1f} s after the start)"
        rows.append(
            (f"{name} ({len(roles)})", f"{timing} | {'; '.join(figures)} | {together:.0f} MB")
        )
        print(rows[-1], flush=True)
    size = cache.stat().st_size / 2**20
    rows.append(("the cache file", f"{size:.0f} MB (pages shared by every rank that maps it)"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=700)
    parser.add_argument("--train-per-class", type=int, default=882)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--keep", help="build (or reuse) the tree here instead of a temp dir")
    parser.add_argument("--ranks", type=int, default=8, help="ranks of a node, cold vs warm")
    parser.add_argument("--ranks-only", action="store_true", help="only the ranks' start-up")
    parser.add_argument("--probe", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(*args.probe)
        return
    torch.set_num_threads(2)

    root = Path(args.keep or tempfile.mkdtemp(prefix="cnn3d-startup-"))
    annotation, counted = root / "k700.json", root / "k700_counted.json"
    video_root = root / "k700"
    if not annotation.exists():
        start = time.perf_counter()
        build_tree(root, args.classes, args.train_per_class, args.val_per_class)
        record_counts(annotation, video_root, counted)
        print(f"built the tree in {time.perf_counter() - start:.0f} s: {root}")
    n_total = args.classes * (args.train_per_class + args.val_per_class)
    print(f"{n_total} videos in {args.classes} class folders")

    rows = rank_rows(args.ranks, counted, video_root, root / "video_index.cache")
    if args.ranks_only:
        print(
            "\n| start-up (ranks) | index phase, slowest rank | memory per rank, by role "
            "(above its state after imports) | RSS peaks added up |"
        )
        print("| --- | --- | --- | --- |")
        for name, value in rows:
            print(f"| {name} | {value} |")
        return
    gc.collect()
    rss0 = rss_mb()
    start = time.perf_counter()
    annotations = read_annotations(counted)
    t_read = time.perf_counter() - start
    start = time.perf_counter()
    listing = FolderListing()
    train_index, missing_t = index_subset(annotations, "training", video_root, listing)
    val_index, missing_v = index_subset(annotations, "validation", video_root, listing)
    t_resolve = time.perf_counter() - start
    del annotations, listing
    gc.collect()
    assert not missing_t and not missing_v
    start = time.perf_counter()
    train_set = VideoDataset(train_index, TrainTransform(32, "corner", True), "train", 16)
    val_set = VideoDataset(val_index, EvalTransform(32, "center"), "val", 16, n_clips=3)
    t_build = time.perf_counter() - start
    rss_index = rss_mb() - rss0
    index_mb = (train_index.nbytes + val_index.nbytes + val_set.items.nbytes) / 2**20
    rows += [
        ("annotation read (JSON, 650k entries)", f"{t_read:.2f} s"),
        ("path resolution (one scandir per class folder)", f"{t_resolve:.2f} s"),
        ("dataset build (train + val, recorded counts)", f"{t_build:.2f} s"),
        ("read + resolve + build", f"**{t_read + t_resolve + t_build:.2f} s**"),
        ("video index arrays (train + val + val items)", f"**{index_mb:.0f} MB**"),
        ("process RSS growth, annotation objects freed", f"{rss_index:.0f} MB"),
    ]
    print(*rows[-6:], sep="\n")

    gc.freeze()  # as `cnn3d train` does before its workers fork
    idle, above = worker_memory(train_set, args.workers, args.batches, 8)
    gc.unfreeze()
    rows.append(
        (
            f"per-worker USS above an idle fork, {args.workers} workers x "
            f"{args.batches * 8 // args.workers} items, gc every 50 items",
            f"**max {max(above):.0f} MB** (mean {np.mean(above):.0f}; idle worker {idle:.0f} MB)",
        )
    )
    print(rows[-1])
    del train_set, val_set, train_index, val_index
    gc.collect()

    # the baseline shape, same items, same workers
    annotations = read_annotations(counted)
    listing = FolderListing()
    index, _ = index_subset(annotations, "training", video_root, listing)
    objects = list(index)
    del listing, index
    baseline = ObjectPerVideo(objects, TrainTransform(32, "corner", True), keep_alive=annotations)
    idle_b, above_b = worker_memory(baseline, args.workers, args.batches, 8)
    rows.append(
        (
            "baseline (object per video): per-worker USS above idle",
            f"max {max(above_b):.0f} MB (mean {np.mean(above_b):.0f}); "
            f"cnn3d / baseline {max(above) / max(above_b):.2f}",
        )
    )
    print(rows[-1])
    limit = 50_000
    t_base, _ = baseline_resolve(counted, video_root, limit)
    scaled = t_base * n_total / limit
    rows.append(
        (
            f"baseline resolution (Path.exists per candidate; {limit} entries, scaled)",
            f"{scaled:.1f} s ({scaled / t_resolve:.1f}x cnn3d's)",
        )
    )
    print(rows[-1])
    del baseline, objects, annotations
    gc.collect()

    t_first = first_step_seconds(root, counted, video_root, args.workers)
    rows.append(
        (
            f"`cnn3d train` start to first optimiser step ({args.workers} workers)",
            f"**{t_first:.1f} s**",
        )
    )
    print(rows[-1])

    # validation without recorded counts: every file opened once (packets scanned)
    annotations = read_annotations(annotation)
    index, _ = index_subset(annotations, "validation", video_root)
    start = time.perf_counter()
    VideoDataset(index, EvalTransform(32, "center"), "val", 16, n_clips=3)
    t_open = time.perf_counter() - start
    rows.append(
        (
            f"val dataset build, {len(index)} files, no recorded counts (each opened)",
            f"{t_open:.1f} s (recorded counts: {t_build:.2f} s for train + val)",
        )
    )
    print(rows[-1])

    print("\n| step | result |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
