"""Clip features as files: per video `<key>.npy` (clips x D), `<key>.mean.npy` and
`<key>.segments.json`, or one `.h5` built from them; `extract_features` runs a dataset through
`bulk.run_bulk` into either."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_write, output_name, write_json
from .bulk import BulkJob, BulkSummary, Shard, run_bulk
from .runner import InferenceConfig, VideoResult


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
        "duration_s": result.duration_s,
        "segments": [list(s) for s in result.segments],
        "times": result.times,
        "frames": result.frames,
    }
    write_json(folder / f"{key}.segments.json", info)


def _save_npy(path, array) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def merge_h5(parts: Path, names: list[str], out: Path) -> None:
    """One group per video (named by its relative path without extension) holding `clips`,
    `mean`, `segments` and `times`, with `video` and `fps` attributes; written atomically."""
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


def features_job(out: Path, shard: Shard) -> BulkJob:
    """A folder of per-video files, or an `.h5`/`.hdf5` file built from them."""
    if out.suffix.lower() in (".h5", ".hdf5"):
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
) -> BulkSummary:
    """Features of this shard's videos into `out` (a folder, or an `.h5`/`.hdf5` file)."""
    job = features_job(out, shard)
    return run_bulk(model, paths, names, job, shard, progress, config, want_features=True)
