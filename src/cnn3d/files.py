"""Files on disk: which files are videos, how outputs are named after their inputs, and writing
them so that a crash never leaves half a file.

Outputs are named by the input's path relative to the input root with its last extension
dropped (`Run/a.mp4` -> `Run/a`), so class folders survive and `a/clip.mp4` and `b/clip.mp4`
never meet. Two inputs that would still share an output (`x.mp4` and `x.mkv`) are refused before
any work starts. Files and folders get the user's umask (0644/0755 by default).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DiskFull, OutputCollision

# Lower case; matched case-insensitively.
VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".flv", ".f4v", ".ts", ".mts", ".m2ts",
    ".3gp", ".3g2", ".mpg", ".mpeg", ".m2v", ".wmv", ".ogv", ".asf", ".vob", ".mxf", ".divx",
)  # fmt: skip


CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".tar")
# what `cnn3d export` writes: ONNX, torch.export, TorchScript
EXPORTED_SUFFIXES = (".onnx", ".pt2", ".ts")


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# what `what_file_is` says of the two containers a PyTorch checkpoint comes in
ZIP_ARCHIVE = "a zip archive (a PyTorch checkpoint?)"
PICKLE = "a pickle (a PyTorch checkpoint?)"
# the first bytes of video containers: Matroska/WebM, AVI, FLV, Ogg, MPEG-PS, ASF/WMV
VIDEO_MAGIC = (b"\x1aE\xdf\xa3", b"RIFF", b"FLV", b"OggS", b"\x00\x00\x01\xba", b"0&\xb2u")


def what_file_is(path: str | os.PathLike) -> str | None:
    """What a file is, from its first bytes (a few kinds users give where another was meant):
    empty, a zip archive or a pickle (how checkpoints are stored), a video, an HDF5 file, an
    ONNX model, an annotation or other JSON, a text file; None when none of these."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "an empty file"
    if head[:2] == b"PK":
        return ZIP_ARCHIVE
    if head[:1] == b"\x80":
        return PICKLE
    mpeg_ts = head[:1] == b"G" and head[188:189] == b"G"
    if head[4:8] == b"ftyp" or head.startswith(VIDEO_MAGIC) or mpeg_ts:
        return "a video"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (clips or features)"
    if head.startswith(b"\x08") and path.suffix == ".onnx":
        return "an exported ONNX model (classify and features take it with --engine)"
    if head.lstrip()[:1] in (b"{", b"["):
        if b'"database"' in head or b'"labels"' in head:
            return "an annotation JSON"
        return "a JSON file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(b >= 32 or b in b"\t\n\r" for b in head):
        return "a text file (a log or a list?)"
    return None


def folder_given_for_file(folder: Path, what: str, suffixes: tuple[str, ...]) -> str:
    """The message for a folder given where a file was wanted: the files of `suffixes` it
    holds, the likely ones meant."""
    held = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in suffixes)
    hint = f"; it holds {', '.join(held[:8])}: give one of them" if held else ""
    return f"{folder}: is a folder, not {what}{hint}"


@dataclass
class Walk:
    """What a folder walk found: the video files (sorted) and every other file it passed over."""

    videos: list[Path]
    skipped: list[Path]


def describe_skipped(skipped: list[Path], verbose: bool = False) -> str:
    """One line (or, verbose, one per file) saying which files were not taken as videos."""
    if not skipped:
        return ""
    suffixes = sorted({p.suffix.lower() or "(no extension)" for p in skipped})
    line = f"skipped {len(skipped)} non-video file(s) ({', '.join(suffixes[:8])})"
    if verbose:
        return "\n".join([line] + [f"  skipped: {p}" for p in skipped])
    return line + "; --verbose names them"


# a frame folder's file names, `<prefix>%05d.jpg` from 1: the original's, then mmaction/TSN's
FRAME_PREFIXES = ("image_", "img_")
FIRST_FRAME = f"{FRAME_PREFIXES[0]}00001.jpg"  # the first frame in the original's layout
# the first x image of a TSN/denseflow flow folder (data/sources/flow.py reads both layouts)
FIRST_FLOW = ("flow_x_00001.jpg", "x_00001.jpg")


def is_frame_folder(path: str | os.PathLike, flow: bool = True) -> bool:
    """A folder that is one video stored as images: the original's JPEG frames, or (with
    `flow`) also mmaction/TSN's `img_` frames and flow folders."""
    frames = tuple(f"{prefix}00001.jpg" for prefix in FRAME_PREFIXES)
    firsts = (*frames, *FIRST_FLOW) if flow else (FIRST_FRAME,)
    return any(os.path.isfile(os.path.join(path, name)) for name in firsts)


def walk_videos(
    root: str | os.PathLike, frame_folders: bool = False, flow_folders: bool = False
) -> Walk:
    """Every video file under `root` (recursively, hidden entries left out), one `scandir` per
    folder. With `frame_folders`, a folder holding `image_00001.jpg` is a video too (and not
    searched further); with `flow_folders` also one holding `flow_x_00001.jpg` or
    `x_00001.jpg`."""
    videos, skipped = [], []
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    if frame_folders and is_frame_folder(entry.path, flow=flow_folders):
                        videos.append(Path(entry.path))
                    else:
                        stack.append(Path(entry.path))
                elif is_video_file(entry.name):
                    videos.append(Path(entry.path))
                else:
                    skipped.append(Path(entry.path))
    return Walk(sorted(videos), sorted(skipped))


def output_name(relative: str | os.PathLike, suffix: str = "") -> Path:
    """`Run/a.b.mp4` -> `Run/a.b` + suffix: only the last extension is dropped."""
    relative = Path(relative)
    stem = relative.name[: -len(relative.suffix)] if relative.suffix else relative.name
    return relative.parent / f"{stem}{suffix}"


def find_collisions(outputs: Iterable[tuple[Path, Path]]) -> list[tuple[Path, list[Path]]]:
    """(output, its inputs) for every output that several inputs would write, from (input,
    output) pairs."""
    by_output: dict[Path, list[Path]] = defaultdict(list)
    for source, output in outputs:
        by_output[output].append(source)
    return [(out, sorted(sources)) for out, sources in by_output.items() if len(sources) > 1]


@dataclass(frozen=True)
class SourceStamp:
    """What an output was made from: the source's path, size and modification time."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike) -> SourceStamp:
        stat = os.stat(path)
        return cls(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


class StampLog:
    """An append-only record `output<TAB>source<TAB>size<TAB>mtime_ns` per finished output, kept
    beside the outputs; the last line for an output wins. An output written but not yet recorded
    (a kill between the two) counts as not done, so it is made again."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.stamps: dict[str, SourceStamp] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                fields = line.split("\t")
                if len(fields) == 4 and fields[2].isdigit() and fields[3].isdigit():
                    self.stamps[fields[0]] = SourceStamp(fields[1], int(fields[2]), int(fields[3]))

    def is_done(self, output: str, source: SourceStamp) -> bool:
        return self.stamps.get(output) == source

    def record(self, output: str, source: SourceStamp) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{output}\t{source.path}\t{source.size}\t{source.mtime_ns}\n"
        with open(self.path, "a", encoding="utf-8") as f:  # one short append: whole lines
            f.write(line)
        self.stamps[output] = source


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(path: str | os.PathLike, write, size_hint: int | None = None) -> None:
    """Call `write(tmp_path)` then rename onto `path`, so a crash never leaves a half file.

    `size_hint`: about how many bytes `write` will write; when the device has less free, nothing
    is written and `DiskFull` says so. A write that fails for want of space (an OSError
    ENOSPC/EDQUOT, or a library's own error while the device is full) is `DiskFull` too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if size_hint is not None:
        free = shutil.disk_usage(path.parent).free
        if free < size_hint:
            raise DiskFull(disk_full_message(path, size_hint, free))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as error:
        full = out_of_space(error, path.parent)
        written = os.path.getsize(tmp) if full and os.path.exists(tmp) else 0
        Path(tmp).unlink(missing_ok=True)
        if full:
            needed = max(size_hint or 0, written)
            free = shutil.disk_usage(path.parent).free
            raise DiskFull(disk_full_message(path, needed, free, at_least=not size_hint)) from None
        raise


# `atomic_write`'s temporary names: "." + the file's name + "." + mkstemp's 8 characters + ".tmp"
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def sweep_temporaries(folder: str | os.PathLike) -> tuple[int, int] | None:
    """Remove the temporary files that writes cut short (a kill, a full disk) left in `folder`
    (not its subfolders); (how many, their bytes), or None if there were none. Only for a
    folder this process holds (`runlock.py`): another writer's file in progress would go too."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    count = size = 0
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and TEMPORARY.match(entry.name):
            size += entry.stat().st_size
            Path(entry.path).unlink(missing_ok=True)
            count += 1
    return (count, size) if count else None


def out_of_space(error: BaseException, folder: Path) -> bool:
    """Whether `error` came from a full device: ENOSPC or EDQUOT, or (torch.save says only
    "enforce fail at inline_container.cc") any OSError or RuntimeError while `folder`'s device
    has under 1 MiB free."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(error, OSError | RuntimeError):
        return False
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def disk_full_message(path: Path, needed: int, free: int, at_least: bool = False) -> str:
    size = (
        f"{'at least ' if at_least else ''}{needed / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free"
    )
    return (
        f"no space left on the device writing {path} ({size}); its previous version, if any, "
        "is intact: free some space and run again"
    )


def atomic_directory(path: str | os.PathLike, fill) -> None:
    """Call `fill(tmp_dir)` then rename the folder onto `path` (replacing an older one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, data) -> None:
    """`data` as indented JSON, atomically."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)

    atomic_write(path, write)


@dataclass
class Inputs:
    """The videos to process, each with its name relative to the input it came from (the key of
    its outputs), and what was passed over or could not be used."""

    paths: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # relative path, "/"-separated
    problems: list[str] = field(default_factory=list)  # inputs that cannot be used, named
    skipped: list[Path] = field(default_factory=list)  # non-video files in the folders


LIST_SUFFIXES = (".txt", ".lst", ".list")


def collect_inputs(inputs: list[str], list_root: str | os.PathLike | None = None) -> Inputs:
    """Video files from files, folders (searched recursively) and list files (one path per
    line, relative to the list's folder). A frame or flow folder (`image_00001.jpg`,
    `img_00001.jpg`, `flow_x_00001.jpg`, `x_00001.jpg`: `is_frame_folder`) is one video, given
    itself or found in a folder searched. Each video is named by its path relative to the
    inputs' common folder: one folder's videos relative to that folder, a list's relative to
    the list's folder (as written), a single file by its name, and videos given through
    several folders (`bikes/ bunny/`) keep the folders that tell them apart. `list_root`: the
    folder list files' relative lines are under (the sister tool's `--video_root`)."""
    found = Inputs()
    roots: list[str] = []  # the folders the names are relative to
    for item in map(Path, inputs):
        if item.is_dir() and is_frame_folder(item):  # one video, given as its images
            found.paths.append(item)
            roots.append(os.path.dirname(os.path.abspath(item)))
        elif item.is_dir():
            walk = walk_videos(item, frame_folders=True, flow_folders=True)
            if not walk.videos:
                found.problems.append(f"{item}: no video files or frame folders in this folder")
            found.paths += walk.videos
            found.skipped += walk.skipped
            roots.append(os.path.abspath(item))
        elif item.suffix.lower() in LIST_SUFFIXES:
            try:
                text = item.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                found.problems.append(f"{item}: cannot read this list file ({error})")
                continue
            base = Path(list_root) if list_root is not None else item.parent
            roots.append(os.path.abspath(base))
            for line in (ln.strip() for ln in text.splitlines()):
                if line:
                    path = Path(line)
                    path = path if path.is_absolute() else base / path
                    found.paths.append(path)
                    roots.append(os.path.dirname(os.path.abspath(path)))
        else:
            found.paths.append(item)
            roots.append(os.path.dirname(os.path.abspath(item)))
    if found.paths:
        common = os.path.commonpath(roots)
        found.names = [
            Path(os.path.relpath(os.path.abspath(p), common)).as_posix() for p in found.paths
        ]
    return found


def check_output_names(names: list[str], paths: list[Path], what: str) -> None:
    """Refuse, before any work, inputs whose outputs would be the same (`x.mp4`, `x.mkv`)."""
    pairs = zip(paths, (output_name(n) for n in names), strict=True)
    groups = find_collisions(pairs)
    if groups:
        raise OutputCollision(groups, what)
