"""Paths checked before any work: inputs of the right kind, missing ones named as such, outputs
that can be written. Each problem is one line naming the path (a `UsageError` or
`MissingInput`); nothing here imports torch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import MissingInput, UsageError
from ..files import CHECKPOINT_SUFFIXES, EXPORTED_SUFFIXES, folder_given_for_file

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "EXPORTED_SUFFIXES",
    "input_file",
    "input_folder",
    "output_file",
    "output_folder",
]


def input_file(path, what: str, suffixes: tuple[str, ...] = ()) -> Path:
    """An existing file; a folder is answered with the files of `suffixes` it holds."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(folder_given_for_file(path, what, suffixes))
    if not path.exists():
        raise MissingInput(f"{path}: no such file ({what})")
    return path


def input_folder(path, what: str) -> Path:
    path = Path(path)
    if path.is_file():
        raise UsageError(f"{path}: is a file, not a folder ({what})")
    if not path.is_dir():
        raise MissingInput(f"{path}: no such folder ({what})")
    return path


def _writable(folder: Path, target: Path) -> None:
    """The nearest existing folder at or above `folder` takes a new file (a real try: root
    ignores permission bits, a read-only file system does not)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{target}: cannot be made, {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cnn3d-write-test.", dir=existing)
    except OSError as error:
        raise UsageError(
            f"{target}: cannot write there ({existing}: {error.strerror or error})"
        ) from None
    os.close(fd)
    os.unlink(probe)


def output_folder(path, what: str) -> Path:
    """A folder that exists or can be made, and takes new files."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: is a file, but {what} is a folder")
    _writable(path, path)
    return path


def output_file(path, what: str) -> Path:
    """A file that can be written (its folder exists or can be made, and takes new files)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, but {what} is a file")
    _writable(path.parent if str(path.parent) else Path("."), path)
    return path
