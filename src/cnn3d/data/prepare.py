"""What `cnn3d prepare` does on disk: frame extraction and re-encoding without the ffmpeg command
line (video files -> JPEG frame folders `image_%05d.jpg`, the original HDF5 layout, or
short-keyframe mp4), optical flow, and probing the videos an annotation file lists
(`attach_videos`: frame counts and rates recorded in the entries).

Outputs are named by each video's path relative to the source root (class folders kept, only the
last extension dropped); two videos that would share an output (`x.mp4`, `x.mkv`) are refused
before any work. Resumable: each output is written to a temporary name and renamed, then recorded
with its source's path, size and modification time in `<dst>/.cnn3d-sources.tsv`; a re-run skips
exactly the outputs whose source is unchanged. Parallel over processes, with a progress bar, and
every failure listed at the end.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingInput, OutputCollision, UsageError, VideoReadError
from ..files import (
    SourceStamp,
    StampLog,
    Walk,
    atomic_directory,
    atomic_write,
    find_collisions,
    output_name,
    walk_videos,
)
from .annotations import Annotations, write_annotations
from .index import FolderListing, find_entry
from .optical_flow import check_method, compute_flow
from .sources import FrameFolderSource, probe, upright

FORMATS = ("jpg", "hdf5", "mp4")


def write_video(path, frames: np.ndarray, fps: float = 30, gop: int = 16, crf: int = 18) -> None:
    """Encode uint8 RGB frames [T, H, W, 3] with H.264 (or MPEG-4 Part 2 for `.avi`), a keyframe
    every `gop` frames, atomically."""
    import av

    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    height, width = frames.shape[1:3]

    def write(tmp):
        fmt = "avi" if path.suffix == ".avi" else ("matroska" if path.suffix == ".mkv" else "mp4")
        with av.open(tmp, "w", format=fmt) as container:
            if path.suffix == ".avi":
                stream = container.add_stream("mpeg4", rate=round(fps))
                stream.options = {"g": str(gop), "qscale": "3"}
            else:
                stream = container.add_stream("libx264", rate=round(fps))
                stream.options = {
                    "g": str(gop),
                    "crf": str(crf),
                    "preset": "veryfast",
                    "keyint_min": str(gop),
                    "sc_threshold": "0",
                }
            stream.width, stream.height = width - width % 2, height - height % 2
            stream.pix_fmt = "yuv420p"
            for array in frames:
                frame = av.VideoFrame.from_ndarray(
                    array[: stream.height, : stream.width], format="rgb24"
                )
                container.mux(stream.encode(frame))
            container.mux(stream.encode())

    atomic_write(path, write)


def _resize_short(frame, short_side: int | None) -> np.ndarray:
    if not short_side:
        return upright(frame, frame.to_ndarray(format="rgb24"))
    w, h = frame.width, frame.height
    if h <= w:
        nh, nw = short_side, round(w * short_side / h)
    else:
        nw, nh = short_side, round(h * short_side / w)
    array = frame.to_ndarray(format="rgb24", width=nw, height=nh, interpolation="AREA")
    return upright(frame, array)


def decode_all(path: Path, short_side: int | None = None) -> tuple[list[np.ndarray], float]:
    """Every frame of a video file or `image_%05d.jpg` folder (short side resized), and its
    frame rate (NaN for a folder)."""
    import av

    if path.is_dir():
        return _folder_frames(path, short_side), float("nan")

    if not path.is_file() or path.stat().st_size == 0:
        raise VideoReadError(path, "missing or empty file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or 30)
            frames = [_resize_short(f, short_side) for f in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise VideoReadError(path, f"decoding failed ({error})") from None
    if not frames:
        raise VideoReadError(path, "has no decodable frames")
    return frames, fps


def _folder_frames(path: Path, short_side: int | None) -> list[np.ndarray]:
    from PIL import Image

    source = FrameFolderSource(path)
    frames = [f.permute(1, 2, 0).numpy() for f in source.read(np.arange(source.n_frames))]
    if not short_side:
        return frames
    h, w = frames[0].shape[:2]
    size = (
        (round(w * short_side / h), short_side)
        if h <= w
        else (short_side, round(h * short_side / w))
    )
    return [np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames]


@dataclass(frozen=True)
class Conversion:
    src: Path
    dst: Path  # frame folder, .hdf5 or .mp4 path
    fmt: str
    short_side: int | None
    quality: int
    flow: bool = False  # optical flow (x, y) instead of the frames
    flow_method: str = "dis"  # optical_flow.METHODS


STAMPS = ".cnn3d-sources.tsv"


def destination(src: Path, src_root: Path, dst_root: Path, fmt: str) -> Path:
    """`<dst_root>/<class>/<name>` (a frame folder) or `<name>.hdf5` / `<name>.mp4`."""
    relative = src.relative_to(src_root)
    return dst_root / output_name(relative, "" if fmt == "jpg" else f".{fmt}")


def convert_one(job: Conversion) -> str | None:
    """Convert one video; None on success, else the error message (naming the file)."""
    import simplejpeg

    try:
        frames, fps = decode_all(job.src, job.short_side)
        if job.flow:
            write_flow(job, frames, fps)
            return None
        if job.fmt == "mp4":
            write_video(job.dst, np.stack(frames), fps)
            return None
        encoded = [
            simplejpeg.encode_jpeg(np.ascontiguousarray(f), quality=job.quality) for f in frames
        ]
        if job.fmt == "jpg":

            def fill(tmp: Path) -> None:
                for i, data in enumerate(encoded, start=1):
                    (tmp / f"image_{i:05d}.jpg").write_bytes(data)

            atomic_directory(job.dst, fill)
        else:
            import h5py

            def write(tmp):
                with h5py.File(tmp, "w") as f:
                    data = f.create_dataset(
                        "video", (len(encoded),), dtype=h5py.vlen_dtype(np.uint8)
                    )
                    for i, blob in enumerate(encoded):
                        data[i] = np.frombuffer(blob, dtype=np.uint8)
                    f.attrs["source"] = str(job.src)
                    f.attrs["fps"] = fps

            atomic_write(job.dst, write)
        return None
    except VideoReadError as error:
        return str(error)
    except Exception as error:  # one bad video must not stop the others
        return f"{job.src}: {type(error).__name__}: {error}"


def write_flow(job: Conversion, frames: list[np.ndarray], fps: float) -> None:
    """Flow of consecutive frames as the original's HDF5 (`video_u`, `video_v`: grayscale JPEG
    bytes, 0-based) or a TSN-style folder (`flow_x_00001.jpg`, `flow_y_00001.jpg`, 1-based)."""
    import simplejpeg

    if len(frames) < 2:
        raise VideoReadError(job.src, "has a single frame: no motion to compute flow from")
    pairs = compute_flow(frames, method=job.flow_method)

    def encode(image):
        return simplejpeg.encode_jpeg(image[..., None], quality=job.quality, colorspace="GRAY")

    encoded = [(encode(x), encode(y)) for x, y in pairs]
    if job.fmt == "jpg":

        def fill(tmp: Path) -> None:
            for i, (x, y) in enumerate(encoded, start=1):
                (tmp / f"flow_x_{i:05d}.jpg").write_bytes(x)
                (tmp / f"flow_y_{i:05d}.jpg").write_bytes(y)

        atomic_directory(job.dst, fill)
        return
    import h5py

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            for c, name in enumerate(("video_u", "video_v")):
                data = f.create_dataset(name, (len(encoded),), dtype=h5py.vlen_dtype(np.uint8))
                for i, pair in enumerate(encoded):
                    data[i] = np.frombuffer(pair[c], dtype=np.uint8)
            f.attrs["source"] = str(job.src)
            f.attrs["fps"] = fps

    atomic_write(job.dst, write)


@dataclass
class PrepareReport:
    converted: int
    already_done: int
    failures: list[str]
    skipped_files: list[Path]  # non-video files under the source folder


def prepare_frames(
    src_root,
    dst_root,
    fmt: str = "jpg",
    short_side: int | None = 240,
    jobs: int = 1,
    quality: int = 90,
    progress: bool = True,
    flow: bool = False,
    flow_method: str = "dis",
) -> PrepareReport:
    """Convert every video under `src_root` (keeping the class folders); with `flow`, write its
    optical flow (`jpg` folders or `hdf5`, by `flow_method`: `optical_flow.METHODS`) instead of
    its frames."""
    if fmt not in FORMATS or (flow and fmt == "mp4"):
        choices = ("jpg", "hdf5") if flow else FORMATS
        raise UsageError(f"format must be one of {', '.join(choices)}, not {fmt!r}")
    if flow:
        check_method(flow_method)  # OpenCV (contrib for tvl1) before any work
    src_root, dst_root = Path(src_root), Path(dst_root)
    if not src_root.is_dir():
        raise MissingInput(f"{src_root}: no such folder")
    walk: Walk = walk_videos(src_root, frame_folders=flow)
    targets = [(src, destination(src, src_root, dst_root, fmt)) for src in walk.videos]
    collisions = find_collisions(targets)
    if collisions:
        raise OutputCollision(collisions, "prepare")
    stamps = StampLog(dst_root / STAMPS)
    todo, stamp_of, already = [], {}, 0
    for src, dst in targets:
        key = dst.relative_to(dst_root).as_posix()
        stamp_of[key] = SourceStamp.of(src)
        if dst.exists() and stamps.is_done(key, stamp_of[key]):
            already += 1
            continue
        todo.append(Conversion(src, dst, fmt, short_side, quality, flow, flow_method))
    failures: list[str] = []
    from tqdm import tqdm

    what = f"flow ({flow_method}) {fmt}" if flow else fmt
    bar = tqdm(total=len(todo), unit="video", disable=not progress, desc=f"prepare {what}")

    def finish(job: Conversion, result: str | None) -> None:
        if result:
            failures.append(result)
        else:
            key = job.dst.relative_to(dst_root).as_posix()
            stamps.record(key, stamp_of[key])
        bar.update()

    if jobs <= 1:
        for job in todo:
            finish(job, convert_one(job))
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for job, result in zip(todo, pool.map(convert_one, todo, chunksize=1), strict=True):
                finish(job, result)
    bar.close()
    return PrepareReport(len(todo) - len(failures), already, failures, walk.skipped)


# -------------------------------------------------------------------- probing annotated videos


def probe_one(path: str) -> tuple[int, float | None] | str:
    """A worker's job: (frame count, fps) of one video, or why it cannot be read."""
    try:
        return probe(path)
    except VideoReadError as error:
        return str(error)
    except Exception as error:  # one bad file must not stop the others
        return f"{path}: {type(error).__name__}: {error}"


def attach_videos(
    annotations: Annotations,
    video_root: str | os.PathLike,
    jobs: int = 1,
    progress: bool = False,
) -> Annotations:
    """Record each found video's frame count (`n_frames`, and the segment) and frame rate
    (`fps`, for video files) in its entry; list the videos not found or not readable.

    Recorded counts let training, validation and test start without opening any video (the
    original's builders did the same for frame folders). Each folder is listed once; videos
    are opened in `jobs` processes (video files: one pass over the packets, no decoding).
    Videos not on disk are named in `missing`, unreadable ones (with why) in `unreadable`; both
    stay out of the returned entries, and the caller reports them.
    """
    from tqdm import tqdm

    root = str(video_root)
    listing = FolderListing()
    found, missing, unreadable = [], [], []
    for entry in annotations.entries:
        activitynet = isinstance(entry.extra.get("annotations"), list)
        hit = find_entry(listing, root, entry.video_id, entry.label, entry.video_path, activitynet)
        if hit is None:
            missing.append(entry.video_id)
        else:
            found.append((entry, hit[0], hit[1]))
    paths = [os.path.join(root, relative) for _, relative, _ in found]
    bar = tqdm(total=len(paths), unit="video", desc="counting frames", disable=not progress)
    if jobs > 1 and len(paths) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = []
            for result in pool.map(probe_one, paths, chunksize=16):
                results.append(result)
                bar.update()
    else:
        results = []
        for path in paths:
            results.append(probe_one(path))
            bar.update()
    bar.close()
    kept = []
    for (entry, _, is_dir), result in zip(found, results, strict=True):
        if isinstance(result, str):
            unreadable.append(result)
            continue
        n_frames, fps = result
        entry.extra["n_frames"] = n_frames
        if isinstance(entry.extra.get("annotations"), list):
            duration = entry.extra.get("duration")
            entry.extra["fps"] = fps or (round(n_frames / float(duration), 2) if duration else 30.0)
        else:
            if fps:
                entry.extra["fps"] = round(fps, 3)
            first = 1 if is_dir else 0
            entry.segment = (first, first + n_frames)
        kept.append(entry)
    return Annotations(
        annotations.labels,
        kept,
        missing,
        unreadable,
        annotations.skipped_files,
        duplicates=annotations.duplicates,
    )


# ---------------------------------------------------------------------- writing annotation files


@dataclass
class SavedAnnotations:
    """What `save_annotations` wrote: the file, its classes and per-subset counts (as in the
    file), and the listed videos left out (not found, unreadable) with where they are named."""

    path: Path
    n_classes: int
    counts: dict[str, int]
    missing: list[str]
    unreadable: list[str]
    duplicates: list[str]
    skipped_files: list[Path]
    problems_file: Path | None


def save_annotations(
    annotations: Annotations,
    out_path: str | os.PathLike,
    video_path: str | os.PathLike | None = None,
    jobs: int = 1,
    progress: bool | None = None,
) -> SavedAnnotations:
    """Write `annotations` as the original JSON; with `video_path`, each video's frame count and
    rate are recorded first (`attach_videos`), and the videos not found or unreadable are left
    out. What was left out (those, and entries naming a video already listed) is named in
    `<out>.missing.txt`. `progress` None: a bar from 1000 videos on."""
    out_path = Path(out_path)
    if video_path:
        if progress is None:
            progress = len(annotations) > 1000
        annotations = attach_videos(annotations, video_path, jobs, progress=progress)
    write_annotations(out_path, annotations)
    problems = [f"{v}: not found" for v in annotations.missing] + list(annotations.unreadable)
    problems += annotations.duplicates
    listing = None
    if problems:
        listing = Path(str(out_path) + ".missing.txt")
        atomic_write(listing, lambda tmp: Path(tmp).write_text("\n".join(problems) + "\n"))
    counts = {s: len(annotations.subset(s)) for s in ("training", "validation", "testing")}
    return SavedAnnotations(
        out_path,
        len(annotations.labels),
        counts,
        list(annotations.missing),
        list(annotations.unreadable),
        list(annotations.duplicates),
        list(annotations.skipped_files),
        listing,
    )


def split_file_name(dataset: str, split: int) -> str:
    """The original's names of per-split annotation files: `ucf101_01.json`, `hmdb51_1.json`."""
    return f"ucf101_0{split}.json" if dataset == "ucf101" else f"{dataset}_{split}.json"
