"""cnn3d's errors: one base class, so the command line can tell a user's problem (a file that
cannot be read, an option that cannot be met; printed as one line naming the file) from a bug
in cnn3d (a traceback). Every message names the file or the option, and what to do.

Each class also derives from the built-in exception it refines (`ValueError`, `RuntimeError`,
`FileNotFoundError`), so code written against those keeps working.
"""

from __future__ import annotations


class Cnn3dError(Exception):
    """A problem with the user's input, files or options (not a bug in cnn3d)."""


class UsageError(Cnn3dError, ValueError):
    """Options or inputs that cannot be carried out as given (a bad value, two that disagree)."""


class MissingInput(Cnn3dError, FileNotFoundError):
    """An input file or folder that is not there."""


class AnnotationError(Cnn3dError, ValueError):
    """An annotation or split file that cannot be understood; the message names it."""


class CheckpointError(Cnn3dError, ValueError):
    """A checkpoint file that cannot be read or matches no supported network."""


class OutputCollision(Cnn3dError, ValueError):
    """Several inputs would write one output; the message names each output and its inputs."""

    def __init__(self, groups: list, what: str):
        lines = [f"{out}: {' and '.join(str(p) for p in sources)}" for out, sources in groups[:10]]
        more = f"\n  ... and {len(groups) - 10} more" if len(groups) > 10 else ""
        n = len(groups)
        super().__init__(
            f"{n} {what} output{'s' if n > 1 else ''} would each be written by two inputs or "
            "more, whose names differ only in their extension; nothing was written. Rename or "
            "move all but one input of each:\n  " + "\n  ".join(lines) + more
        )


class DiskFull(Cnn3dError, OSError):
    """No space left on the device for an output: the message names the file and the size
    needed; the file's previous version, if any, is untouched (writes are atomic)."""


class VideoReadError(Cnn3dError, RuntimeError):
    """A video (file, frame folder or HDF5) that cannot be read; the message names it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # DataLoader workers send errors back pickled
        return type(self), (self.path, self.problem)


class TrainingError(Cnn3dError, RuntimeError):
    """Training cannot start or go on (no videos, a non-finite loss, ...)."""


class Interrupted(Cnn3dError):
    """A signal (Ctrl-C, SIGTERM, SIGUSR1) stopped a command: the message says what was kept
    and how to go on; the command exits with `exit_code` (128 + the signal's number: 130 for
    Ctrl-C)."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self):
        return type(self), (str(self), self.exit_code)


class TrainingInterrupted(TrainingError, Interrupted):
    """Ctrl-C during training: which epoch `last.pth` holds and how to resume."""
