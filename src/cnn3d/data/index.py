"""The video index: which file holds each annotated video, its label and its frame span, kept in
a few numpy arrays instead of a Python object per video.

At Kinetics-700 scale (650k videos, 8-16 DataLoader workers per GPU) this matters twice: paths
are resolved by listing each class folder once (`os.scandir`, no `stat` per video), and forked
workers share the arrays' pages, where a list of objects would be copied into each worker page
by page as reference counting and the garbage collector touch it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..files import VIDEO_SUFFIXES
from .annotations import Annotations

HDF5_SUFFIXES = (".hdf5", ".h5")


@dataclass(frozen=True)
class Video:
    """One annotated video (or ActivityNet segment): where it is and which frames it spans."""

    video_id: str
    path: str
    label: int  # -1 when unlabelled
    first_frame: int = 0  # 0-based position of the segment's first frame in the source
    n_frames: int | None = None  # None: ask the source


class StringTable:
    """Many strings in two arrays (UTF-8 bytes and offsets): no Python object per string."""

    def __init__(self, strings: Iterable[str]):
        if isinstance(strings, StringTable):
            self.data, self.offsets = strings.data, strings.offsets
            return
        strings = list(strings)
        joined = "".join(strings)
        if joined.isascii():  # one byte per character: no per-string encoding
            lengths = [len(s) for s in strings]
        else:
            lengths = [len(s.encode("utf-8")) for s in strings]
        self.offsets = np.zeros(len(strings) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.data = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)

    @classmethod
    def from_arrays(cls, data: np.ndarray, offsets: np.ndarray) -> StringTable:
        """A table over existing arrays (e.g. mapped from a file), not copied."""
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(data):
            raise ValueError("a StringTable's offsets must run from 0 to the data's length")
        table = cls.__new__(cls)
        table.data, table.offsets = data, offsets
        return table

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.data[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + self.offsets.nbytes


class VideoIndex:
    """A sequence of `Video`s stored as arrays; `index[i]` builds the `Video` on demand.

    Paths are kept relative to `root` (one string for all). `n_frames` is -1 where the count is
    not recorded (the source is asked when needed). `ids` and `paths` may be given as
    `StringTable`s and the numeric columns as arrays of their dtype: they are used as they are,
    not copied (`index_cache` maps them from a file).
    """

    COLUMNS = ("ids.data", "ids.offsets", "paths.data", "paths.offsets", "labels",
               "first_frames", "n_frames")  # fmt: skip

    def __init__(
        self,
        root: str,
        ids: Iterable[str],
        paths: Iterable[str],
        labels,
        first_frames,
        n_frames,
    ):
        self.root = root
        self.ids = StringTable(ids)
        self.paths = StringTable(paths)
        self.labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        self.first_frames = np.asarray(first_frames, dtype=np.int64).reshape(-1)
        self.n_frames = np.asarray(n_frames, dtype=np.int64).reshape(-1)
        self.notes: list[str] = []  # how the videos were found, where it is worth saying
        sizes = {len(self.ids), len(self.paths), len(self.labels), len(self.first_frames)}
        if len(sizes | {len(self.n_frames)}) != 1:
            raise ValueError("every column of a VideoIndex needs one value per video")

    def arrays(self) -> dict[str, np.ndarray]:
        """The columns as arrays, named as in `COLUMNS` (what `from_arrays` takes)."""
        return {
            "ids.data": self.ids.data,
            "ids.offsets": self.ids.offsets,
            "paths.data": self.paths.data,
            "paths.offsets": self.paths.offsets,
            "labels": self.labels,
            "first_frames": self.first_frames,
            "n_frames": self.n_frames,
        }

    @classmethod
    def from_arrays(cls, root: str, arrays: dict[str, np.ndarray]) -> VideoIndex:
        ids = StringTable.from_arrays(arrays["ids.data"], arrays["ids.offsets"])
        paths = StringTable.from_arrays(arrays["paths.data"], arrays["paths.offsets"])
        return cls(root, ids, paths, arrays["labels"], arrays["first_frames"], arrays["n_frames"])

    @classmethod
    def from_videos(cls, videos: Iterable[Video]) -> VideoIndex:
        videos = list(videos)
        return cls(
            "",
            (v.video_id for v in videos),
            (v.path for v in videos),
            [v.label for v in videos],
            [v.first_frame for v in videos],
            [-1 if v.n_frames is None else v.n_frames for v in videos],
        )

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> str:
        relative = self.paths[i]
        return os.path.join(self.root, relative) if self.root else relative

    def __getitem__(self, i: int) -> Video:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        n = int(self.n_frames[i])
        return Video(
            self.ids[i],
            self.path(i),
            int(self.labels[i]),
            int(self.first_frames[i]),
            None if n < 0 else n,
        )

    def __iter__(self) -> Iterator[Video]:
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self) -> int:
        arrays = (self.labels, self.first_frames, self.n_frames)
        return self.ids.nbytes + self.paths.nbytes + sum(a.nbytes for a in arrays)


class FolderListing:
    """Each folder listed once (`os.scandir`): which names exist, which are folders, and the
    file a video id names in the original layouts."""

    def __init__(self):
        self._folders: dict[str, dict[str, bool]] = {}  # folder -> {name: is_dir}
        self.stamps: dict[str, int | None] = {}  # folder -> mtime_ns before listing (None: none)
        self._stems: dict[str, dict[str, str]] = {}  # folder -> {video id: best name}
        self._relative: dict[str, dict[str, tuple[str, bool]]] = {}

    def names(self, folder: str) -> dict[str, bool]:
        if folder not in self._folders:
            names = {}
            # taken before the listing: a change made while listing shows as a newer mtime
            self.stamps[folder] = folder_stamp(folder)
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        try:
                            names[entry.name] = entry.is_dir()
                        except OSError:
                            continue
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                pass
            self._folders[folder] = names
        return self._folders[folder]

    def _stems_of(self, folder: str) -> dict[str, str]:
        """{video id: the name that holds it} for a folder: a frame folder named like the id,
        else `<id>.hdf5`/`.h5`, else `<id>.<video extension>` (any case), in that order."""
        if folder not in self._stems:
            rank = {s: k for k, s in enumerate(HDF5_SUFFIXES + VIDEO_SUFFIXES, start=1)}
            best: dict[str, tuple[int, str]] = {}
            for name, is_dir in self.names(folder).items():
                if is_dir:
                    key, priority = name, 0
                else:
                    stem, dot, suffix = name.rpartition(".")
                    priority = rank.get(f".{suffix.lower()}") if dot else None
                    if priority is None:
                        continue
                    key = stem
                if key not in best or priority < best[key][0]:
                    best[key] = (priority, name)
            self._stems[folder] = {key: name for key, (_, name) in best.items()}
        return self._stems[folder]

    def lookup(self, folder: str, video_id: str) -> tuple[str, bool] | None:
        """(name, is a frame folder) of the entry that holds `video_id` in `folder`, or None."""
        name = self._stems_of(folder).get(video_id)
        return None if name is None else (name, self._folders[folder][name])

    def relative_map(self, root: str, folder: str) -> dict[str, tuple[str, bool]]:
        """{video id: (path relative to root, is a frame folder)} for `<root>/<folder>`."""
        key = f"{root}\0{folder}"
        if key not in self._relative:
            path = os.path.join(root, folder)
            names = self.names(path)
            self._relative[key] = {
                video_id: (f"{folder}/{name}", names[name])
                for video_id, name in self._stems_of(path).items()
            }
        return self._relative[key]

    def exists(self, path: str) -> tuple[bool, bool]:
        """(exists, is a folder) for a path, from its parent folder's listing."""
        parent, name = os.path.split(path)
        is_dir = self.names(parent or ".").get(name)
        return is_dir is not None, bool(is_dir)


def folder_stamp(folder: str) -> int | None:
    """A folder's modification time in ns (changes when an entry is added, removed or renamed),
    None where there is no such folder."""
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def find_entry(
    listing: FolderListing,
    root: str,
    video_id: str,
    label: str | None,
    video_path: str | None = None,
    activitynet: bool = False,
) -> tuple[str, bool] | None:
    """(path relative to root, is a frame folder) of a video in the original layouts, or None:
    `video_path` if the entry gives one, else `<label>/<id>` (`test/<id>` when unlabelled), else
    `<id>` at the root; ActivityNet's `v_<id>` too."""
    if video_path:
        found, is_dir = listing.exists(os.path.join(root, video_path))
        if found:
            return video_path, is_dir
        # the same video in another form: a frame folder, an .hdf5 or another container with
        # the same relative stem (an annotation file written before `prepare frames`)
        folder, name = os.path.split(video_path)
        stem = name.rpartition(".")[0] or name
        hit = listing.lookup(os.path.join(root, folder), stem)
        if hit is None:
            return None
        return (f"{folder}/{hit[0]}" if folder else hit[0]), hit[1]
    folder = label if label is not None else "test"
    for name in (video_id, f"v_{video_id}") if activitynet else (video_id,):
        hit = listing.lookup(os.path.join(root, folder), name)
        if hit is not None:
            return f"{folder}/{hit[0]}", hit[1]
        hit = listing.lookup(root, name)
        if hit is not None:
            return hit
    return None


def index_subset(
    annotations: Annotations,
    subset: str,
    video_root: str | os.PathLike,
    listing: FolderListing | None = None,
) -> tuple[VideoIndex, list[str]]:
    """The subset's videos found under `video_root`, and the ids of those that are not there.

    Frame counts come from the annotation file where it records them (the segment, or
    `n_frames`), so building the index opens no video. Segments are mapped to 0-based positions:
    frame folders are 1-based (`[1, n+1]`), HDF5 and video files 0-based (`[0, n]`); ActivityNet
    segments in seconds are turned into frames with the entry's `fps` (30 if absent).
    """
    root = str(video_root)
    listing = listing or FolderListing()
    class_index = annotations.class_index
    ids, paths, labels, firsts, counts, missing = [], [], [], [], [], []
    substituted: dict[str, int] = {}
    maps: dict[str, dict] = {}  # label folder -> {video id: (relative path, is a folder)}
    for row in annotations.rows(subset):
        found = None
        if not row.video_path and row.segments is None:  # the common case, without joins
            folder = row.label if row.label is not None else "test"
            ids_here = maps.get(folder)
            if ids_here is None:
                ids_here = maps[folder] = listing.relative_map(root, folder)
            found = ids_here.get(row.video_id)
        if found is None:
            found = find_entry(
                listing, root, row.video_id, row.label, row.video_path, row.segments is not None
            )
        if found is None:
            missing.append(row.video_id)
            continue
        relative, is_dir = found
        if row.video_path and relative != row.video_path:
            kind = "frame folders" if is_dir else f"{os.path.splitext(relative)[1]} files"
            substituted[kind] = substituted.get(kind, 0) + 1
        if row.segments is not None:  # ActivityNet: one item per segment, seconds -> frames
            fps = float(row.fps or 30.0)
            for seg in row.segments:
                t0, t1 = seg["segment"]
                ids.append(row.video_id)
                paths.append(relative)
                labels.append(class_index[seg["label"]])
                firsts.append(int(round(t0 * fps)))
                counts.append(max(1, int(round((t1 - t0) * fps))))
            continue
        if row.segment is not None:
            start, end = int(row.segment[0]), int(row.segment[1])
            first = max(0, start - 1 if is_dir else start)  # frame folders are 1-based
            n = end - start
            if n <= 0:
                missing.append(row.video_id)
                continue
        else:
            first, n = 0, int(row.n_frames or -1)
        ids.append(row.video_id)
        paths.append(relative)
        labels.append(class_index[row.label] if row.label is not None else -1)
        firsts.append(first)
        counts.append(n)
    index = VideoIndex(root, ids, paths, labels, firsts, counts)
    index.notes = [
        f"{n} {subset} video(s) the annotation file names in another form were found as {kind}"
        for kind, n in substituted.items()
    ]
    return index, missing
