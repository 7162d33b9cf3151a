"""Clip features as files, in one of two formats: `npy`, a folder of per-video `<key>.npy`
(clips x D, or clips x crops x D), `<key>.mean.npy` and `<key>.segments.json`; or `h5`, one file
built from them. `extract_features` runs a dataset through `bulk.run_bulk` into either."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..files import atomic_write, output_name, write_json
from .bulk import BulkJob, BulkSummary, Shard, run_bulk
from .runner import InferenceConfig, VideoResult

FORMATS = ("npy", "h5")
H5_SUFFIXES = (".h5", ".hdf5")


def output_format(out: Path, fmt: str | None = None) -> str:
    """The format of output `out`: `fmt` where given (checked against `out`), else `h5` for a
    `.h5`/`.hdf5` file and `npy` (a folder) for anything else."""
    is_h5 = Path(out).suffix.lower() in H5_SUFFIXES
    if fmt is None:
        return "h5" if is_h5 else "npy"
    if fmt not in FORMATS:
        raise UsageError(f"--format must be npy or h5, not {fmt!r}")
    if fmt == "h5" and not is_h5:
        raise UsageError(f"-o {out}: --format h5 writes one file: name it .h5 or .hdf5")
    if fmt == "npy" and is_h5:
        raise UsageError(f"-o {out}: --format npy writes a folder of .npy files, not a .h5 file")
    return fmt


def write_video_features(folder: Path, result: VideoResult) -> None:
    """`<key>.npy` (clip features [n, D], or [n, crops, D] for several crops per clip),
    `<key>.mean.npy` (their mean over clips, [D] or [crops, D]) and `<key>.segments.json`
    (video, source fps and duration, the rate segments count in, segments in 1-based frames of
    that stream, times in seconds, each clip's 1-based source frames, and `crops`: the number
    of crops, their order and the resize), each written atomically."""
    key = output_name(result.name)
    clips = np.stack([f.numpy() for f in result.features])
    atomic_write(folder / f"{key}.npy", lambda tmp: _save_npy(tmp, clips))
    atomic_write(folder / f"{key}.mean.npy", lambda tmp: _save_npy(tmp, clips.mean(0)))
    info = {
        "video": result.video,
        "fps": result.fps,
        "stream_fps": result.stream_fps,
        "duration_s": result.duration_s,
        "segments": [list(s) for s in result.segments],
        "times": result.times,
        "frames": result.frames,
        "crops": result.crops,
        "crop_order": result.crop_order,
        "resize": result.resize,
    }
    write_json(folder / f"{key}.segments.json", info)


def _save_npy(path, array) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def merge_h5(parts: Path, names: list[str], out: Path) -> None:
    """One group per video (named by its relative path without extension) holding `clips`
    ([n, D], or [n, crops, D]), `mean`, `segments` and `times`, with `video`, `fps`, `crops`,
    `crop_order` ("" for one or three crops) and `resize` (0: the crop size) attributes;
    written atomically."""
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
                g.attrs["crops"] = info.get("crops", 1)
                g.attrs["crop_order"] = info.get("crop_order") or ""
                g.attrs["resize"] = info.get("resize") or 0

    atomic_write(out, write)


def features_job(out: Path, shard: Shard, fmt: str | None = None) -> BulkJob:
    """A folder of per-video files (`npy`), or an `.h5`/`.hdf5` file built from them (`h5`);
    `fmt` None: by the name of `out` (`output_format`)."""
    if output_format(out, fmt) == "h5":
        parts = out.with_name(out.name + ".parts")
        target = out.with_name(f"{out.stem}{shard.suffix}{out.suffix}")
        return BulkJob(
            parts,
            out.with_name(f"{out.stem}{shard.suffix}.manifest.csv"),
            write_video_features,
            lambda key: f"{target.name}:{key}",
            lambda key: parts / f"{key}.segments.json",
            lambda names: merge_h5(parts, names, target),
        )
    return BulkJob(
        out,
        out / f"manifest{shard.suffix}.csv",
        write_video_features,
        lambda key: f"{key}.npy",
        lambda key: out / f"{key}.segments.json",
    )


def extract_features(
    model,
    paths: list[Path],
    names: list[str],
    out: Path,
    shard: Shard = Shard(),
    progress: bool = True,
    config: InferenceConfig = InferenceConfig(),
    fmt: str | None = None,
) -> BulkSummary:
    """Features of this shard's videos into `out` (a folder for `npy`, an `.h5`/`.hdf5` file
    for `h5`; `fmt` None: by the name of `out`)."""
    job = features_job(out, shard, fmt)
    return run_bulk(model, paths, names, job, shard, progress, config, want_features=True)
