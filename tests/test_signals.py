"""Stop signals (`cnn3d.signals`): the first one asks for a stop, a second one before the stop
is committed kills at once, any one after it is ignored until the process exits; and
`--requeue` asks SLURM to requeue a job only while SLURM reports it RUNNING (told apart from a
`scancel` with a stand-in `scontrol` on PATH that answers as slurmctld 22.05 does)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from cnn3d.signals import requeue_slurm_job

# A process of its own: a killed one must not be the test's. It reports each stage on stdout.
STAGES = textwrap.dedent(
    """
    import os, signal, sys
    from cnn3d.signals import StopSignals

    def send():  # to itself: the Python handler runs before the next line
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))

    with StopSignals(graceful=True) as stop:
        send()
        print("asked", stop.requested, flush=True)
        if sys.argv[1] == "commit":
            stop.commit()
        send()
        print("survived the second", flush=True)
    send()  # after the context: ignored only where the stop was committed
    print("survived the third", flush=True)
    """
)


def stages(mode: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-c", STAGES, mode]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_a_second_signal_before_the_commit_kills_at_once():
    done = stages("plain")
    # killed by SIGTERM's default action: no exit status of its own (-15 here, 143 to a shell)
    assert done.returncode == -signal.SIGTERM, done
    assert done.stdout == "asked SIGTERM\n", done


def test_after_the_commit_signals_are_ignored_until_the_process_exits():
    done = stages("commit")
    assert done.returncode == 0, done
    assert done.stdout == "asked SIGTERM\nsurvived the second\nsurvived the third\n", done


FAKE_SCONTROL = """#!/bin/sh
echo "$@" >> "{calls}"
case "$1" in
  show) {show} ;;
  requeue) {requeue} ;;
esac
"""
RUNNING = "echo 'JobId=42 JobName=train UserId=me(1) JobState=RUNNING Reason=None Restarts=0'"


def fake_scontrol(tmp_path, monkeypatch, show, requeue="exit 0"):
    """An `scontrol` on PATH that answers `show job` with `show` and `requeue` with `requeue`
    (shell), and writes its arguments to the file it returns, one call a line."""
    calls = tmp_path / "calls"
    path = tmp_path / "bin" / "scontrol"
    path.parent.mkdir()
    path.write_text(FAKE_SCONTROL.format(calls=calls, show=show, requeue=requeue))
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    return calls


def test_a_running_job_is_requeued(tmp_path, monkeypatch):
    calls = fake_scontrol(tmp_path, monkeypatch, RUNNING)
    said = requeue_slurm_job()
    assert said.startswith("SLURM job 42 requeued"), said
    assert calls.read_text().splitlines() == ["show job --oneliner 42", "requeue 42"]


@pytest.mark.parametrize("state", ["COMPLETING", "CANCELLED", "TIMEOUT"])
def test_a_cancelled_job_is_not_requeued(tmp_path, monkeypatch, state):
    # a plain `scancel` makes the job COMPLETING at once (then CANCELLED), as does its time limit
    show = f"echo 'JobId=42 JobName=train JobState={state} Reason=None'"
    calls = fake_scontrol(tmp_path, monkeypatch, show)
    said = requeue_slurm_job()
    assert said == f"--requeue: SLURM job 42 is {state}, not RUNNING (scancel ends a job this way): not requeued"  # fmt: skip
    assert calls.read_text().splitlines() == ["show job --oneliner 42"]


def test_an_unknown_state_is_not_requeued(tmp_path, monkeypatch):
    calls = fake_scontrol(
        tmp_path, monkeypatch, "echo 'slurm_load_jobs error: timeout' >&2; exit 1"
    )
    said = requeue_slurm_job()
    assert said == "--requeue: scontrol show job 42 failed (slurm_load_jobs error: timeout): not requeued"  # fmt: skip
    assert calls.read_text().splitlines() == ["show job --oneliner 42"]


def test_a_refused_requeue_says_why(tmp_path, monkeypatch):
    fake_scontrol(tmp_path, monkeypatch, RUNNING, "echo 'Job is no longer running' >&2; exit 1")
    said = requeue_slurm_job()
    assert said == "--requeue: scontrol requeue 42 failed: Job is no longer running"


def test_outside_slurm_nothing_is_asked(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert requeue_slurm_job() == "--requeue: not a SLURM job (no SLURM_JOB_ID): not requeued"


WORKER_START = textwrap.dedent(
    """
    import os, signal, torch
    from cnn3d.data.dataset import ClipLoader, worker_init

    def signalled_on_start(worker_id):  # a job-wide SIGTERM landing as the worker starts
        os.kill(os.getpid(), signal.SIGTERM)
        worker_init(worker_id)

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as after a first stop signal
    data = [torch.tensor([i]) for i in range(4)]
    loader = ClipLoader(data, 2, num_workers=1, worker_init_fn=signalled_on_start)
    print(sum(int(b.sum()) for b in loader), flush=True)
    """
)


def test_a_worker_signalled_as_it_starts_ignores_the_signal():
    """Workers fork with the stop signals blocked, so one that arrives before `worker_init`
    waits until the worker ignores it (unblocked, a worker forked after a first stop signal
    died of the default action: "DataLoader worker ... killed by signal: Terminated")."""
    done = subprocess.run([sys.executable, "-c", WORKER_START], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "6"
