"""Annotations: the original ActivityNet-style JSON, and builders from each dataset's own files.

The JSON is `{"labels": [...], "database": {video_id: {"subset": ..., "annotations": {...}}}}` with
`annotations = {"label": name, "segment": [first, end]}` (frame numbers, `end` exclusive: 1-based
`[1, n+1]` for JPEG folders, 0-based `[0, n]` for HDF5 and video files), or, for ActivityNet, a
list of `{"label", "segment": [t0_s, t1_s]}` in seconds plus `fps`. Subsets are `training`,
`validation` and `testing`. Existing files from the original tools load unchanged.
"""

from __future__ import annotations

import csv
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..errors import AnnotationError, UsageError
from ..files import atomic_write, folder_given_for_file, is_video_file

SUBSETS = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "validation": "validation",
    "test": "testing",
    "testing": "testing",
}


@dataclass
class Entry:
    """One video of the database, as in the JSON."""

    video_id: str
    subset: str
    label: str | None = None
    segment: tuple[float, float] | None = None
    video_path: str | None = None  # relative to the video root; overrides the default layout
    extra: dict = field(default_factory=dict)  # ActivityNet: fps, duration, several segments


class Row(NamedTuple):
    """What indexing needs of one entry (see `Annotations.rows`)."""

    video_id: str
    label: str | None
    segment: tuple | list | None  # frames, end exclusive; None for ActivityNet
    video_path: str | None
    n_frames: int | None  # recorded by `prepare --video-path`
    segments: list | None  # ActivityNet: [{"label", "segment": [t0_s, t1_s]}, ...]
    fps: float | None


class Annotations:
    """Labels and entries, plus what a builder could not use. Read from a file, the entries are
    built only when asked for: indexing walks the parsed JSON directly (`rows`), which at
    Kinetics-700 scale saves seconds and a Python object per video."""

    def __init__(
        self,
        labels: list[str],
        entries: list[Entry] | None = None,
        missing: list[str] | None = None,
        unreadable: list[str] | None = None,
        skipped_files: list[Path] | None = None,
        *,
        database: dict | None = None,
        duplicates: list[str] | None = None,
    ):
        self.labels = labels
        self._entries = entries
        self._database = database if entries is None else None
        if self._entries is None and self._database is None:
            self._entries = []
        self.missing = missing or []  # videos listed but not found on disk
        self.unreadable = unreadable or []  # found but not readable: the reasons
        self.skipped_files = skipped_files or []  # non-video files a builder passed over
        self.duplicates = duplicates or []  # the same video listed again: what was kept

    @property
    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = [_entry_from_json(k, v) for k, v in self._database.items()]
            self._database = None
        return self._entries

    @entries.setter
    def entries(self, entries: list[Entry]) -> None:
        self._entries, self._database = entries, None

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else len(self._database)

    def subset(self, name: str) -> list[Entry]:
        name = SUBSETS.get(name, name)
        return [e for e in self.entries if e.subset == name]

    def rows(self, subset: str) -> Iterator[Row]:
        """The subset's entries as `Row`s, in file order."""
        subset = SUBSETS.get(subset, subset)
        spellings = {subset} | {k for k, v in SUBSETS.items() if v == subset}  # "val", ...
        if self._entries is not None:
            for e in self._entries:
                if e.subset in spellings:
                    segments = e.extra.get("annotations")
                    segments = segments if isinstance(segments, list) else None
                    yield Row(
                        e.video_id, e.label, e.segment, e.video_path,
                        e.extra.get("n_frames"), segments, e.extra.get("fps"),
                    )  # fmt: skip
            return
        for video_id, item in self._database.items():
            if item.get("subset") not in spellings:
                continue
            ann = item.get("annotations") or {}
            if isinstance(ann, list):
                label = ann[0]["label"] if ann else None
                yield Row(video_id, label, None, item.get("video_path"), item.get("n_frames"),
                          ann, item.get("fps"))  # fmt: skip
            else:
                yield Row(video_id, ann.get("label"), ann.get("segment"), item.get("video_path"),
                          item.get("n_frames"), None, item.get("fps"))  # fmt: skip

    @property
    def class_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}


def _entry_to_json(entry: Entry) -> dict:
    out: dict = {"subset": entry.subset}
    if "annotations" in entry.extra:
        out.update(entry.extra)
    else:
        ann: dict = {}
        if entry.label is not None:
            ann["label"] = entry.label
        if entry.segment is not None:
            ann["segment"] = list(entry.segment)
        out["annotations"] = ann
        out.update(entry.extra)
    if entry.video_path is not None:
        out["video_path"] = entry.video_path
    return out


def write_annotations(path: str | os.PathLike, annotations: Annotations) -> None:
    """Write the original JSON format atomically."""
    database = {e.video_id: _entry_to_json(e) for e in annotations.entries}
    if len(database) != len(annotations.entries):
        seen: set[str] = set()
        twice = sorted(
            {e.video_id for e in annotations.entries if e.video_id in seen or seen.add(e.video_id)}
        )
        raise AnnotationError(
            f"{path}: {len(twice)} video id(s) given to more than one entry, e.g. {twice[:3]}; "
            "one would replace the other (build the entries with unique_keys)"
        )
    data = {"labels": annotations.labels, "database": database}

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)

    atomic_write(path, write)


def read_annotations(path: str | os.PathLike) -> Annotations:
    """Read the original JSON (Kinetics/UCF/HMDB/MiT builders' output, or ActivityNet's)."""
    path = Path(path)
    if path.is_dir():
        raise AnnotationError(folder_given_for_file(path, "an annotation file", (".json",)))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such annotation file") from None
    except OSError as error:
        raise AnnotationError(f"{path}: cannot be read ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or "database" not in data:
        raise AnnotationError(
            f"{path}: no 'database' key; not an ActivityNet-style annotation file"
        )
    labels = data.get("labels") or _taxonomy_leaves(data.get("taxonomy"), path)
    database = data["database"]
    if not isinstance(database, dict):
        raise AnnotationError(f"{path}: 'database' is not an object of video ids")
    used = set()
    for video_id, item in database.items():
        ann = item.get("annotations") if isinstance(item, dict) else None
        if isinstance(ann, dict):
            used.add(ann.get("label"))
        elif isinstance(ann, list):
            used.update(seg.get("label") for seg in ann)
        elif ann is not None or not isinstance(item, dict):
            raise AnnotationError(f"{path}: entry {video_id!r} is not in the expected format")
    unknown = sorted(str(x) for x in used - set(labels) - {None})
    if unknown:
        raise AnnotationError(f"{path}: labels not in the label list: {unknown[:5]}")
    return Annotations(list(labels), database=database)


def _entry_from_json(video_id: str, item: dict) -> Entry:
    subset = item.get("subset", "")
    ann = item.get("annotations", {})
    if isinstance(ann, list):  # ActivityNet: segments in seconds
        extra = {k: v for k, v in item.items() if k not in ("subset", "video_path")}
        label = ann[0]["label"] if ann else None
        return Entry(video_id, subset, label, None, item.get("video_path"), extra)
    segment = tuple(ann["segment"]) if "segment" in ann else None
    extra = {k: v for k, v in item.items() if k not in ("subset", "annotations", "video_path")}
    return Entry(video_id, subset, ann.get("label"), segment, item.get("video_path"), extra)


def _taxonomy_leaves(taxonomy, path) -> list[str]:
    if not taxonomy:
        raise AnnotationError(f"{path}: has neither 'labels' nor 'taxonomy'")
    parents = {node["parentId"] for node in taxonomy}
    return [node["nodeName"] for node in taxonomy if node["nodeId"] not in parents]


# ------------------------------------------------------------------------------ unique video ids


def _location(entry: Entry) -> str:
    """Where an entry's video is, relative to the video root, as the lookup finds it."""
    if entry.video_path:
        return entry.video_path.replace("\\", "/")
    return f"{entry.label if entry.label is not None else 'test'}/{entry.video_id}"


def _without_extension(location: str) -> str:
    folder, _, name = location.rpartition("/")
    stem = name.rpartition(".")[0] or name
    return f"{folder}/{stem}" if folder else stem


def unique_keys(entries: list[Entry]) -> tuple[list[Entry], list[str]]:
    """Every video its own key. The original's plain ids (file stems, Kinetics keys) stay where
    they are unique, so existing files and the original's tools read them; where several
    videos share one (`bikes/clip.mp4`, `bunny/clip.mp4`), each gets its path relative to the
    video root (without the extension, or with it where that is still not unique) as its key,
    and its `video_path`, so nothing is merged or replaced. An entry naming a video that an
    earlier entry already names (the same file listed twice, or in two subsets) is left out;
    returns (entries, one message per left-out entry)."""
    by_id: dict[str, list[Entry]] = {}
    for entry in entries:
        by_id.setdefault(entry.video_id, []).append(entry)
    kept, duplicates = [], []
    first_at: dict[str, Entry] = {}  # location -> the entry kept for it
    for entry in entries:
        location = _location(entry)
        if location in first_at:
            earlier = first_at[location]
            duplicates.append(
                f"{location}: listed again ({entry.subset or 'no subset'}"
                f"{', ' + entry.label if entry.label else ''}); kept the first entry "
                f"({earlier.subset or 'no subset'}{', ' + earlier.label if earlier.label else ''})"
            )
            continue
        first_at[location] = entry
        kept.append(entry)
    clashing = {vid for vid, group in by_id.items() if len({_location(e) for e in group}) > 1}
    if not clashing:
        return kept, duplicates
    short = {}
    for entry in kept:
        if entry.video_id in clashing:
            short.setdefault(_without_extension(_location(entry)), []).append(entry)
    taken = {e.video_id for e in kept if e.video_id not in clashing}
    for key, group in short.items():
        for entry in group:
            location = _location(entry)
            new_key = key if len(group) == 1 and key not in taken else location
            if not entry.video_path:
                entry.video_path = location
            entry.video_id = new_key
            taken.add(new_key)
    return kept, duplicates


def _built(labels: list[str], entries: list[Entry], **kwargs) -> Annotations:
    entries, duplicates = unique_keys(entries)
    return Annotations(labels, entries, duplicates=duplicates, **kwargs)


# ------------------------------------------------------------------------------------- builders


def _read_lines(path: Path) -> list[str]:
    try:
        return [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such split file") from None


def _label_from_path(path_text: str) -> tuple[str, str]:
    """`Class/v_Class_g01_c01.avi` -> (Class, v_Class_g01_c01)."""
    parts = path_text.replace("\\", "/").split("/")
    return parts[-2], Path(parts[-1]).stem


def build_ucf101(annotation_dir: str | os.PathLike, split: int) -> Annotations:
    """UCF-101 from `classInd.txt`, `trainlist0N.txt` (training) and `testlist0N.txt` (validation)."""
    root = Path(annotation_dir)
    labels = []
    for line in _read_lines(root / "classInd.txt"):
        fields = line.split()
        if len(fields) != 2:
            raise AnnotationError(f"{root / 'classInd.txt'}: expected 'index name', got {line!r}")
        labels.append(fields[1])
    entries = []
    for list_name, subset in (
        (f"trainlist0{split}.txt", "training"),
        (f"testlist0{split}.txt", "validation"),
    ):
        for line in _read_lines(root / list_name):
            label, video_id = _label_from_path(line.split()[0])
            if label not in labels:
                raise AnnotationError(f"{root / list_name}: class {label!r} is not in classInd.txt")
            entries.append(Entry(video_id, subset, label))
    return _built(labels, entries)


def build_hmdb51(annotation_dir: str | os.PathLike, split: int) -> Annotations:
    """HMDB-51 from `<class>_test_split{N}.txt` files: tag 1 training, 2 validation, 0 unused."""
    root = Path(annotation_dir)
    files = sorted(root.glob(f"*_test_split{split}.txt"))
    if not files:
        raise AnnotationError(f"{root}: no *_test_split{split}.txt files")
    labels = sorted({f.name[: -len(f"_test_split{split}.txt")] for f in files})
    entries = []
    for f in files:
        label = f.name[: -len(f"_test_split{split}.txt")]
        for line in _read_lines(f):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in "012":
                raise AnnotationError(f"{f}: expected '<video> <0|1|2>', got {line!r}")
            if fields[1] == "0":
                continue
            subset = "training" if fields[1] == "1" else "validation"
            entries.append(Entry(Path(fields[0]).stem, subset, label))
    return _built(labels, entries)


def kinetics_key(youtube_id: str, start: float, end: float) -> str:
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def build_kinetics(
    csv_files: Iterable[str | os.PathLike], class_order: str = "alphabetical"
) -> Annotations:
    """Kinetics-400/600/700 from its CSVs (`label,youtube_id,time_start,time_end[,split]`).

    The subset comes from the `split` column, else from the file name (train/val/test). Class
    order is alphabetical, or `first-appearance` in the training CSV (the 2020 models use it).
    """
    entries, train_order = [], []
    for csv_path in map(Path, csv_files):
        try:
            with open(csv_path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except FileNotFoundError:
            raise AnnotationError(f"{csv_path}: no such CSV file") from None
        needed = {"youtube_id", "time_start", "time_end"}
        if not rows or not needed <= set(rows[0]):
            raise AnnotationError(
                f"{csv_path}: expected columns label,youtube_id,time_start,time_end[,split]"
            )
        file_subset = next(
            (SUBSETS[w] for w in re.split(r"[_.\-]", csv_path.stem) if w in SUBSETS), None
        )
        for row in rows:
            subset = SUBSETS.get(row.get("split", ""), file_subset)
            if subset is None:
                raise AnnotationError(
                    f"{csv_path}: cannot tell the subset (no split column, no train/val/test in the name)"
                )
            label = row.get("label") if subset != "testing" else None
            if subset == "training" and label not in train_order:
                train_order.append(label)
            key = kinetics_key(row["youtube_id"], row["time_start"], row["time_end"])
            entries.append(Entry(key, subset, label))
    all_labels = {e.label for e in entries if e.label is not None}
    if class_order == "alphabetical":
        labels = sorted(all_labels)
    elif class_order == "first-appearance":
        labels = train_order + sorted(all_labels - set(train_order))
    else:
        raise UsageError(
            f"class order must be alphabetical or first-appearance, not {class_order!r}"
        )
    return _built(labels, entries)


def build_mit(annotation_dir: str | os.PathLike) -> Annotations:
    """Moments in Time from its release files: `moments_categories.txt` (`name,index` per line:
    the class order), `trainingSet.csv` and `validationSet.csv` (`class/video.mp4,label,...`)
    and, if present, `testingSet.csv` (`video.mp4` per line, no label). Keys are file stems,
    as the original's builder made them."""
    root = Path(annotation_dir)
    labels = [line.split(",")[0].strip() for line in _read_lines(root / "moments_categories.txt")]
    known = set(labels)
    entries = []
    for name, subset in (
        ("trainingSet.csv", "training"),
        ("validationSet.csv", "validation"),
        ("testingSet.csv", "testing"),
    ):
        path = root / name
        if not path.exists():
            if subset == "testing":
                continue
            raise AnnotationError(f"{path}: no such file (the Moments in Time release has it)")
        with open(path, newline="", encoding="utf-8") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if not row or not row[0].strip():
                    continue
                video_id = Path(row[0].strip().replace("\\", "/")).stem
                if subset == "testing":
                    entries.append(Entry(video_id, subset))
                    continue
                if len(row) < 2:
                    raise AnnotationError(f"{path}:{number}: expected 'path,label,...', got {row}")
                label = row[1].strip()
                if label not in known:
                    raise AnnotationError(
                        f"{path}:{number}: class {label!r} is not in moments_categories.txt"
                    )
                entries.append(Entry(video_id, subset, label))
    return _built(labels, entries)


def build_activitynet(json_path: str | os.PathLike) -> Annotations:
    """ActivityNet v1.3: leaf classes of the taxonomy; segments stay in seconds."""
    annotations = read_annotations(json_path)
    for entry in annotations.entries:
        entry.subset = SUBSETS.get(entry.subset, entry.subset)
    return annotations


def build_custom_folders(video_root: str | os.PathLike, val_fraction: float = 0.2) -> Annotations:
    """A folder per class of video files or frame folders. Each class is split on its own:
    its videos, ordered by a stable hash of their names, give `round(val_fraction * n)` (at
    least one, when a class has two or more) to validation."""
    root = Path(video_root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise AnnotationError(f"{root}: no class folders")
    entries, skipped, found = [], [], []
    for label in classes:
        for item in sorted((root / label).iterdir()):
            if item.name.startswith("."):
                continue
            if item.is_file() and not (
                is_video_file(item) or item.suffix.lower() in (".hdf5", ".h5")
            ):
                skipped.append(item)
                continue
            video_id = item.stem if item.is_file() else item.name
            found.append(Entry(video_id, "training", label, video_path=f"{label}/{item.name}"))
        found.sort(key=lambda e: (zlib.crc32(e.video_id.encode()), e.video_id))
        n_val = round(val_fraction * len(found))
        if val_fraction > 0 and len(found) >= 2:
            n_val = min(max(1, n_val), len(found) - 1)
        for entry in found[:n_val]:
            entry.subset = "validation"
        entries += sorted(found, key=lambda e: e.video_id)
        found = []
    return _built(classes, entries, skipped_files=skipped)


def build_custom_csv(csv_path: str | os.PathLike) -> Annotations:
    """A CSV of `path,label[,subset]` (no header, or a header naming those columns)."""
    csv_path = Path(csv_path)
    try:
        rows = list(csv.reader(csv_path.read_text(encoding="utf-8").splitlines()))
    except FileNotFoundError:
        raise AnnotationError(f"{csv_path}: no such CSV file") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    entries = []
    for number, row in enumerate(rows, start=1):
        if not row or not row[0].strip():
            continue
        if len(row) < 2:
            raise AnnotationError(f"{csv_path}: line {number}: expected path,label[,subset]")
        path, label = row[0].strip(), row[1].strip()
        subset = SUBSETS.get(row[2].strip(), None) if len(row) > 2 else "training"
        if subset is None:
            raise AnnotationError(f"{csv_path}: line {number}: unknown subset {row[2]!r}")
        entries.append(Entry(Path(path).stem, subset, label or None, video_path=path))
    return _built(sorted({e.label for e in entries if e.label}), entries)


SPLIT_KINDS = ("ucf101", "hmdb51")  # the kinds whose release holds several splits


def build_annotations(
    kind: str,
    sources: list[str],
    split: int = 1,
    class_order: str = "alphabetical",
    val_fraction: float = 0.2,
) -> Annotations:
    """The annotations of a dataset `kind` (`cnn3d prepare KIND`) from its release files:
    ucf101/hmdb51 (the split files' folder, one `split`), kinetics (CSV or JSON files),
    activitynet (its JSON), mit (its release folder), custom (a folder per class, or a CSV)."""
    if kind in SPLIT_KINDS:
        build = build_ucf101 if kind == "ucf101" else build_hmdb51
        return build(sources[0], split)
    if kind == "kinetics":
        return build_kinetics(sources, class_order)
    if kind == "activitynet":
        return build_activitynet(sources[0])
    if kind == "mit":
        return build_mit(sources[0])
    source = Path(sources[0])
    if source.is_dir():
        return build_custom_folders(source, val_fraction)
    return build_custom_csv(source)
