"""One run per result folder: `<result>/run.lock` names the process that writes there.

Two runs started into one folder would interleave their logs and overwrite each other's
`opts.json` and checkpoints. A training run takes the lock before it writes anything and gives
it back when it ends; a second live run is refused in one line naming the holder.

The lock file holds JSON (host, pid, the process's start time, the SLURM job and torchrun run
it belongs to) and is held with `fcntl.lockf` while the run lives. A lock left by a process that
is gone is taken over, saying so:
- on this host, when its pid is not running (or runs another program: the start time differs);
- on another host, when the file's lock can be taken (the holder's kernel or file server
  released it at its death), or when it belongs to an earlier round of this SLURM job or of this
  torchrun job (a requeued or restarted job runs where the scheduler puts it).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..errors import UsageError

__all__ = ["LOCK_NAME", "RunLock", "RunLocked"]

LOCK_NAME = "run.lock"


class RunLocked(UsageError):
    """Another live run holds the result folder."""


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (`/proc/PID/stat`), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def this_process() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": process_start(os.getpid()),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart": os.environ.get("SLURM_RESTART_COUNT", "0"),
        "torchrun_run": os.environ.get("TORCHELASTIC_RUN_ID"),
        "torchrun_restart": os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def describe(holder: dict) -> str:
    job = f", SLURM job {holder['slurm_job']}" if holder.get("slurm_job") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{job}, since {holder.get('since')}"


def why_stale(holder: dict, me: dict, file_lock_free: bool) -> str | None:
    """Why the process that wrote `holder` cannot be running any more, or None if it may be."""
    jobs = (("slurm_job", "slurm_restart", "SLURM job"),
            ("torchrun_run", "torchrun_restart", "torchrun job"))  # fmt: skip
    for key, count, what in jobs:
        same_job = holder.get(key) and holder.get(key) == me.get(key)
        if same_job and int(holder.get(count) or 0) < int(me.get(count) or 0):
            return f"an earlier round of this {what}"
    if holder.get("host") == me["host"]:
        pid = holder.get("pid")
        if not isinstance(pid, int) or not pid_alive(pid):
            return "its process is not running"
        if holder.get("process_start") and holder["process_start"] != process_start(pid):
            return "its process is not running (the pid is another program's now)"
        if pid == me["pid"]:
            return "this process"
        return None
    return "its lock was released (the process is gone)" if file_lock_free else None


class RunLock:
    """`with RunLock(folder):` holds the folder for this process (see the module's docstring)."""

    def __init__(self, folder: str | os.PathLike, say=print):
        self.path = Path(folder) / LOCK_NAME
        self.say = say
        self.fd: int | None = None
        self.made_folder = False

    def acquire(self) -> RunLock:
        self.made_folder = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = this_process()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free = True
            except OSError:
                free = False
            text = os.pread(fd, 1 << 16, 0).decode("utf-8", "replace")
            holder = parse_holder(text)
            if holder is not None:
                why = why_stale(holder, me, free)
                if why is None or not free and holder.get("host") == me["host"]:
                    raise RunLocked(
                        f"{self.path.parent}: another run is writing there ({describe(holder)}; "
                        f"{self.path}); wait for it to end, stop it, or give another --result-path"
                    )
                if why != "this process":
                    self.say(f"{self.path}: taking over the lock of {describe(holder)}: {why}")
            elif not free:
                raise RunLocked(
                    f"{self.path.parent}: another run is starting there ({self.path} is locked); "
                    "wait for it, or give another --result-path"
                )
            encoded = json.dumps(me).encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, encoded, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            holder = parse_holder(os.pread(self.fd, 1 << 16, 0).decode("utf-8", "replace"))
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)  # closing releases the lockf lock
            self.fd = None
        if self.made_folder:  # a run refused at its start leaves no empty folder behind
            try:
                self.path.parent.rmdir()
            except OSError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def parse_holder(text: str) -> dict | None:
    if not text.strip():
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return {"host": "?", "pid": None, "since": "?", "damaged": True}
    return holder if isinstance(holder, dict) else {"host": "?", "pid": None, "since": "?"}
