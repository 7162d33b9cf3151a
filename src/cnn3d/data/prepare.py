"""Frame extraction and re-encoding without the ffmpeg command line: video files -> JPEG frame
folders (`image_%05d.jpg`), the original HDF5 layout, or short-keyframe mp4.

Outputs are named by each video's path relative to the source root (class folders kept, only the
last extension dropped); two videos that would share an output (`x.mp4`, `x.mkv`) are refused
before any work. Resumable: each output is written to a temporary name and renamed, then recorded
with its source's path, size and modification time in `<dst>/.cnn3d-sources.tsv`; a re-run skips
exactly the outputs whose source is unchanged. Parallel over processes, with a progress bar, and
every failure listed at the end.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import (
    OutputCollision,
    SourceStamp,
    StampLog,
    Walk,
    atomic_directory,
    atomic_write,
    find_collisions,
    output_name,
    walk_videos,
)
from .sources import VideoReadError, upright

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

    from .sources import FrameFolderSource

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
class Job:
    src: Path
    dst: Path  # frame folder, .hdf5 or .mp4 path
    fmt: str
    short_side: int | None
    quality: int
    flow: bool = False  # optical flow (x, y) instead of the frames


STAMPS = ".cnn3d-sources.tsv"


def destination(src: Path, src_root: Path, dst_root: Path, fmt: str) -> Path:
    """`<dst_root>/<class>/<name>` (a frame folder) or `<name>.hdf5` / `<name>.mp4`."""
    relative = src.relative_to(src_root)
    return dst_root / output_name(relative, "" if fmt == "jpg" else f".{fmt}")


def run_job(job: Job) -> str | None:
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


def write_flow(job: Job, frames: list[np.ndarray], fps: float) -> None:
    """Flow of consecutive frames as the original's HDF5 (`video_u`, `video_v`: grayscale JPEG
    bytes, 0-based) or a TSN-style folder (`flow_x_00001.jpg`, `flow_y_00001.jpg`, 1-based)."""
    import simplejpeg

    from .flow import compute_flow

    if len(frames) < 2:
        raise VideoReadError(job.src, "has a single frame: no motion to compute flow from")
    pairs = compute_flow(frames)

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
) -> PrepareReport:
    """Convert every video under `src_root` (keeping the class folders); with `flow`, write its
    optical flow (`jpg` folders or `hdf5`) instead of its frames."""
    if fmt not in FORMATS or (flow and fmt == "mp4"):
        choices = ("jpg", "hdf5") if flow else FORMATS
        raise ValueError(f"format must be one of {', '.join(choices)}, not {fmt!r}")
    src_root, dst_root = Path(src_root), Path(dst_root)
    if not src_root.is_dir():
        raise FileNotFoundError(f"{src_root}: no such folder")
    walk: Walk = walk_videos(src_root, frame_folders=flow)
    targets = [(src, destination(src, src_root, dst_root, fmt)) for src in walk.videos]
    collisions = find_collisions(targets)
    if collisions:
        raise OutputCollision(collisions, "output")
    stamps = StampLog(dst_root / STAMPS)
    todo, stamp_of, already = [], {}, 0
    for src, dst in targets:
        key = dst.relative_to(dst_root).as_posix()
        stamp_of[key] = SourceStamp.of(src)
        if dst.exists() and stamps.is_done(key, stamp_of[key]):
            already += 1
            continue
        todo.append(Job(src, dst, fmt, short_side, quality, flow))
    failures: list[str] = []
    from tqdm import tqdm

    what = f"flow {fmt}" if flow else fmt
    bar = tqdm(total=len(todo), unit="video", disable=not progress, desc=f"prepare {what}")

    def finish(job: Job, result: str | None) -> None:
        if result:
            failures.append(result)
        else:
            key = job.dst.relative_to(dst_root).as_posix()
            stamps.record(key, stamp_of[key])
        bar.update()

    if jobs <= 1:
        for job in todo:
            finish(job, run_job(job))
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for job, result in zip(todo, pool.map(run_job, todo, chunksize=1), strict=True):
                finish(job, result)
    bar.close()
    return PrepareReport(len(todo) - len(failures), already, failures, walk.skipped)
