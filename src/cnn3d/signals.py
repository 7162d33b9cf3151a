"""Stop signals: Ctrl-C (SIGINT), SIGTERM (sent by SLURM, Kubernetes and torchrun before they
kill) and SIGUSR1 (SLURM's `--signal=USR1@120` warning before a time limit).

`StopSignals` catches them in the main thread. `graceful=True` (training): the first one only
sets `requested`, and the loop stops at its next safe point (after the step, with a checkpoint);
`graceful=False` (classify, features): the first one raises KeyboardInterrupt where the program
is, which abandons the videos in flight and keeps what is done. Either way a second signal stops
at once: its default action comes back (SIGTERM and SIGUSR1 kill the process, which the shell
sees as 143/138 with nothing saved; Ctrl-C raises KeyboardInterrupt). Once the stop is
`commit`ted (its checkpoint written), every one of them is ignored until the process exits, so
a late one (SLURM's own SIGTERM after `scontrol requeue`, a Ctrl-C pressed twice) cannot turn
the clean stop into a kill. A command stopped by a signal exits with 128 + its number (130 for
SIGINT, 143 for SIGTERM, 138 for SIGUSR1), the shell's convention.

`requeue_slurm_job` asks SLURM to requeue the job, only while SLURM still reports it RUNNING: a
time-limit warning (`--signal=TERM@120`) or `scancel --signal=TERM JOB` leaves it RUNNING, and
it is requeued; a plain `scancel JOB` has already made it COMPLETING (then CANCELLED): it stays
cancelled.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading

__all__ = ["STOP_SIGNALS", "StopSignals", "exit_code", "requeue_slurm_job"]

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")


def exit_code(name: str | None) -> int:
    """128 + the signal's number (130 where none is known)."""
    if name and hasattr(signal, name):
        return 128 + int(getattr(signal, name))
    return 130


class StopSignals:
    """A context that catches `names` (default: SIGINT, SIGTERM, SIGUSR1) while it is open."""

    def __init__(self, graceful: bool, names: tuple[str, ...] = STOP_SIGNALS, enabled=True):
        self.graceful = graceful
        self.requested: str | None = None  # the name of the first signal received
        self._previous: dict[int, object] = {}
        self.committed = False  # the stop's checkpoint is written: the signals are ignored
        if not enabled or threading.current_thread() is not threading.main_thread():
            return
        for name in names:
            number = getattr(signal, name, None)
            if number is not None:
                self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number, frame) -> None:
        name = signal.Signals(number).name
        first = self.requested is None
        self.requested = self.requested or name
        for other in self._previous:  # a second signal, of any of them, stops at once
            signal.signal(
                other, signal.default_int_handler if other == signal.SIGINT else signal.SIG_DFL
            )
        if not first:
            return
        if self.graceful:
            print(
                f"\n{name}: stopping after this step, with a checkpoint (again: at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return exit_code(self.requested)

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def commit(self) -> None:
        """The stop is decided and its checkpoint written: from now until the process exits the
        signals are ignored (`restore` leaves them so), the rest of the way out is clean."""
        self.committed = True
        for number in self._previous:
            signal.signal(number, signal.SIG_IGN)

    def restore(self) -> None:
        """The signals' handlers from before (not after `commit`: the process is leaving)."""
        if not self.committed:
            for number, previous in self._previous.items():
                signal.signal(number, previous)
        self._previous = {}


def requeue_slurm_job() -> str:
    """Ask SLURM to requeue this job (`scontrol requeue $SLURM_JOB_ID`) if it still reports the
    job RUNNING (a cancelled job is COMPLETING: it stays cancelled); what happened, in words.
    Costs two scontrol calls (at most 30 s each where slurmctld does not answer)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return "--requeue: not a SLURM job (no SLURM_JOB_ID): not requeued"
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return f"--requeue: no scontrol on PATH: SLURM job {job} not requeued"
    done = _scontrol(scontrol, "show", "job", "--oneliner", job)
    found = re.search(r"\bJobState=(\S+)", done.stdout)
    if done.returncode != 0 or found is None:
        problem = done.stderr.strip() or f"exit status {done.returncode}, no JobState"
        return f"--requeue: scontrol show job {job} failed ({problem}): not requeued"
    if found[1] != "RUNNING":
        return (
            f"--requeue: SLURM job {job} is {found[1]}, not RUNNING (scancel ends a job this "
            "way): not requeued"
        )
    done = _scontrol(scontrol, "requeue", job)
    if done.returncode != 0:
        return f"--requeue: scontrol requeue {job} failed: {done.stderr.strip() or done.returncode}"
    return f"SLURM job {job} requeued: it starts again with --resume auto from the checkpoint"


def _scontrol(scontrol: str, *args: str) -> subprocess.CompletedProcess:
    """`scontrol ARGS`, its output as text; a hung slurmctld is given up on after 30 s."""
    try:
        return subprocess.run([scontrol, *args], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", "no answer within 30 s")
