"""The built video index on disk: one file of arrays that a restarted job, and every rank of a
node, maps instead of parsing the annotation file and resolving its paths again.

At Kinetics-700 scale, reading the annotation JSON and resolving 650k paths takes seconds of
CPU and a transient peak of hundreds of MB per process; mapping the file takes milliseconds,
and its pages (read-only, file-backed) are shared by every process that maps it, so each rank
adds little private memory.

The file is `MAGIC`, the header's length (8 bytes, little-endian), a JSON header, then the
arrays, each at a 64-byte aligned offset the header gives. It is fresh while the annotation
file has the size, mtime and inode it had, the video root is the same folder, and every folder
the build listed has the mtime it had before listing (adding, removing or renaming a video
changes its folder's mtime); anything else rebuilds it, and `open_index` says why. The header
carries a checksum of itself and of every array byte (read once per start: a few milliseconds
for 650k videos), so a damaged file is rebuilt, never trusted. A file at the cache's path that
is not an index (no magic) is refused, never replaced (`check_cache_path`). A video
rewritten in place under its old name changes no folder: its frame count comes from the
annotation file or from the video itself, never from the cache, so nothing goes stale.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..files import atomic_write, what_file_is
from .annotations import read_annotations
from .index import FolderListing, StringTable, VideoIndex, folder_stamp, index_subset

MAGIC = b"CNN3DIDX"
FORMAT = 2  # raised whenever what the index holds or how paths are resolved changes
ALIGN = 64
SUBSETS = ("training", "validation")
NOT_WRITTEN = "none written yet"


@dataclass(frozen=True)
class IndexedData:
    """What a run takes from its annotation file and video root."""

    labels: list[str]
    videos: dict[str, VideoIndex]  # subset -> its videos found
    missing: dict[str, StringTable]  # subset -> ids of its videos not found
    # for the staleness check: the annotation file's stamp, and each listed folder (relative
    # to the video root) -> its mtime before listing
    annotation: dict = field(default_factory=dict)
    folders: dict[str, int | None] = field(default_factory=dict)


def annotation_stamp(path: str | os.PathLike) -> dict:
    status = os.stat(path)
    return {
        "path": os.path.realpath(path),
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "inode": status.st_ino,
    }


def build_index(
    annotation_path: str | os.PathLike, video_root: str | os.PathLike, subsets=SUBSETS
) -> IndexedData:
    """Read the annotation file and find each subset's videos (`index.index_subset`)."""
    stamp = annotation_stamp(annotation_path)  # before reading: a later change shows as stale
    annotations = read_annotations(annotation_path)
    listing = FolderListing()  # each folder listed once for every subset
    videos, missing = {}, {}
    for subset in subsets:
        videos[subset], ids = index_subset(annotations, subset, video_root, listing)
        missing[subset] = StringTable(ids)
    root = str(video_root)
    folders = {os.path.relpath(f, root): mtime for f, mtime in listing.stamps.items()}
    return IndexedData(list(annotations.labels), videos, missing, stamp, folders)


def write_index(path: str | os.PathLike, data: IndexedData, video_root: str | os.PathLike) -> None:
    """Write `data` to `path` atomically (a reader maps the old file or the new one)."""
    arrays: list[tuple[str, np.ndarray]] = []
    subsets = {}
    for subset, index in data.videos.items():
        arrays += [(f"{subset}/{name}", a) for name, a in index.arrays().items()]
        table = data.missing[subset]
        arrays += [(f"{subset}/missing.data", table.data)]
        arrays += [(f"{subset}/missing.offsets", table.offsets)]
        subsets[subset] = {"notes": index.notes, "count": len(index)}
    layout, offset = {}, 0
    for name, a in arrays:
        layout[name] = {"offset": offset, "dtype": a.dtype.str, "length": len(a)}
        offset += -(-a.nbytes // ALIGN) * ALIGN
    header = {
        "format": FORMAT,
        "data_bytes": offset,
        "annotation": data.annotation,
        "video_root": os.path.realpath(video_root),
        "folders": data.folders,
        "labels": data.labels,
        "subsets": subsets,
        "arrays": layout,
    }
    data = bytearray(offset)
    for name, a in arrays:
        at = layout[name]["offset"]
        data[at : at + a.nbytes] = np.ascontiguousarray(a).tobytes()
    header["checksum"] = checksum(header, data)
    encoded = json.dumps(header).encode("utf-8")
    start = -(-(len(MAGIC) + 8 + len(encoded)) // ALIGN) * ALIGN

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(MAGIC + len(encoded).to_bytes(8, "little") + encoded)
            f.seek(start)
            f.write(data)
            f.truncate(start + offset)

    atomic_write(path, write)


def checksum(header: dict, data) -> str:
    """BLAKE2b of the header (without its checksum, keys sorted) and the array bytes."""
    digest = hashlib.blake2b(digest_size=16)
    fields = {k: v for k, v in header.items() if k != "checksum"}
    digest.update(json.dumps(fields, sort_keys=True).encode("utf-8"))
    digest.update(data)
    return digest.hexdigest()


def check_cache_path(path: str | os.PathLike) -> None:
    """Refuse a cache path that names something other than an index: the cache is rewritten
    whenever it is stale, and must never replace an annotation file, a video or a checkpoint."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(
            f"--index-cache {path}: is a folder; name a file (e.g. {path / 'video_index.cache'})"
        )
    if not path.exists():
        return
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head != MAGIC:
        kind = what_file_is(path) or f"it starts with {head!r}"
        raise UsageError(
            f"--index-cache {path}: this file is not a cnn3d video index ({kind}); "
            "it is not replaced: name a new file, or remove it yourself"
        )


def read_header(path: Path) -> tuple[dict, int]:
    """(header, where the arrays start); ValueError for a file that is not an index."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 8)
        if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
            raise ValueError("not a cnn3d video index")
        length = int.from_bytes(head[len(MAGIC) :], "little")
        encoded = f.read(length)
    if len(encoded) != length:
        raise ValueError("cut short")
    header = json.loads(encoded)
    return header, -(-(len(MAGIC) + 8 + length) // ALIGN) * ALIGN


def staleness(
    header: dict, annotation_path: str | os.PathLike, video_root: str | os.PathLike
) -> str | None:
    """Why an index with this header does not hold this annotation file's videos under this
    root now, or None when it does."""
    if header.get("format") != FORMAT:
        return f"written by another cnn3d (index format {header.get('format')}, now {FORMAT})"
    before = header["annotation"]
    try:
        now = annotation_stamp(annotation_path)
    except OSError:
        return f"the annotation file {annotation_path} cannot be read"
    if before["path"] != now["path"]:
        return f"built from another annotation file ({before['path']})"
    for key, what in (("size", "its size"), ("mtime_ns", "its mtime"), ("inode", "the file")):
        if before[key] != now[key]:
            return f"the annotation file changed since it was built ({what})"
    root = str(video_root)
    if not os.path.isdir(root):
        return f"the video root {root} is not a folder"
    if header["video_root"] != os.path.realpath(root):
        return f"built for another video root ({header['video_root']})"
    for folder, mtime in header["folders"].items():
        if folder_stamp(os.path.join(root, folder)) != mtime:
            change = "appeared" if mtime is None else "changed (videos added, removed or renamed)"
            return f"the folder {os.path.join(root, folder)} {change} since it was built"
    return None


def open_index(
    path: str | os.PathLike, annotation_path: str | os.PathLike, video_root: str | os.PathLike
) -> tuple[IndexedData | None, str]:
    """(the index mapped from `path`, "") when it is fresh and whole, else (None, why not)."""
    path = Path(path)
    if not path.exists():
        return None, NOT_WRITTEN
    try:
        header, start = read_header(path)
        check_header(header)
        why = staleness(header, annotation_path, video_root)
        if why:
            return None, why
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        end = start + header["data_bytes"]
        if len(mapped) != end:
            raise ValueError(f"{len(mapped)} bytes, not {end}")
        if checksum(header, memoryview(mapped)[start:end]) != header["checksum"]:
            raise ValueError("its checksum does not match: the file is damaged")
        videos, missing = {}, {}
        for subset, info in header["subsets"].items():
            arrays = {}
            for name in (*VideoIndex.COLUMNS, "missing.data", "missing.offsets"):
                where = header["arrays"][f"{subset}/{name}"]
                dtype = np.dtype(where["dtype"])
                arrays[name] = np.frombuffer(
                    mapped, dtype, where["length"], start + where["offset"]
                )
            videos[subset] = VideoIndex.from_arrays(str(video_root), arrays)
            videos[subset].notes = list(info["notes"])
            missing[subset] = StringTable.from_arrays(
                arrays["missing.data"], arrays["missing.offsets"]
            )
            if len(videos[subset]) != info["count"]:
                raise ValueError(f"{subset}: {len(videos[subset])} videos, not {info['count']}")
            check_labels(videos[subset], len(header["labels"]), subset)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as error:
        return None, f"unreadable ({error}); it is rebuilt"
    return IndexedData(
        header["labels"], videos, missing, header["annotation"], header["folders"]
    ), ""


# the header's fields and their types; anything else is a damaged or foreign file
HEADER_FIELDS = {
    "format": int, "data_bytes": int, "checksum": str, "annotation": dict, "video_root": str,
    "folders": dict, "labels": list, "subsets": dict, "arrays": dict,
}  # fmt: skip


def check_header(header) -> None:
    """ValueError naming the first field that is missing or of the wrong type."""
    if not isinstance(header, dict):
        raise ValueError("the header is not a mapping")
    if header.get("format") != FORMAT:
        return  # another cnn3d's index: `staleness` says so, and it is rebuilt
    for name, kind in HEADER_FIELDS.items():
        if not isinstance(header.get(name), kind):
            raise ValueError(f"the header's {name!r} is missing or not a {kind.__name__}")
    for key in ("path", "size", "mtime_ns", "inode"):
        if key not in header["annotation"]:
            raise ValueError(f"the header's annotation stamp has no {key!r}")
    if not all(isinstance(label, str) for label in header["labels"]):
        raise ValueError("the header's labels are not all names")
    for name, where in header["arrays"].items():
        offset, length = where.get("offset"), where.get("length")
        if not (isinstance(offset, int) and isinstance(length, int) and offset >= 0 <= length):
            raise ValueError(f"the header's array {name!r} has no valid offset and length")
        if offset + length * np.dtype(where["dtype"]).itemsize > header["data_bytes"]:
            raise ValueError(f"the header's array {name!r} lies past the end of the data")


def check_labels(videos: VideoIndex, n_classes: int, subset: str) -> None:
    labels = np.asarray(videos.labels)
    if len(labels) and (labels.min() < -1 or labels.max() >= n_classes):
        raise ValueError(f"{subset}: a label outside the {n_classes} classes")
